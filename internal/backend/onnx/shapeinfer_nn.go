package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// Shape functions of convolutions, pooling, reductions and the operators
// whose output size depends on a constant input (Reshape, Slice, Expand,
// Tile, Pad, Split, TopK, ...).

// windowOut computes one spatial output size of a convolution or pooling
// window, as the kernels do (windowAttrs.resolve); unknown when the input
// size is not known or an attribute is out of range.
func windowOut(in dim, k, s, d, pb, pe int64, autoPad string, ceil bool) dim {
	if !in.known() || k < 1 || s < 1 || d < 1 || k > maxDim || s > maxDim || d > maxDim || pb < 0 || pe < 0 || pb > maxDim || pe > maxDim {
		return unknownDim
	}
	x := int64(in)
	ext := (k-1)*d + 1
	if ext > maxDim {
		return unknownDim
	}
	var out int64
	switch autoPad {
	case "VALID":
		out = (x-ext)/s + 1
		if x < ext {
			out = 0
		}
	case "SAME_UPPER", "SAME_LOWER":
		out = (x + s - 1) / s
	default:
		span := x + pb + pe - ext
		if ceil {
			out = (span+s-1)/s + 1
			if (out-1)*s >= x+pb {
				out--
			}
		} else {
			out = span/s + 1
		}
		if span < 0 {
			// Go division truncates toward zero; a negative span means no
			// window fits.
			out = 0
		}
	}
	return dim(max(out, 0))
}

// windowShape: [N, C, spatial...] -> [N, channels, out...].
func windowShape(c *shapeCtx, x vshape, channels dim, kernel []int64) vshape {
	r := len(x.dims) - 2
	if len(kernel) != r {
		return vshape{dt: x.dt}
	}
	strides := c.n.Attrs.Ints("strides")
	dil := c.n.Attrs.Ints("dilations")
	pads := c.n.Attrs.Ints("pads")
	autoPad := c.n.Attrs.String("auto_pad", "NOTSET")
	ceil := c.n.Attrs.Int("ceil_mode", 0) != 0
	if (strides != nil && len(strides) != r) || (dil != nil && len(dil) != r) || (pads != nil && len(pads) != 2*r) {
		return vshape{dt: x.dt}
	}
	dims := []dim{x.dims[0], channels}
	for i := range r {
		s, d, pb, pe := int64(1), int64(1), int64(0), int64(0)
		if strides != nil {
			s = strides[i]
		}
		if dil != nil {
			d = dil[i]
		}
		if pads != nil {
			pb, pe = pads[i], pads[r+i]
		}
		dims = append(dims, windowOut(x.dims[2+i], kernel[i], s, d, pb, pe, autoPad, ceil))
	}
	return vshape{dt: x.dt, ranked: true, dims: dims}
}

func convShape(c *shapeCtx) error {
	x, w := c.input(0), c.input(1)
	dt := x.dt
	if c.n.OpType == "ConvInteger" {
		dt = tensor.Int32
	}
	if !x.ranked || !w.ranked || len(x.dims) < 3 || len(w.dims) != len(x.dims) {
		c.set(0, vshape{dt: dt})
		return nil
	}
	group := c.n.Attrs.Int("group", 1)
	if group >= 1 && group <= maxDim {
		switch {
		case group == 1:
			if err := c.inf.unify(x.dims[1], w.dims[1]); err != nil {
				return fmt.Errorf("input channels: %w", err)
			}
		case w.dims[1].known():
			if err := c.inf.unify(x.dims[1], w.dims[1]*dim(group)); err != nil {
				return fmt.Errorf("input channels: %w", err)
			}
		}
	}
	x.dims = resolveAll(c.inf, x.dims)
	kernel := c.n.Attrs.Ints("kernel_shape")
	if kernel == nil {
		for _, d := range w.dims[2:] {
			if !d.known() {
				c.set(0, vshape{dt: dt})
				return nil
			}
			kernel = append(kernel, int64(d))
		}
	}
	out := windowShape(c, x, w.dims[0], kernel)
	out.dt = dt
	c.set(0, out)
	return nil
}

