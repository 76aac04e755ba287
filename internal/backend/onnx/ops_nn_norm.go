package onnx

import (
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// normOps are the normalizations: BatchNormalization (inference, and
// training mode's batch statistics), InstanceNormalization,
// LayerNormalization, GroupNormalization, LRN, LpNormalization and
// MeanVarianceNormalization. They compute in float64.
func normOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "BatchNormalization", Since: 6, New: newBatchNorm},
		{Domain: DomainONNX, Type: "InstanceNormalization", Since: 6, New: newInstanceNorm},
		{Domain: DomainONNX, Type: "LayerNormalization", Since: 17, New: newLayerNorm},
		{Domain: DomainONNX, Type: "RMSNormalization", Since: 23, New: newRMSNorm},
		{Domain: DomainONNX, Type: "GroupNormalization", Since: 18, New: newGroupNorm},
		{Domain: DomainONNX, Type: "LRN", Since: 1, New: newLRN},
		{Domain: DomainONNX, Type: "LpNormalization", Since: 1, New: newLpNorm},
		{Domain: DomainONNX, Type: "MeanVarianceNormalization", Since: 9, New: newMVN},
	}
}

// floatInputs checks that the present inputs are floating-point tensors
// and widens them to float64, in one scratch buffer.
func floatInputs(tmp *Scratch, what string, in []*Value, extra int) (vals [8][]float64, rest []float64, err error) {
	total := extra
	for _, v := range in {
		if v.Kind == KindNone {
			continue
		}
		if err := checkType(what, v, floatTypes...); err != nil {
			return vals, nil, err
		}
		total += v.Len()
	}
	buf := tmp.Float64s(total)
	off := 0
	for i, v := range in {
		if v.Kind == KindNone || i >= len(vals) {
			continue
		}
		vals[i] = floatsOf(&v.Tensor, buf[off:off+v.Len()])
		off += v.Len()
	}
	return vals, buf[off:], nil
}

