package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// shapeFuncFor returns the shape function of domain:typ at opset version,
// or nil when inference does not model it (its outputs stay unknown).
func shapeFuncFor(domain, typ string, version int64) shapeFunc {
	if domain == DomainML {
		return mlShapeFunc(typ)
	}
	if domain != DomainONNX {
		return nil
	}
	switch typ {
	case "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg",
		"Floor", "Ceil", "Round", "Reciprocal", "Erf", "Sin", "Cos", "Tan",
		"Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Sign",
		"Elu", "Selu", "Celu", "LeakyRelu", "ThresholdedRelu", "HardSigmoid",
		"HardSwish", "Softplus", "Softsign", "Mish", "Swish", "Gelu", "Shrink",
		"Softmax", "LogSoftmax", "Hardmax", "Identity", "Clip", "Not", "BitwiseNot",
		"CumSum", "CumProd", "LRN", "InstanceNormalization", "MeanVarianceNormalization",
		"LpNormalization", "Trilu", "ReverseSequence", "Scatter", "ScatterElements",
		"ScatterND", "PRelu":
		return sameShape
	case "BatchNormalization", "GroupNormalization", "RMSNormalization":
		return firstOutputSameShape
	case "LayerNormalization":
		return layerNormShape
	case "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss":
		return lossShape
	case "GridSample":
		return gridSampleShape
	case "Resize":
		if version < 11 {
			return nil
		}
		return resizeShape
	case "Dropout":
		return dropoutShape
	case "IsNaN", "IsInf":
		return sameShapeAs(tensor.Bool)
	case "Cast":
		return castShape
	case "CastLike":
		return castLikeShape
	case "DequantizeLinear", "QuantizeLinear":
		return sameShapeAs(tensor.Invalid)
	case "EyeLike":
		return eyeLikeShape
	case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift",
		"BitwiseAnd", "BitwiseOr", "BitwiseXor":
		if version < 7 {
			return sameShape // legacy broadcasting: B fits into A
		}
		return bcastShapeFunc(tensor.Invalid)
	case "And", "Or", "Xor", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual":
		if version < 7 {
			return sameShapeAs(tensor.Bool)
		}
		return bcastShapeFunc(tensor.Bool)
	case "Max", "Min", "Sum", "Mean":
		if version < 8 {
			return nil
		}
		return bcastShapeFunc(tensor.Invalid)
	case "Where":
		return whereShape
	case "MatMul":
		return matMulShape(tensor.Invalid)
	case "MatMulInteger":
		return matMulShape(tensor.Int32)
	case "Gemm":
		return gemmShape
	case "Shape":
		return shapeShape
	case "Size":
		return sizeShape
	case "Reshape":
		if version < 5 {
			return nil
		}
		return reshapeShape
	case "Flatten":
		return flattenShape
	case "Transpose":
		return transposeShape
	case "Concat":
		return concatShape
	case "Squeeze":
		return squeezeShape
	case "Unsqueeze":
		return unsqueezeShape
	case "Gather":
		return gatherShape
	case "GatherElements":
		return gatherElementsShape
	case "Slice":
		if version < 10 {
			return nil
		}
		return sliceShape
	case "Expand":
		return expandShape
	case "Tile":
		return tileShape
	case "ConstantOfShape":
		return constantOfShapeShape
	case "ArgMax", "ArgMin":
		return argShape
	case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
		"ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
		return reduceShape(typ, version)
	case "Conv", "ConvInteger":
		return convShape
	case "MaxPool", "AveragePool", "LpPool":
		return poolShape
	case "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool":
		return globalPoolShape
	case "Split":
		return splitShape
	case "TopK":
		return topKShape
	case "NonZero":
		return nonZeroShape
	case "Pad":
		if version < 11 {
			return nil
		}
		return padShape
	case "Range":
		return rangeShape
	case "ConvTranspose":
		return convTransposeShape
	case "RNN", "GRU", "LSTM":
		return rnnShape
	case "Attention":
		return attentionShape
	case "OneHot":
		return oneHotShape
	case "Compress":
		return compressShape
	case "GatherND":
		return gatherNDShape
	case "Einsum":
		return einsumShape
	case "Det":
		return detShape
	case "QLinearMatMul":
		return qLinearMatMulShape
	case "QLinearConv":
		return qLinearConvShape
	case "DepthToSpace", "SpaceToDepth":
		return depthSpaceShape(typ == "DepthToSpace")
	}
	return nil
}

