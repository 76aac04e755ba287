package onnx

import (
	"github.com/shoal-ml/shoal/internal/tensor"
)

// convOps are Conv and ConvTranspose over 1-D, 2-D and 3-D (any spatial
// rank) FP32 inputs, computed as im2col (col2im) and one matrix product
// per image and group through sgemm.
func convOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "Conv", Since: 1, New: newConv},
		{Domain: DomainONNX, Type: "ConvTranspose", Since: 1, New: newConvTranspose},
	}
}

// windowAttrs are the attributes convolutions and pooling share.
type windowAttrs struct {
	autoPad   string
	kernel    []int64 // empty: from the weights
	strides   []int64
	dilations []int64
	pads      []int64
	ceil      bool
}

func readWindowAttrs(n *Node) windowAttrs {
	return windowAttrs{
		autoPad:   n.Attrs.String("auto_pad", "NOTSET"),
		kernel:    n.Attrs.Ints("kernel_shape"),
		strides:   n.Attrs.Ints("strides"),
		dilations: n.Attrs.Ints("dilations"),
		pads:      n.Attrs.Ints("pads"),
		ceil:      n.Attrs.Int("ceil_mode", 0) != 0,
	}
}

func (w *windowAttrs) check(n *Node) error {
	switch w.autoPad {
	case "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER":
	default:
		return attrError("%s auto_pad %q", n.OpType, w.autoPad)
	}
	return nil
}

// geom is the resolved geometry of a sliding window over the spatial
// dimensions: input and output sizes, kernel, strides, dilations and the
// padding before (pb) and after (pe) each dimension.
type geom struct {
	rank                     int
	in, out, k, s, d, pb, pe [MaxRank]int
}

// resolve computes g for spatial input sizes in and kernel sizes k.
func (w *windowAttrs) resolve(in, k []int64) (geom, error) {
	var g geom
	g.rank = len(in)
	if len(k) != g.rank || (w.strides != nil && len(w.strides) != g.rank) ||
		(w.dilations != nil && len(w.dilations) != g.rank) || (w.pads != nil && len(w.pads) != 2*g.rank) {
		return g, badInput("window attributes do not match spatial rank %d", g.rank)
	}
	for i := range g.rank {
		g.in[i], g.k[i], g.s[i], g.d[i] = int(in[i]), int(k[i]), 1, 1
		if w.strides != nil {
			g.s[i] = int(w.strides[i])
		}
		if w.dilations != nil {
			g.d[i] = int(w.dilations[i])
		}
		if g.s[i] < 1 || g.d[i] < 1 || g.k[i] < 1 {
			return g, badInput("kernel %v, strides %v, dilations %v", k, w.strides, w.dilations)
		}
		ext := (g.k[i]-1)*g.d[i] + 1
		switch w.autoPad {
		case "VALID":
			g.out[i] = (g.in[i]-ext)/g.s[i] + 1
		case "SAME_UPPER", "SAME_LOWER":
			g.out[i] = (g.in[i] + g.s[i] - 1) / g.s[i]
			total := max(0, (g.out[i]-1)*g.s[i]+ext-g.in[i])
			g.pb[i] = total / 2
			if w.autoPad == "SAME_LOWER" {
				g.pb[i] = total - total/2
			}
			g.pe[i] = total - g.pb[i]
		default:
			if w.pads != nil {
				g.pb[i], g.pe[i] = int(w.pads[i]), int(w.pads[g.rank+i])
			}
			span := g.in[i] + g.pb[i] + g.pe[i] - ext
			if w.ceil {
				g.out[i] = (span+g.s[i]-1)/g.s[i] + 1
				// The last window must start inside the input or the
				// leading padding.
				if (g.out[i]-1)*g.s[i] >= g.in[i]+g.pb[i] {
					g.out[i]--
				}
			} else {
				g.out[i] = span/g.s[i] + 1
			}
		}
		if g.out[i] < 0 {
			g.out[i] = 0
		}
	}
	return g, nil
}

