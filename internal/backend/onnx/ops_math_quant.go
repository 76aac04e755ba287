package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// quantOps are the linear quantization operators over the 8- and 16-bit
// integer types internal/tensor has (INT4, INT2 and the FLOAT8 types are
// not representable and load as unsupported): QuantizeLinear and
// DequantizeLinear (per tensor, per axis and blocked),
// DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul and
// QLinearConv. Integer products are accumulated exactly in float64.
func quantOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "QuantizeLinear", Since: 10, New: newQuantize},
		{Domain: DomainONNX, Type: "DequantizeLinear", Since: 10, New: newDequantize},
		{Domain: DomainONNX, Type: "DynamicQuantizeLinear", Since: 11, New: newDynamicQuantize},
		{Domain: DomainONNX, Type: "MatMulInteger", Since: 10, New: newMatMulInteger},
		{Domain: DomainONNX, Type: "QLinearMatMul", Since: 10, New: newQLinearMatMul},
		{Domain: DomainONNX, Type: "ConvInteger", Since: 10, New: newConvInteger},
		{Domain: DomainONNX, Type: "QLinearConv", Since: 10, New: newQLinearConv},
	}
}

// intRange returns the range of an integer type.
func intRange(dt tensor.DType) (lo, hi float64, ok bool) {
	switch dt {
	case tensor.Uint8:
		return 0, 255, true
	case tensor.Int8:
		return -128, 127, true
	case tensor.Uint16:
		return 0, 65535, true
	case tensor.Int16:
		return -32768, 32767, true
	case tensor.Int32:
		return math.MinInt32, math.MaxInt32, true
	}
	return 0, 0, false
}

// quantIndex maps each element of a tensor of shape xs to the index of
// its scale and zero point, of shape ss: one for all (a scalar), one per
// index on axis (1-D), or one per block of block elements on axis (same
// rank), written into idx.
func quantIndex(idx []int64, xs, ss []int64, axis, block int) error {
	n := numel(xs)
	ns := numel(ss)
	if ns == 1 {
		clear(idx[:n])
		return nil
	}
	r := len(xs)
	if block == 0 {
		if len(ss) != 1 || int(ss[0]) != int(xs[axis]) {
			return badInput("scale %v for axis %d of %v", ss, axis, xs)
		}
		inner := numel(xs[axis+1:])
		d := int(xs[axis])
		for i := range n {
			idx[i] = int64((i / inner) % d)
		}
		return nil
	}
	if len(ss) != r {
		return badInput("blocked scale %v for %v", ss, xs)
	}
	sst := rowStrides(ss)
	xst := rowStrides(xs)
	for i := range n {
		rem, at := i, 0
		for k := range r {
			c := rem / xst[k]
			rem %= xst[k]
			if k == axis {
				c /= block
			}
			at += c * sst[k]
		}
		idx[i] = int64(at)
	}
	return nil
}