// sameShape: output 0 has input 0's type and shape.
func sameShape(c *shapeCtx) error {
	in := c.input(0)
	c.set(0, vshape{dt: in.dt, ranked: in.ranked, dims: in.dims})
	return nil
}

// firstOutputSameShape: output 0 is like input 0; other outputs (training
// statistics) stay unknown.
func firstOutputSameShape(c *shapeCtx) error { return sameShape(c) }

// dropoutShape: output like the input, mask of booleans.
func dropoutShape(c *shapeCtx) error {
	in := c.input(0)
	c.set(0, vshape{dt: in.dt, ranked: in.ranked, dims: in.dims})
	if c.n.Version >= 7 {
		c.set(1, vshape{dt: tensor.Bool, ranked: in.ranked, dims: in.dims})
	}
	return nil
}

// sameShapeAs: input 0's shape, element type dt (Invalid: unknown).
func sameShapeAs(dt tensor.DType) shapeFunc {
	return func(c *shapeCtx) error {
		in := c.input(0)
		c.set(0, vshape{dt: dt, ranked: in.ranked, dims: in.dims})
		return nil
	}
}

func castShape(c *shapeCtx) error {
	in := c.input(0)
	var dt tensor.DType
	if to, err := dtypeOf(int32(c.n.Attrs.Int("to", 0))); err == nil {
		dt = to
	}
	out := vshape{dt: dt, ranked: in.ranked, dims: in.dims}
	if dt == tensor.Int64 || dt == tensor.Int32 {
		out.val = in.val // a shape cast between integer types
	}
	c.set(0, out)
	return nil
}

func castLikeShape(c *shapeCtx) error {
	in := c.input(0)
	c.set(0, vshape{dt: c.input(1).dt, ranked: in.ranked, dims: in.dims})
	return nil
}

func eyeLikeShape(c *shapeCtx) error {
	in := c.input(0)
	dt := in.dt
	if c.n.Attrs.Has("dtype") {
		dt = tensor.Invalid
		if d, err := dtypeOf(int32(c.n.Attrs.Int("dtype", 0))); err == nil {
			dt = d
		}
	}
	c.set(0, vshape{dt: dt, ranked: in.ranked, dims: in.dims})
	return nil
}

// bcastDims returns the numpy broadcast of ranked shapes, or ok false when
// a rank is unknown.
func bcastDims(shapes ...vshape) (dims []dim, ok bool, err error) {
	r := 0
	for _, s := range shapes {
		if !s.ranked {
			return nil, false, nil
		}
		r = max(r, len(s.dims))
	}
	dims = make([]dim, r)
	for i := range dims {
		d := dim(1)
		for _, s := range shapes {
			j := i - (r - len(s.dims))
			if j < 0 {
				continue
			}
			if d, err = broadcastDim(d, s.dims[j]); err != nil {
				return nil, false, err
			}
		}
		dims[i] = d
	}
	return dims, true, nil
}

// broadcastDim combines two dimensions under numpy broadcasting.
func broadcastDim(a, b dim) (dim, error) {
	switch {
	case a == 1:
		return b, nil
	case b == 1:
		return a, nil
	case a == b:
		return a, nil
	case a.known() && b.known():
		return 0, fmt.Errorf("%w: sizes %d and %d do not broadcast", errDims, a, b)
	case a.known():
		return a, nil // b must be 1 or a
	case b.known():
		return b, nil
	}
	return unknownDim, nil
}

// bcastShapeFunc: every input broadcast together; element type dt, or
// input 0's when dt is Invalid.
func bcastShapeFunc(dt tensor.DType) shapeFunc {
	return func(c *shapeCtx) error {
		ins := make([]vshape, 0, len(c.in))
		for i := range c.in {
			if c.present(i) {
				ins = append(ins, c.in[i])
			}
		}
		if len(ins) == 0 {
			return nil
		}
		out := vshape{dt: dt}
		if dt == tensor.Invalid {
			out.dt = ins[0].dt
		}
		dims, ok, err := bcastDims(ins...)
		if err != nil {
			return err
		}
		out.ranked, out.dims = ok, dims
		c.set(0, out)
		return nil
	}
}