// spatialSize returns the product of the first rank sizes of a.
func spatialSize(a *[MaxRank]int, rank int) int {
	n := 1
	for i := range rank {
		n *= a[i]
	}
	return n
}

// im2col writes into col, for one image of c channels of spatial size
// g.in, the matrix [c*prod(k)][prod(out)] of input values under each
// kernel offset (0 in padding).
func im2col[T float32 | float64](col, x []T, c int, g *geom) {
	nk, no := spatialSize(&g.k, g.rank), spatialSize(&g.out, g.rank)
	ni := spatialSize(&g.in, g.rank)
	row := 0
	for ch := range c {
		img := x[ch*ni : (ch+1)*ni]
		var kpos [MaxRank]int
		for range nk {
			dst := col[row*no : (row+1)*no]
			var opos [MaxRank]int
			for o := range no {
				idx, ok := 0, true
				for i := range g.rank {
					p := opos[i]*g.s[i] - g.pb[i] + kpos[i]*g.d[i]
					if p < 0 || p >= g.in[i] {
						ok = false
						break
					}
					idx = idx*g.in[i] + p
				}
				if ok {
					dst[o] = img[idx]
				} else {
					dst[o] = 0
				}
				odometer(&opos, &g.out, g.rank)
			}
			odometer(&kpos, &g.k, g.rank)
			row++
		}
	}
}

// col2im adds the matrix im2col would read back into the image y of c
// channels of spatial size out (the transposed convolution's output),
// reading windows of the input size in.
func col2im(y, col []float32, c int, g *geom) {
	nk, ni := spatialSize(&g.k, g.rank), spatialSize(&g.in, g.rank)
	no := spatialSize(&g.out, g.rank)
	row := 0
	for ch := range c {
		img := y[ch*no : (ch+1)*no]
		var kpos [MaxRank]int
		for range nk {
			src := col[row*ni : (row+1)*ni]
			var ipos [MaxRank]int
			for i := range ni {
				idx, ok := 0, true
				for a := range g.rank {
					p := ipos[a]*g.s[a] - g.pb[a] + kpos[a]*g.d[a]
					if p < 0 || p >= g.out[a] {
						ok = false
						break
					}
					idx = idx*g.out[a] + p
				}
				if ok {
					img[idx] += src[i]
				}
				odometer(&ipos, &g.in, g.rank)
			}
			odometer(&kpos, &g.k, g.rank)
			row++
		}
	}
}

// odometer advances pos, a position in the box dims[:rank], in row-major
// order, wrapping to zero after the last position.
func odometer(pos, dims *[MaxRank]int, rank int) {
	for i := rank - 1; i >= 0; i-- {
		pos[i]++
		if pos[i] < dims[i] {
			return
		}
		pos[i] = 0
	}
}

