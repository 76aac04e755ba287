package onnx

import (
	"fmt"
	"math"
	"strings"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// Shape functions of recurrent, attention, transposed-convolution and
// quantized operators, and of a few indexing ones.

// convTransposeShape: [N, C, in...] -> [N, M*group, out...], out as the
// kernel computes it: output_shape (or in*stride with SAME padding), else
// stride*(in-1) + output_padding + dilated kernel - pads.
func convTransposeShape(c *shapeCtx) error {
	x, w := c.input(0), c.input(1)
	out := vshape{dt: x.dt}
	if !x.ranked || !w.ranked || len(x.dims) < 3 || len(w.dims) != len(x.dims) {
		c.set(0, out)
		return nil
	}
	r := len(x.dims) - 2
	group := c.n.Attrs.Int("group", 1)
	if err := c.inf.unify(x.dims[1], w.dims[0]); err != nil {
		return err
	}
	ch := unknownDim
	if w.dims[1].known() && group >= 1 && group <= 1<<16 {
		ch = w.dims[1] * dim(group)
	}
	kernel := c.n.Attrs.Ints("kernel_shape")
	if kernel == nil {
		for _, d := range w.dims[2:] {
			kernel = append(kernel, int64(d))
		}
	}
	strides, dil := c.n.Attrs.Ints("strides"), c.n.Attrs.Ints("dilations")
	pads, outPad := c.n.Attrs.Ints("pads"), c.n.Attrs.Ints("output_padding")
	outShape := c.n.Attrs.Ints("output_shape")
	autoPad := c.n.Attrs.String("auto_pad", "NOTSET")
	if len(kernel) != r || (strides != nil && len(strides) != r) || (dil != nil && len(dil) != r) ||
		(pads != nil && len(pads) != 2*r) || (outPad != nil && len(outPad) != r) || (outShape != nil && len(outShape) < r) {
		c.set(0, out)
		return nil
	}
	dims := []dim{x.dims[0], ch}
	for i := range r {
		s, d, op, k := int64(1), int64(1), int64(0), kernel[i]
		if strides != nil {
			s = strides[i]
		}
		if dil != nil {
			d = dil[i]
		}
		if outPad != nil {
			op = outPad[i]
		}
		in := x.dims[2+i]
		bad := s < 1 || d < 1 || k < 1 || s > 1<<20 || d > 1<<20 || k > 1<<20 || op < 0 || op > 1<<20
		switch {
		case outShape != nil:
			v := outShape[len(outShape)-r+i]
			dims = append(dims, unknownDim)
			if v >= 0 && v <= maxDim {
				dims[len(dims)-1] = dim(v)
			}
		case bad || !in.known():
			dims = append(dims, unknownDim)
		case autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER":
			dims = append(dims, in*dim(s))
		default:
			full := s*(int64(in)-1) + op + (k-1)*d + 1
			if pads != nil && autoPad != "VALID" {
				if pads[i] < 0 || pads[r+i] < 0 || pads[i] > maxDim || pads[r+i] > maxDim {
					dims = append(dims, unknownDim)
					continue
				}
				full -= pads[i] + pads[r+i]
			}
			dims = append(dims, dim(max(full, 0)))
		}
	}
	out.ranked, out.dims = true, dims
	c.set(0, out)
	return nil
}

// rnnShape: RNN, GRU and LSTM with layout 0 give Y [seq, dirs, batch,
// hidden] and Y_h (and LSTM's Y_c) [dirs, batch, hidden]; layout 1 puts
// the batch first: [batch, seq, dirs, hidden] and [batch, dirs, hidden].
func rnnShape(c *shapeCtx) error {
	x := c.input(0)
	hidden := c.n.Attrs.Int("hidden_size", 0)
	dirs := dim(1)
	if c.n.Attrs.String("direction", "forward") == "bidirectional" {
		dirs = 2
	}
	if !x.ranked || len(x.dims) != 3 || hidden < 1 || hidden > maxDim {
		return nil
	}
	h := dim(hidden)
	seq, batch := x.dims[0], x.dims[1]
	layout := c.n.Attrs.Int("layout", 0)
	if layout == 1 {
		seq, batch = batch, seq
		c.set(0, ranked(x.dt, batch, seq, dirs, h))
		c.set(1, ranked(x.dt, batch, dirs, h))
		c.set(2, ranked(x.dt, batch, dirs, h))
		return nil
	}
	c.set(0, ranked(x.dt, seq, dirs, batch, h))
	c.set(1, ranked(x.dt, dirs, batch, h))
	c.set(2, ranked(x.dt, dirs, batch, h))
	return nil
}

// attentionShape infers Y: with 4-D inputs [B, heads, Sq, Dh] it is
// [B, heads, Sq, Dv] (V's last dimension); with 3-D inputs [B, Sq, hidden]
// it is [B, Sq, q_num_heads * V's hidden / kv_num_heads].
func attentionShape(c *shapeCtx) error {
	q, v := c.input(0), c.input(2)
	if !q.ranked || !v.ranked || len(q.dims) != len(v.dims) {
		return nil
	}
	switch len(q.dims) {
	case 4:
		c.set(0, ranked(q.dt, q.dims[0], q.dims[1], q.dims[2], v.dims[3]))
	case 3:
		qh, kvh := c.n.Attrs.Int("q_num_heads", 0), c.n.Attrs.Int("kv_num_heads", 0)
		last := unknownDim
		if qh >= 1 && kvh >= 1 && qh <= 1<<16 && v.dims[2].known() && int64(v.dims[2])%kvh == 0 {
			last = dim(qh * (int64(v.dims[2]) / kvh))
		}
		c.set(0, ranked(q.dt, q.dims[0], q.dims[1], last))
	}
	return nil
}

// oneHotShape inserts the depth (a constant) at axis.
func oneHotShape(c *shapeCtx) error {
	idx := c.input(0)
	out := vshape{dt: c.input(2).dt}
	if !idx.ranked {
		c.set(0, out)
		return nil
	}
	r := len(idx.dims) + 1
	axis, ok := normAxisOK(c.n.Attrs.Int("axis", -1), r)
	if !ok {
		return nil
	}
	depth := unknownDim
	if c.n.Const[1] != nil && c.n.Const[1].Kind == KindTensor && c.n.Const[1].Len() == 1 {
		if d := float64At(c.n.Const[1].Tensor.Data, 0); d >= 0 && d <= maxDim {
			depth = dim(d)
		}
	}
	dims := append([]dim{}, idx.dims[:axis]...)
	dims = append(dims, depth)
	dims = append(dims, idx.dims[axis:]...)
	out.ranked, out.dims = true, dims
	c.set(0, out)
	return nil
}

// compressShape: the selected count is data-dependent.
func compressShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt, ranked: true, dims: []dim{unknownDim}}
	if c.n.Attrs.Has("axis") {
		out = vshape{dt: x.dt}
		if x.ranked {
			if axis, ok := normAxisOK(c.n.Attrs.Int("axis", 0), len(x.dims)); ok {
				out.ranked, out.dims = true, append([]dim{}, x.dims...)
				out.dims[axis] = unknownDim
			}
		}
	}
	c.set(0, out)
	return nil
}