func whereShape(c *shapeCtx) error {
	dims, ok, err := bcastDims(c.input(0), c.input(1), c.input(2))
	if err != nil {
		return err
	}
	c.set(0, vshape{dt: c.input(1).dt, ranked: ok, dims: dims})
	return nil
}

// matMulShape follows numpy.matmul: 1-D operands get a dimension added and
// removed, batch dimensions broadcast, inner dimensions unify.
func matMulShape(dt tensor.DType) shapeFunc {
	return func(c *shapeCtx) error {
		a, b := c.input(0), c.input(1)
		out := vshape{dt: dt}
		if dt == tensor.Invalid {
			out.dt = a.dt
		}
		if !a.ranked || !b.ranked || len(a.dims) == 0 || len(b.dims) == 0 {
			c.set(0, out)
			return nil
		}
		ad, bd := a.dims, b.dims
		if len(ad) == 1 {
			ad = []dim{1, ad[0]}
		}
		if len(bd) == 1 {
			bd = []dim{bd[0], 1}
		}
		if err := c.inf.unify(ad[len(ad)-1], bd[len(bd)-2]); err != nil {
			return fmt.Errorf("inner dimensions: %w", err)
		}
		batch, _, err := bcastDims(vshape{ranked: true, dims: ad[:len(ad)-2]}, vshape{ranked: true, dims: bd[:len(bd)-2]})
		if err != nil {
			return err
		}
		dims := batch
		if len(a.dims) > 1 {
			dims = append(dims, ad[len(ad)-2])
		}
		if len(b.dims) > 1 {
			dims = append(dims, bd[len(bd)-1])
		}
		out.ranked, out.dims = true, dims
		c.set(0, out)
		return nil
	}
}

// gemmShape: [M, K] x [K, N] -> [M, N], after the transpositions.
func gemmShape(c *shapeCtx) error {
	a, b := c.input(0), c.input(1)
	out := vshape{dt: a.dt}
	if !a.ranked || !b.ranked || len(a.dims) != 2 || len(b.dims) != 2 {
		c.set(0, out)
		return nil
	}
	m, ka := a.dims[0], a.dims[1]
	if c.n.Attrs.Int("transA", 0) != 0 {
		m, ka = ka, m
	}
	kb, n := b.dims[0], b.dims[1]
	if c.n.Attrs.Int("transB", 0) != 0 {
		kb, n = n, kb
	}
	if err := c.inf.unify(ka, kb); err != nil {
		return fmt.Errorf("inner dimensions: %w", err)
	}
	out.ranked, out.dims = true, []dim{m, n}
	c.set(0, out)
	return nil
}

// shapeShape: a 1-D int64 tensor whose contents are the input's dims
// (between start and end since opset 15).
func shapeShape(c *shapeCtx) error {
	in := c.input(0)
	if !in.ranked {
		c.set(0, ranked(tensor.Int64, unknownDim))
		return nil
	}
	r := len(in.dims)
	lo, hi := 0, r
	if c.n.Version >= 15 {
		lo = clampAxis(c.n.Attrs.Int("start", 0), r)
		if c.n.Attrs.Has("end") {
			hi = clampAxis(c.n.Attrs.Int("end", 0), r)
		}
	}
	hi = max(hi, lo)
	out := ranked(tensor.Int64, dim(hi-lo))
	if hi-lo <= maxVal {
		out.val = make([]elem, hi-lo)
		for i := range out.val {
			out.val[i] = dimElem(in.dims[lo+i])
		}
	}
	c.set(0, out)
	return nil
}

// clampAxis maps a possibly negative axis into [0, r], clamping.
func clampAxis(a int64, r int) int {
	if a < 0 {
		a += int64(r)
	}
	return int(min(max(a, 0), int64(r)))
}

func sizeShape(c *shapeCtx) error {
	out := ranked(tensor.Int64)
	if in := c.input(0); in.ranked {
		if p := product(in.dims); p != unknownDim {
			out.val = []elem{dimElem(p)}
		}
	}
	c.set(0, out)
	return nil
}