func poolShape(c *shapeCtx) error {
	x := c.input(0)
	if !x.ranked || len(x.dims) < 3 {
		c.set(0, vshape{dt: x.dt})
		return nil
	}
	out := windowShape(c, x, x.dims[1], c.n.Attrs.Ints("kernel_shape"))
	c.set(0, out)
	if c.n.OpType == "MaxPool" {
		c.set(1, vshape{dt: tensor.Int64, ranked: out.ranked, dims: out.dims})
	}
	return nil
}

func globalPoolShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	if x.ranked && len(x.dims) >= 2 {
		out.ranked = true
		out.dims = append([]dim{}, x.dims[:2]...)
		for range x.dims[2:] {
			out.dims = append(out.dims, 1)
		}
	}
	c.set(0, out)
	return nil
}

// reduceShape: the reduced axes dropped, or kept as 1 (keepdims). Axes are
// an attribute before opset 13 (ReduceSum) or 18 (the others), an input
// since.
func reduceShape(typ string, version int64) shapeFunc {
	inputFrom := int64(18)
	if typ == "ReduceSum" {
		inputFrom = 13
	}
	return func(c *shapeCtx) error {
		x := c.input(0)
		out := vshape{dt: x.dt}
		axes, _, ok := c.axesOf(inputFrom, 1)
		keep := c.n.Attrs.Int("keepdims", 1) != 0
		if !ok && keep && x.ranked {
			// Axes known only at run time: the rank is kept.
			out.ranked, out.dims = true, unknownDims(len(x.dims))
		}
		if !ok || !x.ranked {
			c.set(0, out)
			return nil
		}
		if len(axes) == 0 && version >= inputFrom && c.n.Attrs.Int("noop_with_empty_axes", 0) != 0 {
			c.set(0, vshape{dt: x.dt, ranked: true, dims: x.dims})
			return nil
		}
		c.set(0, reduceDims(x, axes, keep))
		return nil
	}
}

// reduceDims reduces the given axes (all when none) of x.
func reduceDims(x vshape, axes []int64, keep bool) vshape {
	r := len(x.dims)
	red := make([]bool, r)
	for _, a := range axes {
		i, ok := normAxisOK(a, r)
		if !ok {
			return vshape{dt: x.dt}
		}
		red[i] = true
	}
	out := vshape{dt: x.dt, ranked: true, dims: []dim{}}
	for i, d := range x.dims {
		switch {
		case !red[i] && len(axes) > 0:
			out.dims = append(out.dims, d)
		case keep:
			out.dims = append(out.dims, 1)
		}
	}
	return out
}

func argShape(c *shapeCtx) error {
	x := c.input(0)
	if !x.ranked || len(x.dims) == 0 {
		c.set(0, vshape{dt: tensor.Int64})
		return nil
	}
	out := reduceDims(x, []int64{c.n.Attrs.Int("axis", 0)}, c.n.Attrs.Int("keepdims", 1) != 0)
	out.dt = tensor.Int64
	c.set(0, out)
	return nil
}

// reshapeShape resolves the target shape: 0 copies the input dimension
// (unless allowzero), -1 takes what is left, computed from sizes or a
// single symbol.
func reshapeShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	target, ok := c.ints(1)
	if !ok {
		if raw, ok2 := c.constInt64s(1); ok2 && len(raw) <= maxVal {
			target = make([]elem, len(raw))
			for i, v := range raw {
				target[i] = constElem(v)
			}
			ok = true
		}
	}
	if !ok {
		if s := c.input(1); s.ranked && len(s.dims) == 1 && s.dims[0].known() && s.dims[0] <= maxVal {
			out.ranked, out.dims = true, unknownDims(int(s.dims[0]))
		}
		c.set(0, out)
		return nil
	}
	allowZero := c.n.Version >= 14 && c.n.Attrs.Int("allowzero", 0) != 0
	dims := make([]dim, len(target))
	infer := -1
	for i, e := range target {
		switch {
		case e.isConst && e.c == -1:
			if infer >= 0 {
				return fmt.Errorf("%w: two -1 in the target shape", errDims)
			}
			infer = i
			dims[i] = unknownDim
		case e.isConst && e.c == 0 && !allowZero:
			dims[i] = unknownDim
			if x.ranked && i < len(x.dims) {
				dims[i] = x.dims[i]
			}
		case e.isConst && e.c < -1:
			return fmt.Errorf("%w: target dimension %d", errDims, e.c)
		default:
			dims[i] = e.asDim()
		}
	}
	if x.ranked {
		if err := solveReshape(x.dims, dims, infer); err != nil {
			return err
		}
	}
	out.ranked, out.dims = true, dims
	c.set(0, out)
	return nil
}