func newQuantize(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", 1)
	block := int(n.Attrs.Int("block_size", 0))
	outType := n.Attrs.Int("output_dtype", 0)
	n.Attrs.Int("saturate", 1)
	n.Attrs.Int("precision", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var want tensor.DType
	if outType != 0 {
		var ok bool
		if want, ok = onnxDType(outType); !ok {
			return nil, unsupported("QuantizeLinear output_dtype %d", outType)
		}
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("QuantizeLinear", in[0], tensor.FP32, tensor.FP16, tensor.FP64, tensor.Int32); err != nil {
			return err
		}
		x, sc := &in[0].Tensor, &in[1].Tensor
		zpv := Arg(in, 2)
		dt := tensor.Uint8
		if zpv.Kind == KindTensor {
			dt = zpv.Tensor.DType
		} else if want != tensor.Invalid {
			dt = want
		}
		lo, hi, ok := intRange(dt)
		if !ok || dt == tensor.Int32 {
			return badInput("QuantizeLinear to %v", dt)
		}
		ax := 0
		if numel(sc.Shape) > 1 {
			var err error
			if ax, err = normAxis(axis, len(x.Shape)); err != nil {
				return err
			}
		}
		nx, ns := numel(x.Shape), numel(sc.Shape)
		buf := tmp.Float64s(nx + 2*ns)
		xs := floatsOf(x, buf[:nx])
		ss := floatsOf(sc, buf[nx:nx+ns])
		zp := buf[nx+ns:]
		if zpv.Kind == KindTensor {
			floatsOf(&zpv.Tensor, zp)
		} else {
			clear(zp)
		}
		idx := tmp.Int64s(nx)
		if err := quantIndex(idx, x.Shape, sc.Shape, ax, block); err != nil {
			return err
		}
		for i, v := range xs {
			k := idx[i]
			q := math.RoundToEven(float64(float32(v)/float32(ss[k]))) + zp[k]
			xs[i] = min(max(q, lo), hi)
		}
		if err := out[0].Resize(dt, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, xs)
		return nil
	}, nil
}

func newDequantize(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", 1)
	block := int(n.Attrs.Int("block_size", 0))
	outType := n.Attrs.Int("output_dtype", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	var want tensor.DType
	if outType != 0 {
		var ok bool
		if want, ok = onnxDType(outType); !ok {
			return nil, unsupported("DequantizeLinear output_dtype %d", outType)
		}
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("DequantizeLinear", in[0], tensor.Uint8, tensor.Int8, tensor.Uint16, tensor.Int16, tensor.Int32); err != nil {
			return err
		}
		if err := checkType("DequantizeLinear scale", in[1], floatTypes...); err != nil {
			return err
		}
		x, sc := &in[0].Tensor, &in[1].Tensor
		zpv := Arg(in, 2)
		ax := 0
		if numel(sc.Shape) > 1 {
			var err error
			if ax, err = normAxis(axis, len(x.Shape)); err != nil {
				return err
			}
		}
		nx, ns := numel(x.Shape), numel(sc.Shape)
		buf := tmp.Float64s(nx + 2*ns)
		xs := floatsOf(x, buf[:nx])
		ss := floatsOf(sc, buf[nx:nx+ns])
		zp := buf[nx+ns:]
		if zpv.Kind == KindTensor {
			floatsOf(&zpv.Tensor, zp)
		} else {
			clear(zp)
		}
		idx := tmp.Int64s(nx)
		if err := quantIndex(idx, x.Shape, sc.Shape, ax, block); err != nil {
			return err
		}
		for i, v := range xs {
			k := idx[i]
			xs[i] = float64(float32(v-zp[k]) * float32(ss[k]))
		}
		dt := sc.DType
		if want != tensor.Invalid {
			dt = want
		}
		if err := out[0].Resize(dt, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, xs)
		return nil
	}, nil
}

func newDynamicQuantize(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("DynamicQuantizeLinear", in[0], tensor.FP32); err != nil {
			return err
		}
		x := in[0].Float32s()
		lo, hi := float32(0), float32(0)
		for _, v := range x {
			lo, hi = min(lo, v), max(hi, v)
		}
		scale := (hi - lo) / 255
		zp := float32(0)
		if scale != 0 {
			zp = float32(min(max(math.RoundToEven(float64(0-lo/scale)), 0), 255))
		}
		if err := out[0].Resize(tensor.Uint8, in[0].Tensor.Shape); err != nil {
			return err
		}
		y := out[0].Tensor.Data.([]uint8)
		for i, v := range x {
			q := 0.0
			if scale != 0 {
				q = math.RoundToEven(float64(v / scale))
			}
			y[i] = uint8(min(max(q+float64(zp), 0), 255))
		}
		if o := Arg(out, 1); o != &absent {
			if err := o.Resize(tensor.FP32, nil); err != nil {
				return err
			}
			o.Float32s()[0] = scale
		}
		if o := Arg(out, 2); o != &absent {
			if err := o.Resize(tensor.Uint8, nil); err != nil {
				return err
			}
			o.Tensor.Data.([]uint8)[0] = uint8(zp)
		}
		return nil
	}, nil
}

// intMatMul computes the numpy matmul of a and b (integers as float64,
// zero points already subtracted) with batch broadcasting, returning the
// product and its shape in tmp memory.
func intMatMul(tmp *Scratch, dst, a, b []float64, as, bs []int64) ([]int64, error) {
	if len(as) < 2 || len(bs) < 2 {
		return nil, badInput("integer MatMul of %v and %v", as, bs)
	}
	m, k := int(as[len(as)-2]), int(as[len(as)-1])
	k2, nn := int(bs[len(bs)-2]), int(bs[len(bs)-1])
	if k != k2 {
		return nil, badInput("integer MatMul of %v and %v", as, bs)
	}
	batch, err := broadcastAll(tmp.Shape(MaxRank), as[:len(as)-2], bs[:len(bs)-2])
	if err != nil {
		return nil, err
	}
	sa, sb := bcastStrides(as[:len(as)-2], batch), bcastStrides(bs[:len(bs)-2], batch)
	nb := numel(batch)
	var pos [MaxRank]int
	for bi := range nb {
		ao, bo := 0, 0
		for i := range batch {
			ao += pos[i] * sa[i]
			bo += pos[i] * sb[i]
		}
		A, B := a[ao*m*k:], b[bo*k*nn:]
		C := dst[bi*m*nn : (bi+1)*m*nn]
		for i := range m {
			for j := range nn {
				s := 0.0
				for p := range k {
					s += A[i*k+p] * B[p*nn+j]
				}
				C[i*nn+j] = s
			}
		}
		var dims [MaxRank]int
		for i, d := range batch {
			dims[i] = int(d)
		}
		odometer(&pos, &dims, len(batch))
	}
	shape := append(batch, int64(m), int64(nn))
	return shape, nil
}

// subZeroPoint subtracts zp (a scalar, or one value per row when perRow,
// else per column, of the trailing matrix [rows][cols]) from v.
func subZeroPoint(v, zp []float64, rows, cols int, perRow bool) {
	if len(zp) == 0 {
		return
	}
	for i := range v {
		switch {
		case len(zp) == 1:
			v[i] -= zp[0]
		case perRow:
			v[i] -= zp[(i/cols)%rows]
		default:
			v[i] -= zp[i%cols]
		}
	}
}

func newMatMulInteger(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		return qmatmul(tmp, in[0], in[1], Arg(in, 2), Arg(in, 3), nil, out[0])
	}, nil
}