// product multiplies dimensions: a size when all are sizes (unknown on
// overflow), the symbol when all but one symbol are 1, unknown otherwise.
func product(ds []dim) dim {
	p := dim(1)
	var sym dim
	for _, d := range ds {
		switch {
		case d == 0:
			return 0
		case d.known():
			if p > maxDim/max(d, 1) {
				return unknownDim
			}
			p *= d
		case d.isSymbol() && sym == 0:
			sym = d
		default:
			return unknownDim
		}
	}
	if sym != 0 {
		if p == 1 {
			return sym
		}
		return unknownDim
	}
	return p
}

// normAxisOK normalizes axis for rank r, or returns false.
func normAxisOK(axis int64, r int) (int, bool) {
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis >= int64(r) {
		return 0, false
	}
	return int(axis), true
}

func flattenShape(c *shapeCtx) error {
	in := c.input(0)
	out := vshape{dt: in.dt}
	if in.ranked {
		r := len(in.dims)
		axis := c.n.Attrs.Int("axis", 1)
		if axis < 0 {
			axis += int64(r)
		}
		if axis >= 0 && axis <= int64(r) {
			out.ranked = true
			out.dims = []dim{product(in.dims[:axis]), product(in.dims[axis:])}
		}
	} else {
		out.ranked, out.dims = true, []dim{unknownDim, unknownDim}
	}
	c.set(0, out)
	return nil
}

func transposeShape(c *shapeCtx) error {
	in := c.input(0)
	out := vshape{dt: in.dt}
	if in.ranked {
		r := len(in.dims)
		perm := c.n.Attrs.Ints("perm")
		if perm == nil {
			perm = make([]int64, r)
			for i := range perm {
				perm[i] = int64(r - 1 - i)
			}
		}
		if len(perm) == r {
			out.ranked = true
			out.dims = make([]dim, r)
			for i, p := range perm {
				a, ok := normAxisOK(p, r)
				if !ok {
					return nil
				}
				out.dims[i] = in.dims[a]
			}
		}
	}
	c.set(0, out)
	return nil
}

func concatShape(c *shapeCtx) error {
	var ins []vshape
	for i := range c.in {
		if c.present(i) {
			ins = append(ins, c.in[i])
		}
	}
	if len(ins) == 0 {
		return nil
	}
	out := vshape{dt: ins[0].dt}
	r := -1
	for _, s := range ins {
		if s.ranked {
			r = len(s.dims)
			break
		}
	}
	if r < 0 {
		c.set(0, out)
		return nil
	}
	def := int64(1)
	if c.n.Version >= 4 {
		def = 0
	}
	axis, ok := normAxisOK(c.n.Attrs.Int("axis", def), r)
	if !ok {
		return nil
	}
	dims := unknownDims(r)
	allRanked := true
	for k, s := range ins {
		if !s.ranked {
			allRanked = false
			continue
		}
		if len(s.dims) != r {
			return fmt.Errorf("%w: inputs of ranks %d and %d", errDims, r, len(s.dims))
		}
		for i, d := range s.dims {
			if i == axis {
				continue
			}
			if dims[i] == unknownDim {
				dims[i] = d
				continue
			}
			if err := c.inf.unify(dims[i], d); err != nil {
				return fmt.Errorf("input %d dimension %d: %w", k, i, err)
			}
			dims[i] = c.inf.resolve(dims[i])
		}
	}
	total := dim(0)
	for _, s := range ins {
		if !s.ranked || !s.dims[axis].known() {
			total = unknownDim
			break
		}
		if total += s.dims[axis]; total > maxDim {
			total = unknownDim
			break
		}
	}
	if len(ins) == 1 && allRanked {
		total = ins[0].dims[axis]
	}
	dims[axis] = total
	out.ranked, out.dims = true, dims
	// Concatenating 1-D shapes (the Shape, Gather, Concat, Reshape idiom).
	if r == 1 && allRanked {
		var val []elem
		for _, s := range ins {
			if s.val == nil {
				val = nil
				break
			}
			val = append(val, s.val...)
		}
		if val != nil && len(val) <= maxVal {
			out.val = val
		}
	}
	c.set(0, out)
	return nil
}

func unknownDims(r int) []dim {
	ds := make([]dim, r)
	for i := range ds {
		ds[i] = unknownDim
	}
	return ds
}