// solveReshape fills dims[infer] (when infer >= 0) so that the element
// counts of in and dims agree, and checks them when both are known.
func solveReshape(in, dims []dim, infer int) error {
	inP, inSyms := factor(in, -1)
	outP, outSyms := factor(dims, infer)
	if inP < 0 || outP < 0 {
		return nil // an unknown dimension or an overflow
	}
	// Cancel the symbols both sides share.
	rest := inSyms[:0:0]
	for _, s := range inSyms {
		found := false
		for j, t := range outSyms {
			if t == s {
				outSyms = append(outSyms[:j:j], outSyms[j+1:]...)
				found = true
				break
			}
		}
		if !found {
			rest = append(rest, s)
		}
	}
	if len(outSyms) > 0 {
		return nil
	}
	if infer < 0 {
		if len(rest) == 0 && inP != outP {
			return fmt.Errorf("%w: %d elements cannot be reshaped to %d", errDims, inP, outP)
		}
		return nil
	}
	switch {
	case len(rest) == 0 && outP == 0:
	case len(rest) == 0:
		if inP%outP != 0 {
			return fmt.Errorf("%w: %d elements cannot be reshaped with %d per -1", errDims, inP, outP)
		}
		dims[infer] = dim(inP / outP)
	case len(rest) == 1 && inP == outP:
		dims[infer] = rest[0]
	}
	return nil
}

// factor splits the product of ds (skipping index skip) into a size and a
// list of symbols; size -1 when a dimension is unknown or the product
// overflows.
func factor(ds []dim, skip int) (int64, []dim) {
	p := int64(1)
	var syms []dim
	for i, d := range ds {
		switch {
		case i == skip:
		case d.known():
			if d != 0 && p > maxDim/int64(d) {
				return -1, nil
			}
			p *= int64(d)
		case d.isSymbol():
			syms = append(syms, d)
		default:
			return -1, nil
		}
	}
	return p, syms
}