// qparams are the requantization parameters of QLinearMatMul and
// QLinearConv: the output is round(acc * scale / yScale) + yZP.
type qparams struct {
	aScale, bScale, yScale, yZP *Value
}

// qmatmul runs MatMulInteger, or QLinearMatMul when q is set.
func qmatmul(tmp *Scratch, av, bv, azp, bzp *Value, q *qparams, o *Value) error {
	for _, v := range []*Value{av, bv} {
		if err := checkType("integer MatMul", v, tensor.Uint8, tensor.Int8); err != nil {
			return err
		}
	}
	as, bs := av.Tensor.Shape, bv.Tensor.Shape
	if len(as) < 2 || len(bs) < 2 {
		return badInput("integer MatMul of %v and %v", as, bs)
	}
	na, nb := av.Len(), bv.Len()
	nza, nzb := 0, 0
	if azp.Kind == KindTensor {
		nza = azp.Len()
	}
	if bzp.Kind == KindTensor {
		nzb = bzp.Len()
	}
	m, nn := int(as[len(as)-2]), int(bs[len(bs)-1])
	// The broadcast batch is at most the product of both batches.
	nout := numel(as[:len(as)-2]) * numel(bs[:len(bs)-2]) * m * nn
	buf := tmp.Float64s(na + nb + nza + nzb + nout)
	a := floatsOf(&av.Tensor, buf[:na])
	b := floatsOf(&bv.Tensor, buf[na:na+nb])
	za, zb := buf[na+nb:na+nb+nza], buf[na+nb+nza:na+nb+nza+nzb]
	if nza > 0 {
		floatsOf(&azp.Tensor, za)
	}
	if nzb > 0 {
		floatsOf(&bzp.Tensor, zb)
	}
	subZeroPoint(a, za, m, int(as[len(as)-1]), true)
	subZeroPoint(b, zb, int(bs[len(bs)-2]), nn, false)
	res := buf[na+nb+nza+nzb:]
	shape, err := intMatMul(tmp, res, a, b, as, bs)
	if err != nil {
		return err
	}
	res = res[:numel(shape)]
	if q == nil {
		if err := o.Resize(tensor.Int32, shape); err != nil {
			return err
		}
		storeFloats(&o.Tensor, res)
		return nil
	}
	return requantize(tmp, o, res, shape, q, -1, 0)
}