func newConv(n *Node) (Kernel, error) {
	w := readWindowAttrs(n)
	group := int(n.Attrs.Int("group", 1))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if err := w.check(n); err != nil {
		return nil, err
	}
	if group < 1 {
		return nil, attrError("Conv group %d", group)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("Conv input", in[0], floatTypes...); err != nil {
			return err
		}
		if err := checkType("Conv weights", in[1], in[0].Tensor.DType); err != nil {
			return err
		}
		x, wt := &in[0].Tensor, &in[1].Tensor
		r := len(x.Shape)
		if r < 3 || len(wt.Shape) != r || r-2 > MaxRank/2 {
			return badInput("Conv of %v with weights %v", x.Shape, wt.Shape)
		}
		nb, c, m := int(x.Shape[0]), int(x.Shape[1]), int(wt.Shape[0])
		if c%group != 0 || m%group != 0 || int(wt.Shape[1])*group != c {
			return badInput("Conv of %d channels, weights %v, group %d", c, wt.Shape, group)
		}
		k := wt.Shape[2:]
		if w.kernel != nil {
			k = w.kernel
		}
		g, err := w.resolve(x.Shape[2:], k)
		if err != nil {
			return err
		}
		shape := tmp.Shape(r)
		shape[0], shape[1] = int64(nb), int64(m)
		for i := range g.rank {
			shape[2+i] = int64(g.out[i])
		}
		if err := out[0].Resize(x.DType, shape); err != nil {
			return err
		}
		cg, mg := c/group, m/group
		nk := spatialSize(&g.k, g.rank)
		ni, no := spatialSize(&g.in, g.rank), spatialSize(&g.out, g.rank)
		kk := cg * nk
		// FP16 and FP64 are computed in float32 scratch memory.
		nx, nw, ny := x.Len(), wt.Len(), nb*m*no
		wide := x.DType != tensor.FP32
		extra := 0
		if wide {
			extra = nx + nw + m + ny
		}
		buf := tmp.Float32s(kk*no + extra)
		col := buf[:kk*no]
		var xs, ws, y []float32
		if wide {
			xs, ws = toFloat32s(x, buf[kk*no:kk*no+nx]), toFloat32s(wt, buf[kk*no+nx:kk*no+nx+nw])
			y = buf[kk*no+nx+nw+m:]
		} else {
			xs, ws, y = x.Data.([]float32), wt.Data.([]float32), out[0].Float32s()
		}
		var bias []float32
		if b := Arg(in, 2); b.Kind != KindNone {
			if err := checkType("Conv bias", b, x.DType); err != nil {
				return err
			}
			if b.Len() != m {
				return badInput("Conv bias of %d for %d maps", b.Len(), m)
			}
			if wide {
				bias = toFloat32s(&b.Tensor, buf[kk*no+nx+nw:kk*no+nx+nw+m])
			} else {
				bias = b.Float32s()
			}
		}
		for b := range nb {
			for gi := range group {
				xi := xs[(b*c+gi*cg)*ni : (b*c+(gi+1)*cg)*ni]
				im2col(col, xi, cg, &g)
				yo := y[(b*m+gi*mg)*no : (b*m+(gi+1)*mg)*no]
				sgemm(false, false, mg, no, kk, 1, ws[gi*mg*kk:(gi+1)*mg*kk], kk, col, no, 0, yo, no)
			}
			if bias != nil {
				for j := range m {
					row := y[(b*m+j)*no : (b*m+j+1)*no]
					for i := range row {
						row[i] += bias[j]
					}
				}
			}
		}
		if wide {
			fromFloat32s(&out[0].Tensor, y)
		}
		return nil
	}, nil
}

// toFloat32s returns the elements of an FP16 or FP64 tensor as float32
// in buf.
func toFloat32s(t *tensor.Tensor, buf []float32) []float32 {
	switch d := t.Data.(type) {
	case []float64:
		for i, v := range d {
			buf[i] = float32(v)
		}
	case []uint16:
		for i, v := range d {
			buf[i] = tensor.Float16ToFloat32(v)
		}
	case []float32:
		copy(buf, d)
	}
	return buf
}

// fromFloat32s stores vals into an FP16 or FP64 tensor.
func fromFloat32s(t *tensor.Tensor, vals []float32) {
	switch d := t.Data.(type) {
	case []float64:
		for i := range d {
			d[i] = float64(vals[i])
		}
	case []uint16:
		for i := range d {
			d[i] = tensor.Float32ToFloat16(vals[i])
		}
	case []float32:
		copy(d, vals)
	}
}

