package onnx

import (
	"fmt"
	"slices"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Batching: an ONNX graph does not say whether the rows of its batch are
// independent, so the loader proves it, conservatively, from the graph (see
// analyzeBatching). Package serve then batches the model's requests only
// when the proof succeeded.

// batchVerdict is what the analysis concluded for one model.
type batchVerdict struct {
	decl backend.Batching
	why  string // when decl is the zero Batching: the first thing that was not proven
}

// Batching implements backend.Batcher. It declares Concat and Split when
// analysis at load time proved that every graph input and output has the
// batch on dimension 0 and that every node computes row i of its outputs
// from row i of its inputs alone, with the same arithmetic whatever the
// batch size; BatchingDenied says why not otherwise.
func (m *Model) Batching() backend.Batching { return m.batching.decl }

// BatchingDenied returns why Batching is the zero value: the first input,
// output or node the analysis could not prove per-row. It is "" when the
// model may be batched.
func (m *Model) BatchingDenied() string { return m.batching.why }

// rowVal is what the analysis knows about one value of the graph: a
// constant, or a batched value (row i depends on row i of the inputs only).
type rowVal struct {
	c     *Value  // the constant, nil for a batched value
	shape []int64 // batched: shape[0] stands for the batch; other dims are -1 when unknown
	seq   bool    // batched: a sequence with one element per row (ZipMap)
}

func (v *rowVal) batched() bool { return v != nil && v.c == nil }

// constShape returns the shape of a constant tensor.
func (v *rowVal) constShape() ([]int64, bool) {
	if v == nil || v.c == nil || v.c.Kind != KindTensor {
		return nil, false
	}
	return v.c.Tensor.Shape, true
}

// constInts returns the integers of a constant integer tensor.
func (v *rowVal) constInts() ([]int64, bool) {
	if v == nil || v.c == nil {
		return nil, false
	}
	xs, err := intsOf(v.c, nil)
	return xs, err == nil
}

// rowNode is one node as a rule sees it.
type rowNode struct {
	typ, domain string
	version     int64
	attrs       *Attrs
	in          []*rowVal // nil: absent
	nout        int
}

// batchedIn returns input k if it is batched with a known shape.
func (r *rowNode) batchedIn(k int) (*rowVal, error) {
	if k >= len(r.in) || !r.in[k].batched() {
		return nil, fmt.Errorf("input %d is not batched", k)
	}
	if r.in[k].seq {
		return nil, fmt.Errorf("input %d is a sequence", k)
	}
	return r.in[k], nil
}

// constIn returns input k if it is a constant tensor (or absent, when
// optional).
func (r *rowNode) constIn(k int, optional bool) (*rowVal, error) {
	if k >= len(r.in) || r.in[k] == nil {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("input %d is absent", k)
	}
	if r.in[k].c == nil || r.in[k].c.Kind != KindTensor {
		return nil, fmt.Errorf("input %d depends on the batch (it must be a constant)", k)
	}
	return r.in[k], nil
}

// rowOuts returns n outputs of the given shape.
func rowOuts(n int, shape []int64) []rowVal {
	o := make([]rowVal, n)
	for i := range o {
		o[i] = rowVal{shape: slices.Clone(shape)}
	}
	return o
}

// analyzeBatching decides whether the main graph g may be batched on
// dimension 0: every graph input is a tensor whose first dimension is
// dynamic, every graph output is batched, and every node that is not
// folded into a constant follows one of the rules of rowRule, which admit
// only operators that keep row i of their outputs a function of row i of
// their inputs. Anything else (an unknown operator, an attribute that
// reaches across rows, a shape that cannot be checked) denies batching.
// order is a topological order of g's nodes; index and consts give the
// constant of every value folded at load time.
func analyzeBatching(g *onnxpb.GraphProto, order []int, opsets map[string]int64, index map[string]int, consts []*Value) batchVerdict {
	deny := func(format string, args ...any) batchVerdict {
		return batchVerdict{why: fmt.Sprintf(format, args...)}
	}
	vals := map[string]*rowVal{}
	for name, i := range index {
		if i < len(consts) && consts[i] != nil {
			vals[name] = &rowVal{c: consts[i]}
		}
	}
	for _, vi := range g.GetInput() {
		if _, isConst := vals[vi.GetName()]; isConst {
			continue
		}
		spec, ok := tensorSpec(vi.GetName(), vi.GetType())
		if !ok || spec.Shape == nil {
			return deny("input %q is not a tensor of known rank", vi.GetName())
		}
		if len(spec.Shape) == 0 || spec.Shape[0] != -1 {
			return deny("input %q has no dynamic first dimension (shape %v)", vi.GetName(), spec.Shape)
		}
		vals[vi.GetName()] = &rowVal{shape: spec.Shape}
	}
	nodes := g.GetNode()
	for _, ni := range order {
		n := nodes[ni]
		folded := len(n.GetOutput()) > 0
		for _, o := range n.GetOutput() {
			if v, ok := vals[o]; o != "" && (!ok || v.c == nil) {
				folded = false
			}
		}
		if folded {
			continue
		}
		name := fmt.Sprintf("node %q (%s)", n.GetName(), n.GetOpType())
		domain := canonDomain(n.GetDomain())
		r := &rowNode{typ: n.GetOpType(), domain: domain, version: opsets[domain], attrs: NewAttrs(n.GetAttribute()), nout: len(n.GetOutput())}
		for _, in := range n.GetInput() {
			if in == "" {
				r.in = append(r.in, nil)
				continue
			}
			v, ok := vals[in]
			if !ok {
				return deny("%s reads %q, which is neither constant nor batched", name, in)
			}
			r.in = append(r.in, v)
		}
		if !slices.ContainsFunc(r.in, (*rowVal).batched) {
			return deny("%s does not read the batch, and is not constant", name)
		}
		o, err := rowRule(r)
		if err == nil {
			err = r.attrs.Err()
		}
		if err != nil {
			return deny("%s: %v", name, err)
		}
		for k, out := range n.GetOutput() {
			if out != "" && k < len(o) {
				vals[out] = &o[k]
			}
		}
	}
	for _, vo := range g.GetOutput() {
		if v := vals[vo.GetName()]; !v.batched() || len(v.shape) == 0 {
			return deny("output %q does not have the batch on dimension 0", vo.GetName())
		}
	}
	return batchVerdict{decl: backend.Batching{Concat: true, Split: true}}
}

// rowRule returns the outputs of a node whose rows are provably
// independent, or an error saying what could not be proven.
func rowRule(r *rowNode) ([]rowVal, error) {
	if r.domain == DomainML {
		return mlRowRule(r)
	}
	if r.domain != DomainONNX {
		return nil, fmt.Errorf("domain %q is not analysed", r.domain)
	}
	switch r.typ {
	case "Identity", "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Cos", "Cosh",
		"Erf", "Exp", "Floor", "IsInf", "IsNaN", "Log", "Neg", "Not", "Reciprocal", "Relu", "Round",
		"Sigmoid", "Sign", "Sin", "Sinh", "Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "Elu",
		"LeakyRelu", "Selu", "Celu", "HardSigmoid", "HardSwish", "ThresholdedRelu", "Mish", "Gelu",
		"Shrink", "Cast", "BitwiseNot", "Clip":
		return rowsElementwise(r, 1)
	case "CastLike":
		x, err := r.batchedIn(0)
		if err != nil {
			return nil, err
		}
		return rowOuts(r.nout, x.shape), nil // input 1 gives only the type
	case "Dropout":
		if v, err := r.constIn(2, true); err != nil {
			return nil, err
		} else if v != nil {
			if b, ok := v.c.Tensor.Data.([]bool); !ok || len(b) != 1 || b[0] {
				return nil, fmt.Errorf("training_mode is not a constant false")
			}
		}
		return rowsElementwise(r, 1)
	case "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Equal", "Greater",
		"Less", "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "BitShift", "BitwiseAnd",
		"BitwiseOr", "BitwiseXor", "PRelu", "Where":
		return rowsBroadcast(r)
	case "MatMul":
		return matMulRows(r)
	case "Gemm":
		return gemmRows(r)
	case "Softmax", "LogSoftmax", "Hardmax":
		def := int64(-1)
		if r.version < 13 {
			def = 1
		}
		return axisNotBatch(r, r.attrs.Int("axis", def))
	case "LayerNormalization":
		return layerNormRows(r)
	case "BatchNormalization":
		return batchNormRows(r)
	case "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
		"ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare":
		return reduceRows(r)
	case "ArgMax", "ArgMin":
		return argRows(r)
	case "Reshape":
		return reshapeRows(r)
	case "Flatten":
		return flattenRows(r)
	case "Squeeze", "Unsqueeze":
		return squeezeRows(r)
	case "Transpose":
		return transposeRows(r)
	case "Concat", "Split":
		return concatSplitRows(r)
	case "Slice":
		return sliceOpRows(r)
	case "Gather":
		return gatherRows(r)
	case "Expand":
		return expandRows(r)
	case "Tile":
		return tileRows(r)
	}
	return nil, fmt.Errorf("operator not proven per-row for batching")
}

// rowsElementwise is a shape-preserving operator of input 0 whose other
// inputs, from extra on, must be constants.
func rowsElementwise(r *rowNode, extra int) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	for k := extra; k < len(r.in); k++ {
		if _, err := r.constIn(k, true); err != nil {
			return nil, err
		}
	}
	return rowOuts(r.nout, x.shape), nil
}