// sliceShape: sizes along the sliced axes when starts, ends and steps are
// constants and the sliced dimensions known (or the slice is [0, big) of
// a symbol); other dimensions pass through.
func sliceShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	if !x.ranked {
		c.set(0, out)
		return nil
	}
	r := len(x.dims)
	starts, ok1 := c.constInt64s(1)
	ends, ok2 := c.constInt64s(2)
	if !ok1 || !ok2 || len(starts) != len(ends) {
		out.ranked, out.dims = true, unknownDims(r)
		c.set(0, out)
		return nil
	}
	axes := make([]int64, len(starts))
	for i := range axes {
		axes[i] = int64(i)
	}
	if c.present(3) {
		a, ok := c.constInt64s(3)
		if !ok || len(a) != len(starts) {
			out.ranked, out.dims = true, unknownDims(r)
			c.set(0, out)
			return nil
		}
		axes = a
	}
	steps := make([]int64, len(starts))
	for i := range steps {
		steps[i] = 1
	}
	if c.present(4) {
		s, ok := c.constInt64s(4)
		if !ok || len(s) != len(starts) {
			out.ranked, out.dims = true, unknownDims(r)
			c.set(0, out)
			return nil
		}
		steps = s
	}
	dims := append([]dim{}, x.dims...)
	// lo and hi bound the elements a 1-D slice keeps, when it keeps a
	// contiguous run of known ones (-1: not known).
	lo, hi := make([]int64, r), make([]int64, r)
	for i := range lo {
		lo[i], hi[i] = -1, -1
	}
	sliced := make([]bool, r)
	for i, a := range axes {
		ax, ok := normAxisOK(a, r)
		if !ok || steps[i] == 0 {
			return nil
		}
		sliced[ax] = true
		d := x.dims[ax]
		if d.isSymbol() && steps[i] == 1 && starts[i] == 0 && ends[i] >= maxDim {
			continue // the whole symbolic dimension
		}
		if !d.known() {
			dims[ax] = unknownDim
			continue
		}
		n := sliceLen(int64(d), starts[i], ends[i], steps[i])
		dims[ax] = dim(n)
		if steps[i] == 1 {
			lo[ax], hi[ax] = clampIndex(starts[i], int64(d)), clampIndex(starts[i], int64(d))+n
		}
	}
	out.ranked, out.dims = true, dims
	if r == 1 && x.val != nil && sliced[0] && lo[0] >= 0 && hi[0] >= lo[0] && hi[0] <= int64(len(x.val)) {
		out.val = append([]elem{}, x.val[lo[0]:hi[0]]...)
	}
	c.set(0, out)
	return nil
}

// sliceLen is the number of elements of range(start, end, step) over a
// dimension of n, clamped as the Slice kernel clamps (sliceBounds).
func sliceLen(n, start, end, step int64) int64 {
	b, e := sliceBounds(start, end, step, n)
	// A step longer than the dimension takes one element either way;
	// bounding it keeps the arithmetic below from overflowing.
	step = min(max(step, -maxDim), maxDim)
	switch {
	case step > 0 && e > b:
		return (e - b + step - 1) / step
	case step < 0 && b > e:
		return (b - e - step - 1) / -step
	}
	return 0
}

func expandShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	target, ok := c.ints(1)
	if !ok && x.ranked {
		// The target known at run time only: the rank is the larger one.
		if s := c.input(1); s.ranked && len(s.dims) == 1 && s.dims[0].known() && s.dims[0] <= maxVal {
			out.ranked, out.dims = true, unknownDims(max(len(x.dims), int(s.dims[0])))
		}
	}
	if !ok || !x.ranked {
		c.set(0, out)
		return nil
	}
	t := vshape{ranked: true, dims: make([]dim, len(target))}
	for i, e := range target {
		t.dims[i] = e.asDim()
	}
	dims, ok, err := bcastDims(x, t)
	if err != nil {
		return err
	}
	out.ranked, out.dims = ok, dims
	c.set(0, out)
	return nil
}

func tileShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	reps, ok := c.constInt64s(1)
	if !x.ranked {
		c.set(0, out)
		return nil
	}
	out.ranked, out.dims = true, unknownDims(len(x.dims))
	if ok && len(reps) == len(x.dims) {
		for i, d := range x.dims {
			switch {
			case reps[i] == 1:
				out.dims[i] = d
			case d.known() && reps[i] >= 0 && reps[i] <= maxDim && (d == 0 || reps[i] <= maxDim/int64(d)):
				out.dims[i] = d * dim(reps[i])
			}
		}
	}
	c.set(0, out)
	return nil
}

func constantOfShapeShape(c *shapeCtx) error {
	dt := tensor.FP32
	if v := c.n.Attrs.Tensor("value"); v != nil {
		dt = v.Tensor.DType
	}
	out := vshape{dt: dt}
	if target, ok := c.ints(0); ok {
		out.ranked, out.dims = true, make([]dim, len(target))
		for i, e := range target {
			out.dims[i] = e.asDim()
		}
	} else if s := c.input(0); s.ranked && len(s.dims) == 1 && s.dims[0].known() && s.dims[0] <= maxVal {
		out.ranked, out.dims = true, unknownDims(int(s.dims[0]))
	}
	c.set(0, out)
	return nil
}