func newConvTranspose(n *Node) (Kernel, error) {
	w := readWindowAttrs(n)
	group := int(n.Attrs.Int("group", 1))
	outShape := n.Attrs.Ints("output_shape")
	outPad := n.Attrs.Ints("output_padding")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if err := w.check(n); err != nil {
		return nil, err
	}
	if group < 1 {
		return nil, attrError("ConvTranspose group %d", group)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkType("ConvTranspose input", in[0], tensor.FP32); err != nil {
			return err
		}
		if err := checkType("ConvTranspose weights", in[1], tensor.FP32); err != nil {
			return err
		}
		x, wt := &in[0].Tensor, &in[1].Tensor
		r := len(x.Shape)
		if r < 3 || len(wt.Shape) != r || r-2 > MaxRank/2 {
			return badInput("ConvTranspose of %v with weights %v", x.Shape, wt.Shape)
		}
		nb, c := int(x.Shape[0]), int(x.Shape[1])
		if int(wt.Shape[0]) != c || c%group != 0 {
			return badInput("ConvTranspose of %d channels, weights %v, group %d", c, wt.Shape, group)
		}
		mg := int(wt.Shape[1])
		m := mg * group
		k := wt.Shape[2:]
		if w.kernel != nil {
			k = w.kernel
		}
		sr := r - 2
		// The geometry of the forward convolution whose input is our
		// output: g.in is our input, g.out our output.
		var g geom
		g.rank = sr
		for i := range sr {
			g.in[i], g.k[i], g.s[i], g.d[i] = int(x.Shape[2+i]), int(k[i]), 1, 1
			if w.strides != nil {
				g.s[i] = int(w.strides[i])
			}
			if w.dilations != nil {
				g.d[i] = int(w.dilations[i])
			}
			op := 0
			if outPad != nil {
				op = int(outPad[i])
			}
			ext := (g.k[i]-1)*g.d[i] + 1
			full := g.s[i]*(g.in[i]-1) + op + ext
			switch {
			case outShape != nil || w.autoPad == "SAME_UPPER" || w.autoPad == "SAME_LOWER":
				want := g.in[i] * g.s[i]
				if outShape != nil {
					want = int(outShape[len(outShape)-sr+i])
				}
				// Floor division, as ONNX's reference: total may be
				// negative (an output larger than the full one).
				total := full - want
				half := total >> 1
				if w.autoPad == "SAME_UPPER" {
					g.pb[i] = half
				} else {
					g.pb[i] = total - half
				}
				g.pe[i] = total - g.pb[i]
				g.out[i] = want
			default:
				if w.pads != nil && w.autoPad != "VALID" {
					g.pb[i], g.pe[i] = int(w.pads[i]), int(w.pads[sr+i])
				}
				g.out[i] = full - g.pb[i] - g.pe[i]
			}
			if g.out[i] < 0 {
				return badInput("ConvTranspose output size %d", g.out[i])
			}
		}
		shape := tmp.Shape(r)
		shape[0], shape[1] = int64(nb), int64(m)
		for i := range sr {
			shape[2+i] = int64(g.out[i])
		}
		if err := out[0].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		y := out[0].Float32s()
		clear(y)
		var bias []float32
		if b := Arg(in, 2); b.Kind != KindNone {
			if err := checkType("ConvTranspose bias", b, tensor.FP32); err != nil {
				return err
			}
			if bias = b.Float32s(); len(bias) != m {
				return badInput("ConvTranspose bias of %d for %d maps", len(bias), m)
			}
		}
		cg := c / group
		nk := spatialSize(&g.k, sr)
		ni, no := spatialSize(&g.in, sr), spatialSize(&g.out, sr)
		kk := mg * nk
		col := tmp.Float32s(kk * ni)
		xs, ws := x.Data.([]float32), wt.Data.([]float32)
		for b := range nb {
			for gi := range group {
				xi := xs[(b*c+gi*cg)*ni : (b*c+(gi+1)*cg)*ni]
				// col[kk][ni] = W_g^T [kk][cg] * X_g [cg][ni]
				sgemm(true, false, kk, ni, cg, 1, ws[gi*cg*kk:(gi+1)*cg*kk], kk, xi, ni, 0, col, ni)
				col2im(y[(b*m+gi*mg)*no:(b*m+(gi+1)*mg)*no], col, mg, &g)
			}
			if bias != nil {
				for j := range m {
					row := y[(b*m+j)*no : (b*m+j+1)*no]
					for i := range row {
						row[i] += bias[j]
					}
				}
			}
		}
		return nil
	}, nil
}