func newBatchNorm(n *Node) (Kernel, error) {
	eps := float64(n.Attrs.Float("epsilon", 1e-5))
	momentum := float64(n.Attrs.Float("momentum", 0.9))
	training := n.Attrs.Int("training_mode", 0) != 0
	n.Attrs.Int("spatial", 1)
	n.Attrs.Int("is_test", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if len(in) < 5 {
			return badInput("BatchNormalization needs 5 inputs")
		}
		x := &in[0].Tensor
		if len(x.Shape) < 2 {
			return badInput("BatchNormalization of %v", x.Shape)
		}
		c := int(x.Shape[1])
		nx := numel(x.Shape)
		vals, rest, err := floatInputs(tmp, "BatchNormalization", in[:5], nx+4*c)
		if err != nil {
			return err
		}
		xs, scale, bias, mean, vr := vals[0], vals[1], vals[2], vals[3], vals[4]
		if len(scale) != c || len(bias) != c || len(mean) != c || len(vr) != c {
			return badInput("BatchNormalization parameters for %d channels", c)
		}
		ys := rest[:nx]
		bm, bv := rest[nx:nx+c], rest[nx+c:nx+2*c]
		inner := numel(x.Shape[2:])
		batch := int(x.Shape[0])
		if training {
			cnt := float64(batch * inner)
			for ch := range c {
				s, ss := 0.0, 0.0
				for b := range batch {
					for _, v := range xs[(b*c+ch)*inner : (b*c+ch+1)*inner] {
						s += v
					}
				}
				m := s / cnt
				for b := range batch {
					for _, v := range xs[(b*c+ch)*inner : (b*c+ch+1)*inner] {
						ss += (v - m) * (v - m)
					}
				}
				bm[ch], bv[ch] = m, ss/cnt
			}
		} else {
			copy(bm, mean)
			copy(bv, vr)
		}
		for b := range batch {
			for ch := range c {
				k := scale[ch] / math.Sqrt(bv[ch]+eps)
				off := bias[ch] - bm[ch]*k
				seg := (b*c + ch) * inner
				for i := seg; i < seg+inner; i++ {
					ys[i] = xs[i]*k + off
				}
			}
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		if training && len(out) >= 3 {
			rm, rv := rest[nx+2*c:nx+3*c], rest[nx+3*c:nx+4*c]
			for ch := range c {
				rm[ch] = mean[ch]*momentum + bm[ch]*(1-momentum)
				rv[ch] = vr[ch]*momentum + bv[ch]*(1-momentum)
			}
			for i, v := range [][]float64{rm, rv} {
				o := out[1+i]
				if o == nil {
					continue
				}
				if err := o.Resize(in[3+i].Tensor.DType, in[3+i].Tensor.Shape); err != nil {
					return err
				}
				storeFloats(&o.Tensor, v)
			}
		}
		return nil
	}, nil
}

// normalizeGroups normalizes ys = (xs - mean) / sqrt(var + eps) over
// consecutive groups of size g, storing each group's mean and 1/stddev
// when the slices are not nil.
func normalizeGroups(ys, xs []float64, g int, eps float64, means, inv []float64) {
	for k := 0; k*g < len(xs); k++ {
		seg := xs[k*g : (k+1)*g]
		m := 0.0
		for _, v := range seg {
			m += v
		}
		m /= float64(g)
		vr := 0.0
		for _, v := range seg {
			vr += (v - m) * (v - m)
		}
		vr /= float64(g)
		is := 1 / math.Sqrt(vr+eps)
		for i, v := range seg {
			ys[k*g+i] = (v - m) * is
		}
		if means != nil {
			means[k] = m
		}
		if inv != nil {
			inv[k] = is
		}
	}
}

func newInstanceNorm(n *Node) (Kernel, error) {
	eps := float64(n.Attrs.Float("epsilon", 1e-5))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		if len(x.Shape) < 3 {
			return badInput("InstanceNormalization of %v", x.Shape)
		}
		nx := numel(x.Shape)
		vals, rest, err := floatInputs(tmp, "InstanceNormalization", in[:3], nx)
		if err != nil {
			return err
		}
		c, inner := int(x.Shape[1]), numel(x.Shape[2:])
		scale, bias := vals[1], vals[2]
		if len(scale) != c || len(bias) != c {
			return badInput("InstanceNormalization parameters for %d channels", c)
		}
		ys := rest[:nx]
		normalizeGroups(ys, vals[0], inner, eps, nil, nil)
		for i := range ys {
			ch := (i / inner) % c
			ys[i] = ys[i]*scale[ch] + bias[ch]
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

// newLayerNorm builds LayerNormalization: normalization over the
// dimensions from axis on, then Scale and B (broadcast to those
// dimensions); the optional outputs are the mean and 1/stddev.
func newLayerNorm(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", -1)
	eps := float64(n.Attrs.Float("epsilon", 1e-5))
	n.Attrs.Int("stash_type", 1)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		r := len(x.Shape)
		ax, err := normAxis(axis, r)
		if err != nil {
			return err
		}
		nx := numel(x.Shape)
		d := numel(x.Shape[ax:])
		rows := nx / max(d, 1)
		args := in[:min(len(in), 3)]
		vals, rest, err := floatInputs(tmp, "LayerNormalization", args, nx+2*d+2*rows)
		if err != nil {
			return err
		}
		ys, sc, bs := rest[:nx], rest[nx:nx+d], rest[nx+d:nx+2*d]
		means, inv := rest[nx+2*d:nx+2*d+rows], rest[nx+2*d+rows:]
		norm := x.Shape[ax:]
		if err := broadcastFloats(sc, vals[1], in[1].Tensor.Shape, norm); err != nil {
			return err
		}
		fill(bs, 0)
		if vals[2] != nil {
			if err := broadcastFloats(bs, vals[2], in[2].Tensor.Shape, norm); err != nil {
				return err
			}
		}
		normalizeGroups(ys, vals[0], d, eps, means, inv)
		for i := range ys {
			j := i % d
			ys[i] = ys[i]*sc[j] + bs[j]
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		stat := tmp.Shape(r)
		copy(stat, x.Shape)
		for i := ax; i < r; i++ {
			stat[i] = 1
		}
		for i, v := range [][]float64{means, inv} {
			if len(out) <= 1+i || out[1+i] == nil {
				continue
			}
			// The statistics have the computation type: FP32 unless the
			// input is FP64 (stash_type 1).
			dt := tensor.FP32
			if x.DType == tensor.FP64 {
				dt = tensor.FP64
			}
			if err := out[1+i].Resize(dt, stat); err != nil {
				return err
			}
			storeFloats(&out[1+i].Tensor, v)
		}
		return nil
	}, nil
}

// broadcastFloats writes src (of shape from) broadcast to shape to into
// dst.
func broadcastFloats(dst, src []float64, from, to []int64) error {
	if len(from) > len(to) {
		return badInput("shape %v does not broadcast to %v", from, to)
	}
	off := len(to) - len(from)
	for i, d := range from {
		if d != 1 && d != to[off+i] {
			return badInput("shape %v does not broadcast to %v", from, to)
		}
	}
	st := bcastStrides(from, to)
	gatherStrided(dst, src, to, &st, 0)
	return nil
}

// newGroupNorm builds GroupNormalization: channels are split into
// num_groups groups normalized together; scale and bias are per channel
// (opset 21) or per group (opset 18).
func newGroupNorm(n *Node) (Kernel, error) {
	eps := float64(n.Attrs.Float("epsilon", 1e-5))
	groups := int(n.Attrs.Int("num_groups", 0))
	n.Attrs.Int("stash_type", 1)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if groups < 1 {
		return nil, attrError("GroupNormalization num_groups %d", groups)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		if len(x.Shape) < 2 {
			return badInput("GroupNormalization of %v", x.Shape)
		}
		nx := numel(x.Shape)
		vals, rest, err := floatInputs(tmp, "GroupNormalization", in[:3], nx)
		if err != nil {
			return err
		}
		c, inner := int(x.Shape[1]), numel(x.Shape[2:])
		if c%groups != 0 {
			return badInput("GroupNormalization of %d channels in %d groups", c, groups)
		}
		scale, bias := vals[1], vals[2]
		perGroup := len(scale) == groups && groups != c
		if !perGroup && len(scale) != c {
			return badInput("GroupNormalization scale of %d", len(scale))
		}
		ys := rest[:nx]
		normalizeGroups(ys, vals[0], c/groups*inner, eps, nil, nil)
		for i := range ys {
			ch := (i / inner) % c
			if perGroup {
				ch /= c / groups
			}
			ys[i] = ys[i]*scale[ch] + bias[ch]
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

func newLRN(n *Node) (Kernel, error) {
	alpha := float64(n.Attrs.Float("alpha", 1e-4))
	beta := float64(n.Attrs.Float("beta", 0.75))
	bias := float64(n.Attrs.Float("bias", 1))
	size := int(n.Attrs.Int("size", 0))
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if size < 1 {
		return nil, attrError("LRN size %d", size)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		if len(x.Shape) < 3 {
			return badInput("LRN of %v", x.Shape)
		}
		nx := numel(x.Shape)
		vals, rest, err := floatInputs(tmp, "LRN", in[:1], nx)
		if err != nil {
			return err
		}
		xs, ys := vals[0], rest[:nx]
		c, inner := int(x.Shape[1]), numel(x.Shape[2:])
		lo, hi := (size-1)/2, (size-1)-(size-1)/2
		for i := range xs {
			ch := (i / inner) % c
			base := i - ch*inner
			s := 0.0
			for k := max(0, ch-lo); k <= min(c-1, ch+hi); k++ {
				v := xs[base+k*inner]
				s += v * v
			}
			ys[i] = xs[i] / math.Pow(bias+alpha/float64(size)*s, beta)
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

func newLpNorm(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", -1)
	p := n.Attrs.Int("p", 2)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if p != 1 && p != 2 {
		return nil, attrError("LpNormalization p %d", p)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		nx := numel(x.Shape)
		vals, rest, err := floatInputs(tmp, "LpNormalization", in[:1], nx)
		if err != nil {
			return err
		}
		xs, ys := vals[0], rest[:nx]
		outer, d, inner := numel(x.Shape[:ax]), int(x.Shape[ax]), numel(x.Shape[ax+1:])
		for o := range outer {
			for i := range inner {
				s := 0.0
				for k := range d {
					v := xs[(o*d+k)*inner+i]
					if p == 1 {
						s += math.Abs(v)
					} else {
						s += v * v
					}
				}
				if p == 2 {
					s = math.Sqrt(s)
				}
				for k := range d {
					j := (o*d+k)*inner + i
					if s == 0 {
						ys[j] = 0
					} else {
						ys[j] = xs[j] / s
					}
				}
			}
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

// newMVN builds MeanVarianceNormalization over axes (default 0, 2, 3).
func newMVN(n *Node) (Kernel, error) {
	axes := n.Attrs.Ints("axes")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if axes == nil {
		axes = []int64{0, 2, 3}
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		r := len(x.Shape)
		if r > MaxRank {
			return badInput("MeanVarianceNormalization of rank %d", r)
		}
		var red [MaxRank]bool
		for _, a := range axes {
			ax, err := normAxis(a, r)
			if err != nil {
				return err
			}
			red[ax] = true
		}
		nx := numel(x.Shape)
		full := tmp.Shape(r)
		for i, d := range x.Shape {
			full[i] = d
			if red[i] {
				full[i] = 1
			}
		}
		ns := numel(full)
		vals, rest, err := floatInputs(tmp, "MeanVarianceNormalization", in[:1], nx+2*ns)
		if err != nil {
			return err
		}
		xs, ys, mean, sq := vals[0], rest[:nx], rest[nx:nx+ns], rest[nx+ns:]
		st := rowStrides(full)
		for i := range r {
			if red[i] {
				st[i] = 0
			}
		}
		last := 0
		if r > 0 {
			last = st[r-1]
		}
		cnt := float64(nx / max(ns, 1))
		fill(mean, 0)
		fill(sq, 0)
		walk3(x.Shape, &st, nil, nil, func(o, a, _, _, n int) {
			for j := range n {
				v := xs[o+j]
				mean[a+j*last] += v
				sq[a+j*last] += v * v
			}
		})
		for i := range mean {
			mean[i] /= cnt
			sq[i] = math.Sqrt(max(sq[i]/cnt-mean[i]*mean[i], 0)) + 1e-9
		}
		walk3(x.Shape, &st, nil, nil, func(o, a, _, _, n int) {
			for j := range n {
				ys[o+j] = (xs[o+j] - mean[a+j*last]) / sq[a+j*last]
			}
		})
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}

// newRMSNorm builds RMSNormalization: X / sqrt(mean(X^2) + epsilon) over
// the dimensions from axis on, times Scale (broadcast to them).
func newRMSNorm(n *Node) (Kernel, error) {
	axis := n.Attrs.Int("axis", -1)
	eps := float64(n.Attrs.Float("epsilon", 1e-5))
	n.Attrs.Int("stash_type", 1)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := &in[0].Tensor
		ax, err := normAxis(axis, len(x.Shape))
		if err != nil {
			return err
		}
		nx := numel(x.Shape)
		d := numel(x.Shape[ax:])
		vals, rest, err := floatInputs(tmp, "RMSNormalization", in[:2], nx+d)
		if err != nil {
			return err
		}
		ys, sc := rest[:nx], rest[nx:nx+d]
		if err := broadcastFloats(sc, vals[1], in[1].Tensor.Shape, x.Shape[ax:]); err != nil {
			return err
		}
		xs := vals[0]
		for k := 0; k*d < nx; k++ {
			seg := xs[k*d : (k+1)*d]
			ms := 0.0
			for _, v := range seg {
				ms += v * v
			}
			inv := 1 / math.Sqrt(ms/float64(d)+eps)
			for i, v := range seg {
				ys[k*d+i] = v * inv * sc[i]
			}
		}
		if err := out[0].Resize(x.DType, x.Shape); err != nil {
			return err
		}
		storeFloats(&out[0].Tensor, ys)
		return nil
	}, nil
}