// requantize writes round(acc * aScale*bScale/yScale) + yZP, saturated to
// yZP's type, into o. bScale may hold one value per index of axis ch
// (of size chans) when ch >= 0.
func requantize(tmp *Scratch, o *Value, acc []float64, shape []int64, q *qparams, ch, inner int) error {
	dt := tensor.Uint8
	if q.yZP.Kind == KindTensor {
		dt = q.yZP.Tensor.DType
	}
	lo, hi, ok := intRange(dt)
	if !ok {
		return badInput("requantize to %v", dt)
	}
	nbs := q.bScale.Len()
	sa := float32(floatAt(&q.aScale.Tensor, 0))
	sy := float32(floatAt(&q.yScale.Tensor, 0))
	zp := 0.0
	if q.yZP.Kind == KindTensor {
		zp = floatAt(&q.yZP.Tensor, 0)
	}
	for i, v := range acc {
		s := float32(floatAt(&q.bScale.Tensor, 0))
		if nbs > 1 && ch >= 0 {
			s = float32(floatAt(&q.bScale.Tensor, (i/inner)%nbs))
		}
		r := float64(float32(v) * (sa * s / sy))
		acc[i] = min(max(math.RoundToEven(r)+zp, lo), hi)
	}
	if err := o.Resize(dt, shape); err != nil {
		return err
	}
	storeFloats(&o.Tensor, acc)
	return nil
}

// floatAt returns element i of a numeric tensor as float64.
func floatAt(t *tensor.Tensor, i int) float64 {
	switch d := t.Data.(type) {
	case []float32:
		return float64(d[i])
	case []float64:
		return d[i]
	case []uint8:
		return float64(d[i])
	case []int8:
		return float64(d[i])
	case []int16:
		return float64(d[i])
	case []int32:
		return float64(d[i])
	case []int64:
		return float64(d[i])
	case []uint32:
		return float64(d[i])
	case []uint64:
		return float64(d[i])
	case []uint16:
		if t.DType == tensor.FP16 {
			return float64(tensor.Float16ToFloat32(d[i]))
		}
		return float64(d[i])
	}
	return math.NaN()
}

func newQLinearMatMul(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if len(in) < 8 {
			return badInput("QLinearMatMul needs 8 inputs")
		}
		q := &qparams{aScale: in[1], bScale: in[4], yScale: in[6], yZP: in[7]}
		return qmatmul(tmp, in[0], in[3], in[2], in[5], q, out[0])
	}, nil
}

func newConvInteger(n *Node) (Kernel, error) {
	return newIntConv(n, false)
}

func newQLinearConv(n *Node) (Kernel, error) {
	return newIntConv(n, true)
}