// splitShape: equal parts (or the split sizes) along axis.
func splitShape(c *shapeCtx) error {
	x := c.input(0)
	nout := len(c.out)
	if !x.ranked || nout == 0 {
		for i := range nout {
			c.set(i, vshape{dt: x.dt})
		}
		return nil
	}
	axis, ok := normAxisOK(c.n.Attrs.Int("axis", 0), len(x.dims))
	if !ok {
		return nil
	}
	var split []int64
	if c.n.Version < 13 {
		split = c.n.Attrs.Ints("split")
		if split == nil && c.present(1) {
			split, ok = c.constInt64s(1)
		}
	} else if c.present(1) {
		split, ok = c.constInt64s(1)
	}
	d := x.dims[axis]
	for i := range nout {
		dims := append([]dim{}, x.dims...)
		switch {
		case ok && split != nil && len(split) == nout && split[i] >= 0 && split[i] <= maxDim:
			dims[axis] = dim(split[i])
		case split == nil && ok && d.known() && c.n.Version < 18 && int64(d)%int64(nout) == 0:
			dims[axis] = d / dim(nout)
		case split == nil && ok && d.known() && c.n.Version >= 18:
			// num_outputs: ceil-sized parts, the last one smaller.
			part := (int64(d) + int64(nout) - 1) / int64(nout)
			dims[axis] = dim(max(min(part, int64(d)-part*int64(i)), 0))
		default:
			dims[axis] = unknownDim
		}
		c.set(i, vshape{dt: x.dt, ranked: true, dims: dims})
	}
	return nil
}

func topKShape(c *shapeCtx) error {
	x := c.input(0)
	if !x.ranked || len(x.dims) == 0 {
		c.set(0, vshape{dt: x.dt})
		c.set(1, vshape{dt: tensor.Int64})
		return nil
	}
	axis, ok := normAxisOK(c.n.Attrs.Int("axis", -1), len(x.dims))
	if !ok {
		return nil
	}
	dims := append([]dim{}, x.dims...)
	dims[axis] = unknownDim
	if c.n.Version < 10 {
		if k := c.n.Attrs.Int("k", -1); k >= 0 && k <= maxDim {
			dims[axis] = dim(k)
		}
	} else if k, ok := c.constInt64s(1); ok && len(k) == 1 && k[0] >= 0 && k[0] <= maxDim {
		dims[axis] = dim(k[0])
	}
	c.set(0, vshape{dt: x.dt, ranked: true, dims: dims})
	c.set(1, vshape{dt: tensor.Int64, ranked: true, dims: dims})
	return nil
}

func nonZeroShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: tensor.Int64}
	if x.ranked {
		out.ranked, out.dims = true, []dim{dim(len(x.dims)), unknownDim}
	}
	c.set(0, out)
	return nil
}

// padShape: each dimension grows by its pads (constant), on the given axes
// (opset 18) or all.
func padShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	if !x.ranked {
		c.set(0, out)
		return nil
	}
	r := len(x.dims)
	out.ranked, out.dims = true, unknownDims(r)
	pads, ok := c.constInt64s(1)
	axes := make([]int64, r)
	for i := range axes {
		axes[i] = int64(i)
	}
	if c.present(3) {
		a, ok2 := c.constInt64s(3)
		ok = ok && ok2
		axes = a
	}
	if ok && len(pads) == 2*len(axes) {
		out.dims = append([]dim{}, x.dims...)
		for i, a := range axes {
			ax, ok := normAxisOK(a, r)
			if !ok {
				return nil
			}
			d := x.dims[ax]
			p := pads[i] + pads[len(axes)+i]
			switch {
			case p == 0:
			case d.known() && pads[i] > -maxDim && pads[i] < maxDim && pads[len(axes)+i] > -maxDim && pads[len(axes)+i] < maxDim:
				if int64(d)+p < 0 {
					return fmt.Errorf("%w: pads %v on a dimension of %d", errDims, pads, d)
				}
				if nd := d + dim(p); nd <= maxDim {
					out.dims[ax] = nd
				} else {
					out.dims[ax] = unknownDim
				}
			default:
				out.dims[ax] = unknownDim
			}
		}
	}
	c.set(0, out)
	return nil
}