// rowsBroadcastShape broadcasts shapes numpy-style, where batched[i] says the
// shape of operand i has the batch on dimension 0. Every batched operand
// must have the output's rank (so the batch stays on dimension 0) and
// every constant one a smaller rank or 1 on dimension 0.
func rowsBroadcastShape(shapes [][]int64, batched []bool) ([]int64, error) {
	rank := 0
	for _, s := range shapes {
		rank = max(rank, len(s))
	}
	for i, s := range shapes {
		switch {
		case batched[i] && len(s) != rank:
			return nil, fmt.Errorf("a batched operand of rank %d is broadcast to rank %d, which moves the batch", len(s), rank)
		case !batched[i] && len(s) == rank && s[0] != 1:
			return nil, fmt.Errorf("a constant of shape %v spans the batch dimension", s)
		}
	}
	out := make([]int64, rank)
	out[0] = -1
	for d := 1; d < rank; d++ {
		res, unknown := int64(1), false
		for _, s := range shapes {
			if j := d - (rank - len(s)); j >= 0 {
				switch s[j] {
				case -1:
					unknown = true
				case 1:
				default:
					res = s[j]
				}
			}
		}
		if res == 1 && unknown {
			res = -1
		}
		out[d] = res
	}
	return out, nil
}

func rowsBroadcast(r *rowNode) ([]rowVal, error) {
	var shapes [][]int64
	var batched []bool
	for k, v := range r.in {
		switch {
		case v == nil:
			return nil, fmt.Errorf("input %d is absent", k)
		case v.batched():
			if v.seq {
				return nil, fmt.Errorf("input %d is a sequence", k)
			}
			shapes, batched = append(shapes, v.shape), append(batched, true)
		default:
			s, ok := v.constShape()
			if !ok {
				return nil, fmt.Errorf("input %d is not a tensor", k)
			}
			shapes, batched = append(shapes, s), append(batched, false)
		}
	}
	shape, err := rowsBroadcastShape(shapes, batched)
	if err != nil {
		return nil, err
	}
	return rowOuts(r.nout, shape), nil
}

func expandRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	s, err := r.constIn(1, false)
	if err != nil {
		return nil, err
	}
	to, ok := s.constInts()
	if !ok {
		return nil, fmt.Errorf("the shape is not integers")
	}
	shape, err := rowsBroadcastShape([][]int64{x.shape, to}, []bool{true, false})
	if err != nil {
		return nil, err
	}
	return rowOuts(r.nout, shape), nil
}

// matMulRows: A batched of rank 2 or more, B a constant matrix or vector.
// Each row of A is multiplied alone with the arithmetic of any other row
// (internal/gemm keeps a row's arithmetic independent of the row count,
// and the other types use a plain loop per row).
func matMulRows(r *rowNode) ([]rowVal, error) {
	a, err := r.batchedIn(0)
	if err != nil {
		return nil, fmt.Errorf("operand A: %w", err)
	}
	b, err := r.constIn(1, false)
	if err != nil {
		return nil, fmt.Errorf("operand B: %w (a batched B mixes rows)", err)
	}
	sb, _ := b.constShape()
	if len(a.shape) < 2 {
		return nil, fmt.Errorf("operand A of rank %d: its rows are contracted", len(a.shape))
	}
	shape := slices.Clone(a.shape[:len(a.shape)-1])
	switch len(sb) {
	case 1:
	case 2:
		shape = append(shape, sb[1])
	default:
		return nil, fmt.Errorf("operand B of rank %d", len(sb))
	}
	return rowOuts(r.nout, shape), nil
}