// detShape drops the two matrix dimensions.
func detShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	if x.ranked && len(x.dims) >= 2 {
		out.ranked, out.dims = true, append([]dim{}, x.dims[:len(x.dims)-2]...)
	}
	c.set(0, out)
	return nil
}

// qLinearMatMulShape: MatMul of inputs 0 and 3, of the output zero
// point's type.
func qLinearMatMulShape(c *shapeCtx) error {
	sub := &shapeCtx{inf: c.inf, n: c.n, in: []vshape{c.input(0), c.input(3)}, out: make([]vshape, 1)}
	if err := matMulShape(c.input(7).dt)(sub); err != nil {
		return err
	}
	c.set(0, sub.out[0])
	return nil
}

// qLinearConvShape: Conv of inputs 0 and 3, of the output zero point's
// type.
func qLinearConvShape(c *shapeCtx) error {
	sub := &shapeCtx{inf: c.inf, n: c.n, in: []vshape{c.input(0), c.input(3)}, out: make([]vshape, 1)}
	if err := convShape(sub); err != nil {
		return err
	}
	out := sub.out[0]
	out.dt = c.input(7).dt
	if out.dt == tensor.Invalid {
		out.dt = c.input(0).dt
	}
	c.set(0, out)
	return nil
}

// gatherNDShape: indices [..., k] pick slices of data after its first
// batch_dims dimensions: indices.shape[:-1] + data.shape[batch_dims+k:].
func gatherNDShape(c *shapeCtx) error {
	data, idx := c.input(0), c.input(1)
	out := vshape{dt: data.dt}
	b := c.n.Attrs.Int("batch_dims", 0)
	if data.ranked && idx.ranked && len(idx.dims) >= 1 && b >= 0 && b < int64(len(idx.dims)) {
		if k := idx.dims[len(idx.dims)-1]; k.known() && b+int64(k) <= int64(len(data.dims)) {
			out.ranked = true
			out.dims = append(append([]dim{}, idx.dims[:len(idx.dims)-1]...), data.dims[b+int64(k):]...)
		}
	}
	c.set(0, out)
	return nil
}

// rangeShape: ceil((limit - start) / delta) elements when the three are
// constants, as the kernel counts them.
func rangeShape(c *shapeCtx) error {
	out := ranked(c.input(0).dt, unknownDim)
	var v [3]float64
	for i := range v {
		if i >= len(c.n.Const) || c.n.Const[i] == nil || c.n.Const[i].Kind != KindTensor || c.n.Const[i].Len() != 1 {
			c.set(0, out)
			return nil
		}
		v[i] = float64At(c.n.Const[i].Tensor.Data, 0)
	}
	if n := math.Ceil((v[1] - v[0]) / v[2]); v[2] != 0 && n <= maxDim {
		out.dims[0] = dim(max(n, 0))
	}
	c.set(0, out)
	return nil
}

// einsumShape: every output letter takes its size from the inputs; an
// equation with an ellipsis or without an explicit output is left
// unknown.
func einsumShape(c *shapeCtx) error {
	eq := strings.ReplaceAll(c.n.Attrs.String("equation", ""), " ", "")
	lhs, rhs, ok := strings.Cut(eq, "->")
	if !ok || strings.Contains(eq, ".") {
		return nil
	}
	terms := strings.Split(lhs, ",")
	size := map[rune]dim{}
	for i, term := range terms {
		x := c.input(i)
		if !x.ranked || len(x.dims) != len(term) {
			return nil
		}
		for j, l := range term {
			d := x.dims[j]
			prev, seen := size[l]
			switch {
			case !seen || prev == 1 || prev == unknownDim:
				size[l] = d
			case d.known() && prev.known() && d != prev && d != 1:
				return fmt.Errorf("%w: einsum letter %q is %d and %d", errDims, l, prev, d)
			}
		}
	}
	dims := make([]dim, 0, len(rhs))
	for _, l := range rhs {
		d, ok := size[l]
		if !ok {
			return nil
		}
		dims = append(dims, d)
	}
	c.set(0, ranked(c.input(0).dt, dims...))
	return nil
}