func depthSpaceShape(toSpace bool) shapeFunc {
	return func(c *shapeCtx) error {
		x := c.input(0)
		out := vshape{dt: x.dt}
		b := c.n.Attrs.Int("blocksize", 0)
		if !x.ranked || len(x.dims) != 4 || b < 1 || b > 1<<16 {
			c.set(0, out)
			return nil
		}
		bb := dim(b)
		n, ch, h, w := x.dims[0], x.dims[1], x.dims[2], x.dims[3]
		mul := func(d dim) dim {
			if d.known() && d <= maxDim/(bb*bb) {
				return d * bb
			}
			return unknownDim
		}
		div := func(d dim, by dim) dim {
			if d.known() && d%by == 0 {
				return d / by
			}
			return unknownDim
		}
		if toSpace {
			out.dims = []dim{n, div(ch, bb*bb), mul(h), mul(w)}
		} else {
			out.dims = []dim{n, mul(mul(ch)), div(h, bb), div(w, bb)}
		}
		out.ranked = true
		c.set(0, out)
		return nil
	}
}

// layerNormShape: Y like X; Mean and InvStdDev like X with the normalized
// axes (axis and after) set to 1.
func layerNormShape(c *shapeCtx) error {
	x := c.input(0)
	c.set(0, vshape{dt: x.dt, ranked: x.ranked, dims: x.dims})
	if !x.ranked {
		return nil
	}
	r := len(x.dims)
	axis, ok := normAxisOK(c.n.Attrs.Int("axis", -1), r)
	if !ok {
		return nil
	}
	stat := append([]dim{}, x.dims...)
	for i := axis; i < r; i++ {
		stat[i] = 1
	}
	c.set(1, vshape{ranked: true, dims: stat})
	c.set(2, vshape{ranked: true, dims: stat})
	return nil
}

// lossShape: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss give a
// scalar, or the target's shape with reduction "none"; the log
// probabilities (output 1) have the scores' shape.
func lossShape(c *shapeCtx) error {
	scores, target := c.input(0), c.input(1)
	red := c.n.Attrs.String("reduction", "mean")
	switch red {
	case "none":
		c.set(0, vshape{dt: scores.dt, ranked: target.ranked, dims: target.dims})
	case "mean", "sum":
		c.set(0, ranked(scores.dt))
	default:
		return nil
	}
	c.set(1, vshape{dt: scores.dt, ranked: scores.ranked, dims: scores.dims})
	return nil
}

// gridSampleShape: [N, C, D1...] sampled at a grid [N, O1..., r] gives
// [N, C, O1...].
func gridSampleShape(c *shapeCtx) error {
	x, grid := c.input(0), c.input(1)
	out := vshape{dt: x.dt}
	if x.ranked && grid.ranked && len(x.dims) >= 3 && len(grid.dims) == len(x.dims) {
		out.ranked = true
		out.dims = append([]dim{x.dims[0], x.dims[1]}, grid.dims[1:len(grid.dims)-1]...)
	}
	c.set(0, out)
	return nil
}

// resizeShape: the rank is kept; sizes given as a constant (with every
// axis and the stretch policy) are the output's dimensions.
func resizeShape(c *shapeCtx) error {
	x := c.input(0)
	out := vshape{dt: x.dt}
	if !x.ranked {
		c.set(0, out)
		return nil
	}
	out.ranked, out.dims = true, unknownDims(len(x.dims))
	if c.present(3) && !c.n.Attrs.Has("axes") && c.n.Attrs.String("keep_aspect_ratio_policy", "stretch") == "stretch" {
		if sizes, ok := c.constInt64s(3); ok && len(sizes) == len(x.dims) {
			for i, s := range sizes {
				if s >= 0 && s <= maxDim {
					out.dims[i] = dim(s)
				}
			}
		}
	}
	c.set(0, out)
	return nil
}