// axesOf returns a node's axes: the "axes" attribute before opset
// inputFrom, input 1 since; ok false when unknown at load time. given
// says whether any axes were given.
func (c *shapeCtx) axesOf(inputFrom int64, input int) (axes []int64, given, ok bool) {
	if c.n.Version < inputFrom {
		axes = c.n.Attrs.Ints("axes")
		return axes, axes != nil, true
	}
	if !c.present(input) {
		return nil, false, true
	}
	axes, ok = c.constInt64s(input)
	return axes, true, ok
}

func squeezeShape(c *shapeCtx) error {
	in := c.input(0)
	out := vshape{dt: in.dt}
	axes, given, ok := c.axesOf(13, 1)
	if !ok || !in.ranked {
		c.set(0, out)
		return nil
	}
	r := len(in.dims)
	drop := make([]bool, r)
	if given {
		for _, a := range axes {
			i, ok := normAxisOK(a, r)
			if !ok {
				return nil
			}
			if in.dims[i].known() && in.dims[i] != 1 {
				return fmt.Errorf("%w: squeezing dimension %d of size %d", errDims, i, in.dims[i])
			}
			drop[i] = true
		}
	} else {
		for i, d := range in.dims {
			if !d.known() {
				c.set(0, out) // which dimensions are 1 is not known
				return nil
			}
			drop[i] = d == 1
		}
	}
	out.ranked, out.dims = true, []dim{}
	for i, d := range in.dims {
		if !drop[i] {
			out.dims = append(out.dims, d)
		}
	}
	if len(out.dims) == 0 && len(in.val) == 1 {
		out.val = in.val
	}
	c.set(0, out)
	return nil
}

func unsqueezeShape(c *shapeCtx) error {
	in := c.input(0)
	out := vshape{dt: in.dt}
	axes, _, ok := c.axesOf(13, 1)
	if !ok && in.ranked {
		// Axes known at run time only: the rank is known when their
		// count is.
		if a := c.input(1); a.ranked && len(a.dims) == 1 && a.dims[0].known() && a.dims[0] <= maxVal {
			out.ranked, out.dims = true, unknownDims(len(in.dims)+int(a.dims[0]))
		}
	}
	if !ok || !in.ranked {
		c.set(0, out)
		return nil
	}
	r := len(in.dims) + len(axes)
	add := make([]bool, r)
	for _, a := range axes {
		i, ok := normAxisOK(a, r)
		if !ok || add[i] {
			return nil
		}
		add[i] = true
	}
	out.ranked, out.dims = true, make([]dim, 0, r)
	k := 0
	for i := range r {
		if add[i] {
			out.dims = append(out.dims, 1)
		} else {
			out.dims = append(out.dims, in.dims[k])
			k++
		}
	}
	if r == 1 && len(in.val) == 1 {
		out.val = in.val
	}
	c.set(0, out)
	return nil
}

func gatherShape(c *shapeCtx) error {
	data, idx := c.input(0), c.input(1)
	out := vshape{dt: data.dt}
	if !data.ranked || !idx.ranked || len(data.dims) == 0 {
		c.set(0, out)
		return nil
	}
	axis, ok := normAxisOK(c.n.Attrs.Int("axis", 0), len(data.dims))
	if !ok {
		return nil
	}
	dims := append([]dim{}, data.dims[:axis]...)
	dims = append(dims, idx.dims...)
	dims = append(dims, data.dims[axis+1:]...)
	out.ranked, out.dims = true, dims
	// Picking from a followed shape.
	if len(data.dims) == 1 && data.val != nil && len(idx.dims) <= 1 {
		if ids, ok := c.constInt64s(1); ok {
			n := int64(len(data.val))
			val := make([]elem, len(ids))
			for k, i := range ids {
				if i < 0 {
					i += n
				}
				if i < 0 || i >= n {
					val = nil
					break
				}
				val[k] = data.val[i]
			}
			out.val = val
		}
	}
	c.set(0, out)
	return nil
}

func gatherElementsShape(c *shapeCtx) error {
	idx := c.input(1)
	c.set(0, vshape{dt: c.input(0).dt, ranked: idx.ranked, dims: idx.dims})
	return nil
}