// gemmRows: A batched [N, K] not transposed, B constant, C constant
// without the batch dimension, or batched [N, M].
func gemmRows(r *rowNode) ([]rowVal, error) {
	a, err := r.batchedIn(0)
	if err != nil {
		return nil, fmt.Errorf("operand A: %w", err)
	}
	if len(a.shape) != 2 || r.attrs.Int("transA", 0) != 0 {
		return nil, fmt.Errorf("operand A is transposed or not a matrix: its rows are contracted")
	}
	b, err := r.constIn(1, false)
	if err != nil {
		return nil, fmt.Errorf("operand B: %w (a batched B mixes rows)", err)
	}
	sb, _ := b.constShape()
	if len(sb) != 2 {
		return nil, fmt.Errorf("operand B of rank %d", len(sb))
	}
	cols := sb[1]
	if r.attrs.Int("transB", 0) != 0 {
		if b.c.Tensor.DType == tensor.FP32 {
			// internal/gemm takes a one-row product with transB as dot
			// products, in another order than the rows of a batch.
			return nil, fmt.Errorf("transB=1 on float32: one row alone is summed in another order than in a batch")
		}
		cols = sb[0]
	}
	if len(r.in) > 2 && r.in[2] != nil {
		c := r.in[2]
		if c.batched() {
			if len(c.shape) != 2 || c.seq {
				return nil, fmt.Errorf("operand C is batched but not a matrix")
			}
		} else if sc, ok := c.constShape(); !ok || (len(sc) == 2 && sc[0] != 1) || len(sc) > 2 {
			return nil, fmt.Errorf("operand C of shape %v spans the batch dimension", sc)
		}
	}
	return rowOuts(r.nout, []int64{-1, cols}), nil
}

// axisNotBatch is an operator along one axis, which must not be 0.
func axisNotBatch(r *rowNode, axis int64) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	if a, err := normAxis(axis, len(x.shape)); err != nil || a == 0 {
		return nil, fmt.Errorf("axis %d of a rank-%d input is the batch", axis, len(x.shape))
	}
	return rowOuts(r.nout, x.shape), nil
}

func layerNormRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	a, err := normAxis(r.attrs.Int("axis", -1), len(x.shape))
	if err != nil || a == 0 {
		return nil, fmt.Errorf("normalizes over the batch dimension")
	}
	for k := 1; k < len(r.in); k++ {
		if _, err := r.constIn(k, true); err != nil {
			return nil, err
		}
	}
	o := rowOuts(r.nout, x.shape)
	for k := 1; k < len(o); k++ { // Mean and InvStdDev: 1 over the normalized axes
		for d := a; d < len(x.shape); d++ {
			o[k].shape[d] = 1
		}
	}
	return o, nil
}

func batchNormRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	if r.attrs.Int("training_mode", 0) != 0 || r.nout > 1 || len(x.shape) < 2 {
		return nil, fmt.Errorf("training mode computes statistics over the batch")
	}
	return rowsElementwise(r, 1)
}

// reduceAxesInput is the first opset whose reduction reads its axes from
// an input rather than an attribute.
func reduceAxesInput(typ string) int64 {
	if typ == "ReduceSum" {
		return 13
	}
	return 18
}

func reduceRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	axes := r.attrs.Ints("axes")
	if r.version >= reduceAxesInput(r.typ) {
		v, err := r.constIn(1, true)
		if err != nil {
			return nil, fmt.Errorf("axes: %w", err)
		}
		axes = nil
		if v != nil {
			var ok bool
			if axes, ok = v.constInts(); !ok {
				return nil, fmt.Errorf("axes are not integers")
			}
		}
	}
	keep := r.attrs.Int("keepdims", 1) != 0
	if len(axes) == 0 {
		if r.attrs.Int("noop_with_empty_axes", 0) != 0 {
			return rowOuts(r.nout, x.shape), nil
		}
		return nil, fmt.Errorf("reduces every axis, the batch included")
	}
	return rowsReduced(r, x, axes, keep)
}

// rowsReduced returns the shape of x with axes reduced (kept as 1 with keep),
// or an error if axis 0 is among them.
func rowsReduced(r *rowNode, x *rowVal, axes []int64, keep bool) ([]rowVal, error) {
	drop := make([]bool, len(x.shape))
	for _, ax := range axes {
		a, err := normAxis(ax, len(x.shape))
		if err != nil {
			return nil, err
		}
		if a == 0 {
			return nil, fmt.Errorf("reduces axis 0, across rows")
		}
		drop[a] = true
	}
	var shape []int64
	for d, v := range x.shape {
		switch {
		case !drop[d]:
			shape = append(shape, v)
		case keep:
			shape = append(shape, 1)
		}
	}
	return rowOuts(r.nout, shape), nil
}

func argRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	return rowsReduced(r, x, []int64{r.attrs.Int("axis", 0)}, r.attrs.Int("keepdims", 1) != 0)
}

// reshapeRows: the target keeps dimension 0 (0, copied, or -1 with a row of
// the same size) and every row keeps its size, so row i of the output is
// row i of the input.
func reshapeRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	var target []int64
	if r.version < 5 {
		target = r.attrs.Ints("shape")
	} else {
		s, err := r.constIn(1, false)
		if err != nil {
			return nil, fmt.Errorf("shape: %w", err)
		}
		var ok bool
		if target, ok = s.constInts(); !ok {
			return nil, fmt.Errorf("the shape is not integers")
		}
	}
	rowSize := int64(1)
	for _, d := range x.shape[1:] {
		if d < 0 {
			return nil, fmt.Errorf("input %v has unknown dimensions", x.shape)
		}
		rowSize *= d
	}
	allowZero := r.attrs.Int("allowzero", 0) != 0
	if len(target) == 0 || rowSize == 0 || (allowZero && slices.Contains(target, 0)) {
		return nil, fmt.Errorf("shape %v does not keep the batch on dimension 0", target)
	}
	out := make([]int64, len(target))
	out[0] = -1
	if target[0] != 0 && target[0] != -1 {
		return nil, fmt.Errorf("shape %v fixes the batch dimension", target)
	}
	infer, size := -1, int64(1)
	for d := 1; d < len(target); d++ {
		switch v := target[d]; {
		case v == 0 && d < len(x.shape):
			out[d] = x.shape[d]
		case v == -1 && infer < 0 && target[0] == 0:
			infer = d
			continue
		case v > 0:
			out[d] = v
		default:
			return nil, fmt.Errorf("shape %v does not keep the batch on dimension 0", target)
		}
		size *= out[d]
	}
	if infer >= 0 {
		if rowSize%size != 0 {
			return nil, fmt.Errorf("shape %v does not divide a row of %d", target, rowSize)
		}
		out[infer], size = rowSize/size, rowSize
	}
	if size != rowSize {
		return nil, fmt.Errorf("shape %v changes the size of a row (%d, want %d)", target, size, rowSize)
	}
	return rowOuts(r.nout, out), nil
}

func flattenRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	axis := r.attrs.Int("axis", 1)
	if axis < 0 {
		axis += int64(len(x.shape))
	}
	if axis != 1 {
		return nil, fmt.Errorf("axis %d does not keep the batch alone on dimension 0", axis)
	}
	size := int64(1)
	for _, d := range x.shape[1:] {
		if d < 0 {
			size = -1
			break
		}
		size *= d
	}
	return rowOuts(r.nout, []int64{-1, size}), nil
}

func squeezeRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	axes := r.attrs.Ints("axes")
	if r.version >= 13 {
		v, err := r.constIn(1, true)
		if err != nil {
			return nil, fmt.Errorf("axes: %w", err)
		}
		if v != nil {
			axes, _ = v.constInts()
		}
	}
	if len(axes) == 0 {
		return nil, fmt.Errorf("no axes: a batch of one row would be squeezed")
	}
	rank := len(x.shape)
	if r.typ == "Unsqueeze" {
		rank += len(axes)
	}
	on := make([]bool, rank)
	for _, ax := range axes {
		a, err := normAxis(ax, rank)
		if err != nil {
			return nil, err
		}
		if a == 0 {
			return nil, fmt.Errorf("axis 0 is the batch")
		}
		on[a] = true
	}
	var shape []int64
	if r.typ == "Squeeze" {
		for d, v := range x.shape {
			if !on[d] {
				shape = append(shape, v)
			}
		}
	} else {
		k := 0
		for d := range rank {
			if on[d] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, x.shape[k])
				k++
			}
		}
	}
	return rowOuts(r.nout, shape), nil
}

func transposeRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	perm := r.attrs.Ints("perm")
	if perm == nil && len(x.shape) == 1 {
		perm = []int64{0}
	}
	if len(perm) != len(x.shape) || perm[0] != 0 {
		return nil, fmt.Errorf("perm %v moves the batch dimension", perm)
	}
	shape := make([]int64, len(perm))
	for d, p := range perm {
		if p < 0 || int(p) >= len(x.shape) {
			return nil, fmt.Errorf("perm %v", perm)
		}
		shape[d] = x.shape[p]
	}
	return rowOuts(r.nout, shape), nil
}

func concatSplitRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	def := int64(0)
	if r.typ == "Concat" {
		def = -1 << 62 // required
	}
	a, err := normAxis(r.attrs.Int("axis", def), len(x.shape))
	if err != nil || a == 0 {
		return nil, fmt.Errorf("along the batch dimension")
	}
	shape := slices.Clone(x.shape)
	shape[a] = -1
	if r.typ == "Split" {
		for k := 1; k < len(r.in); k++ {
			if _, err := r.constIn(k, true); err != nil {
				return nil, err
			}
		}
		return rowOuts(r.nout, shape), nil
	}
	for k := range r.in {
		if v, err := r.batchedIn(k); err != nil {
			return nil, err
		} else if len(v.shape) != len(x.shape) {
			return nil, fmt.Errorf("inputs of ranks %d and %d", len(x.shape), len(v.shape))
		}
	}
	return rowOuts(r.nout, shape), nil
}

func sliceOpRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	var starts, axes []int64
	if r.version < 10 {
		starts, axes = r.attrs.Ints("starts"), r.attrs.Ints("axes")
	} else {
		if len(r.in) < 3 {
			return nil, fmt.Errorf("no starts and ends")
		}
		for k := 1; k < len(r.in); k++ {
			if _, err := r.constIn(k, k >= 3); err != nil {
				return nil, err
			}
		}
		starts, _ = r.in[1].constInts()
		if len(r.in) > 3 && r.in[3] != nil {
			axes, _ = r.in[3].constInts()
		}
	}
	if axes == nil {
		for d := range starts {
			axes = append(axes, int64(d))
		}
	}
	shape := slices.Clone(x.shape)
	for _, ax := range axes {
		a, err := normAxis(ax, len(x.shape))
		if err != nil || a == 0 {
			return nil, fmt.Errorf("slices the batch dimension")
		}
		shape[a] = -1
	}
	return rowOuts(r.nout, shape), nil
}