// newIntConv builds ConvInteger (x, w, x_zero_point, w_zero_point) and,
// with linear, QLinearConv (x, x_scale, x_zp, w, w_scale, w_zp, y_scale,
// y_zp, B).
func newIntConv(n *Node, linear bool) (Kernel, error) {
	w := readWindowAttrs(n)
	group := int(n.Attrs.Int("group", 1))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if err := w.check(n); err != nil {
		return nil, err
	}
	if group < 1 {
		return nil, attrError("%s group %d", n.OpType, group)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		xv, wv, xzp, wzp := in[0], in[1], Arg(in, 2), Arg(in, 3)
		var q *qparams
		bias := &absent
		if linear {
			if len(in) < 8 {
				return badInput("QLinearConv needs 8 inputs")
			}
			xv, wv, xzp, wzp = in[0], in[3], in[2], in[5]
			q = &qparams{aScale: in[1], bScale: in[4], yScale: in[6], yZP: in[7]}
			bias = Arg(in, 8)
		}
		for _, v := range []*Value{xv, wv} {
			if err := checkType(n.OpType, v, tensor.Uint8, tensor.Int8); err != nil {
				return err
			}
		}
		x, wt := &xv.Tensor, &wv.Tensor
		r := len(x.Shape)
		if r < 3 || len(wt.Shape) != r || r-2 > MaxRank/2 {
			return badInput("%s of %v with weights %v", n.OpType, x.Shape, wt.Shape)
		}
		nb, c, m := int(x.Shape[0]), int(x.Shape[1]), int(wt.Shape[0])
		if c%group != 0 || m%group != 0 || int(wt.Shape[1])*group != c {
			return badInput("%s of %d channels, weights %v, group %d", n.OpType, c, wt.Shape, group)
		}
		k := wt.Shape[2:]
		if w.kernel != nil {
			k = w.kernel
		}
		g, err := w.resolve(x.Shape[2:], k)
		if err != nil {
			return err
		}
		cg, mg := c/group, m/group
		nk := spatialSize(&g.k, g.rank)
		ni, no := spatialSize(&g.in, g.rank), spatialSize(&g.out, g.rank)
		kk := cg * nk
		nx, nw := x.Len(), wt.Len()
		buf := tmp.Float64s(nx + nw + kk*no + nb*m*no + 2*m)
		xs, ws := floatsOf(x, buf[:nx]), floatsOf(wt, buf[nx:nx+nw])
		col := buf[nx+nw : nx+nw+kk*no]
		y := buf[nx+nw+kk*no : nx+nw+kk*no+nb*m*no]
		zps := buf[nx+nw+kk*no+nb*m*no:]
		if xzp.Kind == KindTensor {
			floatsOf(&xzp.Tensor, zps[:1])
			for i := range xs {
				xs[i] -= zps[0]
			}
		}
		if wzp.Kind == KindTensor {
			z := floatsOf(&wzp.Tensor, zps[:wzp.Len()])
			per := nw / m
			for i := range ws {
				if len(z) == 1 {
					ws[i] -= z[0]
				} else {
					ws[i] -= z[i/per]
				}
			}
		}
		for b := range nb {
			for gi := range group {
				im2col(col, xs[(b*c+gi*cg)*ni:(b*c+(gi+1)*cg)*ni], cg, &g)
				for oc := range mg {
					wr := ws[(gi*mg+oc)*kk : (gi*mg+oc+1)*kk]
					yr := y[(b*m+gi*mg+oc)*no : (b*m+gi*mg+oc+1)*no]
					clear(yr)
					for p, wv := range wr {
						if wv == 0 {
							continue
						}
						cr := col[p*no : (p+1)*no]
						for j := range yr {
							yr[j] += wv * cr[j]
						}
					}
				}
			}
		}
		if bias.Kind == KindTensor {
			bs := floatsOf(&bias.Tensor, zps[m:2*m])
			for i := range y {
				y[i] += bs[(i/no)%m]
			}
		}
		shape := tmp.Shape(r)
		shape[0], shape[1] = int64(nb), int64(m)
		for i := range g.rank {
			shape[2+i] = int64(g.out[i])
		}
		if !linear {
			if err := out[0].Resize(tensor.Int32, shape); err != nil {
				return err
			}
			storeFloats(&out[0].Tensor, y)
			return nil
		}
		return requantize(tmp, out[0], y, shape, q, 1, no)
	}, nil
}