// gatherRows: gathering along a non-batch axis of a batched tensor with
// constant indices, or looking up batched indices in a constant table on
// its axis 0 (an embedding).
func gatherRows(r *rowNode) ([]rowVal, error) {
	if len(r.in) != 2 || r.in[0] == nil || r.in[1] == nil {
		return nil, fmt.Errorf("inputs")
	}
	data, idx := r.in[0], r.in[1]
	axis := r.attrs.Int("axis", 0)
	if data.batched() && !idx.batched() {
		x, _ := r.batchedIn(0)
		is, _ := idx.constShape()
		a, err := normAxis(axis, len(x.shape))
		if err != nil || a == 0 {
			return nil, fmt.Errorf("gathers along the batch dimension")
		}
		shape := slices.Concat(x.shape[:a], is, x.shape[a+1:])
		return rowOuts(r.nout, shape), nil
	}
	if !data.batched() && idx.batched() && !idx.seq {
		ds, ok := data.constShape()
		if a, err := normAxis(axis, len(ds)); !ok || err != nil || a != 0 || len(idx.shape) == 0 {
			return nil, fmt.Errorf("batched indices into a constant, not along its axis 0")
		}
		return rowOuts(r.nout, slices.Concat(idx.shape, ds[1:])), nil
	}
	return nil, fmt.Errorf("both the data and the indices are batched")
}

func tileRows(r *rowNode) ([]rowVal, error) {
	x, err := r.batchedIn(0)
	if err != nil {
		return nil, err
	}
	rep, err := r.constIn(1, false)
	if err != nil {
		return nil, err
	}
	reps, ok := rep.constInts()
	if !ok || len(reps) != len(x.shape) || reps[0] != 1 {
		return nil, fmt.Errorf("repeats %v repeat the batch dimension", reps)
	}
	shape := slices.Clone(x.shape)
	for d := 1; d < len(shape); d++ {
		if shape[d] >= 0 {
			shape[d] *= reps[d]
		}
	}
	return rowOuts(r.nout, shape), nil
}

// mlRowRule covers the ONNX-ML operators, which all work row by row on a
// [N, F] input (a 1-D input would be one row of features to most of them,
// so it is not admitted where that matters).
func mlRowRule(r *rowNode) ([]rowVal, error) {
	switch r.typ {
	case "Binarizer", "LabelEncoder", "CategoryMapper":
		return rowsElementwise(r, 1)
	case "Scaler", "Imputer", "Normalizer":
		x, err := r.batchedIn(0)
		if err != nil {
			return nil, err
		}
		if len(x.shape) != 2 {
			return nil, fmt.Errorf("input of rank %d, want [N, F]", len(x.shape))
		}
		return rowOuts(r.nout, x.shape), nil
	case "LinearClassifier", "SVMClassifier", "TreeEnsembleClassifier",
		"LinearRegressor", "SVMRegressor", "TreeEnsembleRegressor", "TreeEnsemble":
		x, err := r.batchedIn(0)
		if err != nil {
			return nil, err
		}
		if len(x.shape) != 2 || len(r.in) != 1 {
			return nil, fmt.Errorf("input of rank %d, want [N, F]", len(x.shape))
		}
		o := rowOuts(r.nout, []int64{-1, -1})
		if len(o) == 2 { // classifiers: label [N], scores [N, C]
			o[0].shape = []int64{-1}
		}
		return o, nil
	case "ZipMap":
		x, err := r.batchedIn(0)
		if err != nil {
			return nil, err
		}
		if len(x.shape) != 2 {
			return nil, fmt.Errorf("input of rank %d, want [N, C]", len(x.shape))
		}
		return []rowVal{{shape: x.shape, seq: true}}, nil
	case "ArrayFeatureExtractor":
		x, err := r.batchedIn(0)
		if err != nil {
			return nil, err
		}
		if len(x.shape) < 2 {
			return nil, fmt.Errorf("a 1-D input: the indices select rows")
		}
		if _, err := r.constIn(1, false); err != nil {
			return nil, err
		}
		shape := slices.Clone(x.shape)
		shape[len(shape)-1] = -1
		return rowOuts(r.nout, shape), nil
	case "OneHotEncoder":
		x, err := r.batchedIn(0)
		if err != nil {
			return nil, err
		}
		return rowOuts(r.nout, append(slices.Clone(x.shape), -1)), nil
	case "FeatureVectorizer":
		for k := range r.in {
			if v, err := r.batchedIn(k); err != nil {
				return nil, err
			} else if len(v.shape) != 2 {
				return nil, fmt.Errorf("input %d of rank %d, want [N, F]", k, len(v.shape))
			}
		}
		return rowOuts(r.nout, []int64{-1, -1}), nil
	}
	return nil, fmt.Errorf("operator not proven per-row for batching")
}
