package onnx

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Shape inference.
//
// After planning, the loader propagates element types and shapes from the
// graph inputs and constants through every node, in topological order, with
// one shape function per operator or family of operators (shapeFuncFor).
// A dimension is a known size, a symbol (a size fixed for one request but
// unknown at load time, such as the batch dimension), or unknown. Each
// graph input dimension without a fixed size gets its own symbol.
//
// Inference serves three ends:
//
//   - the signature: graph outputs whose declared shape lacks a dimension
//     (or the whole shape) get what inference found, so the OIP metadata
//     endpoint reports [-1, 3] rather than nothing;
//   - checking: an inferred type, rank or size that contradicts the graph's
//     declared outputs or value_info makes the load fail, naming the node;
//     so does a node whose inputs can never fit (a MatMul of [N, 4] by
//     [5, 3]);
//   - requests: operators that need two dimensions equal (the inner
//     dimensions of MatMul and Gemm, the non-axis dimensions of Concat,
//     Conv's input channels) unify them, which can fix a graph input's
//     dimension to a size (the signature then says 4, not -1, and Infer
//     refuses other sizes before running) or prove two input dimensions
//     equal (Infer checks them too).
//
// A shape function that cannot decide leaves its outputs unknown: an
// operator without one, a shape that depends on data, a version whose
// semantics it does not model. Inference must never be wrong; it may be
// silent.

// dim is one inferred dimension: a size (>= 0), unknownDim, or a symbol
// (<= -2, see symDim).
type dim int64

const unknownDim dim = -1

// maxDim bounds the sizes inference computes with, so that arithmetic on
// hostile sizes never overflows; a larger size is treated as unknown.
const maxDim = 1 << 40

// maxVal bounds the elements of a small integer tensor whose contents
// inference follows (shapes flowing into Reshape, Expand, ...).
const maxVal = 64

func symDim(id int) dim      { return dim(-2 - id) }
func (d dim) known() bool    { return d >= 0 }
func (d dim) symbol() int    { return int(-2 - d) }
func (d dim) isSymbol() bool { return d <= -2 }

// vshape is what inference knows about one value.
type vshape struct {
	// dt is the element type of a tensor; tensor.Invalid when unknown or
	// not a tensor.
	dt tensor.DType
	// ranked says whether dims holds the shape; when false the rank is
	// unknown.
	ranked bool
	dims   []dim
	// val holds the contents of a small integer tensor of rank 0 or 1 (at
	// most maxVal elements) when inference knows them; nil otherwise.
	val []elem
}

// ranked returns a ranked shape of the given dims.
func ranked(dt tensor.DType, dims ...dim) vshape {
	return vshape{dt: dt, ranked: true, dims: dims}
}

// shapeInf holds the symbols of one inference run: a union-find over
// symbols, some of them bound to sizes.
type shapeInf struct {
	parent []int
	size   []dim // per root symbol: its size, or unknownDim
}

func (s *shapeInf) newSym() dim {
	s.parent = append(s.parent, len(s.parent))
	s.size = append(s.size, unknownDim)
	return symDim(len(s.parent) - 1)
}

func (s *shapeInf) root(id int) int {
	for s.parent[id] != id {
		s.parent[id] = s.parent[s.parent[id]]
		id = s.parent[id]
	}
	return id
}

// resolve returns d with its symbol replaced by its root, or by the size
// it is bound to.
func (s *shapeInf) resolve(d dim) dim {
	if !d.isSymbol() {
		return d
	}
	r := s.root(d.symbol())
	if s.size[r] != unknownDim {
		return s.size[r]
	}
	return symDim(r)
}

// errDims is wrapped by shape functions for inputs that can never fit.
var errDims = errors.New("dimensions do not fit")

// unify records that a and b are the same size: it binds a symbol to a
// size or merges two symbols, and fails when both are sizes that differ.
func (s *shapeInf) unify(a, b dim) error {
	a, b = s.resolve(a), s.resolve(b)
	switch {
	case a == unknownDim || b == unknownDim || a == b:
		return nil
	case a.known() && b.known():
		return fmt.Errorf("%w: %d and %d must be equal", errDims, a, b)
	case a.known():
		s.size[b.symbol()] = a
	case b.known():
		s.size[a.symbol()] = b
	default:
		s.parent[a.symbol()] = b.symbol()
	}
	return nil
}

// shapeCtx is what a shape function receives: the node, what inference
// knows of its inputs (an absent input is an unknown vshape with
// present false), and its outputs to fill (unknown at first).
type shapeCtx struct {
	inf *shapeInf
	n   *Node
	in  []vshape
	out []vshape
}

// shapeFunc infers a node's outputs. It returns an error (wrapping errDims)
// only when the node can never run on inputs of the known shapes.
type shapeFunc func(c *shapeCtx) error

// input returns what is known of input i (unknown when absent).
func (c *shapeCtx) input(i int) vshape {
	if i < len(c.in) {
		return c.in[i]
	}
	return vshape{}
}

// present reports whether input i is given.
func (c *shapeCtx) present(i int) bool {
	return i < len(c.n.InputPresent) && c.n.InputPresent[i]
}

// set records output i, when the node has it.
func (c *shapeCtx) set(i int, v vshape) {
	if i < len(c.out) {
		c.out[i] = v
	}
}

// elem is one element of a small integer tensor whose contents inference
// follows: a constant of any sign (isConst), or a dimension (a symbol or
// unknownDim) taken from a shape.
type elem struct {
	c       int64
	d       dim
	isConst bool
}

func constElem(c int64) elem { return elem{c: c, isConst: true} }

// dimElem wraps a dimension; a known size becomes a constant.
func dimElem(d dim) elem {
	if d.known() {
		return constElem(int64(d))
	}
	return elem{d: d}
}

// asDim reads e as a size: a constant in [0, maxDim], a symbol, or
// unknownDim.
func (e elem) asDim() dim {
	if e.isConst {
		if e.c >= 0 && e.c <= maxDim {
			return dim(e.c)
		}
		return unknownDim
	}
	return e.d
}

// ints returns the contents of input i when inference knows them.
func (c *shapeCtx) ints(i int) ([]elem, bool) {
	v := c.input(i)
	return v.val, v.val != nil
}

// constInt64s returns input i's contents when every element is a constant
// known at load time.
func (c *shapeCtx) constInt64s(i int) ([]int64, bool) {
	if i < len(c.n.Const) && c.n.Const[i] != nil {
		v := c.n.Const[i]
		if v.Kind != KindTensor || len(v.Tensor.Shape) > 1 || v.Len() > 1<<16 {
			return nil, false
		}
		switch d := v.Tensor.Data.(type) {
		case []int64:
			return d, true
		case []int32:
			out := make([]int64, len(d))
			for k, x := range d {
				out[k] = int64(x)
			}
			return out, true
		}
		return nil, false
	}
	v, ok := c.ints(i)
	if !ok {
		return nil, false
	}
	out := make([]int64, len(v))
	for k, e := range v {
		if !e.isConst {
			return nil, false
		}
		out[k] = e.c
	}
	return out, true
}

// valOf returns the contents of a constant integer tensor of rank 0 or 1
// small enough to follow, or nil.
func valOf(v *Value) []elem {
	if v == nil || v.Kind != KindTensor || len(v.Tensor.Shape) > 1 {
		return nil
	}
	n := v.Len()
	if n > maxVal {
		return nil
	}
	out := make([]elem, n)
	for i := range n {
		switch d := v.Tensor.Data.(type) {
		case []int64:
			out[i] = constElem(d[i])
		case []int32:
			out[i] = constElem(int64(d[i]))
		default:
			return nil
		}
	}
	return out
}

// shapeOfConst describes a constant value.
func shapeOfConst(v *Value) vshape {
	if v.Kind != KindTensor {
		return vshape{}
	}
	s := vshape{dt: v.Tensor.DType, ranked: true, dims: make([]dim, len(v.Tensor.Shape)), val: valOf(v)}
	for i, d := range v.Tensor.Shape {
		s.dims[i] = dim(d)
	}
	return s
}

// shapeOfType describes a declared TypeProto, giving each dimension
// without a size a new symbol from inf (when inf is not nil) or leaving it
// unknown.
func shapeOfType(tp *onnxpb.TypeProto, inf *shapeInf) vshape {
	tt := tp.GetTensorType()
	if tt == nil {
		return vshape{}
	}
	var s vshape
	if dt, err := dtypeOf(tt.GetElemType()); err == nil {
		s.dt = dt
	}
	sh := tt.GetShape()
	if sh == nil {
		return s
	}
	s.ranked = true
	s.dims = make([]dim, len(sh.GetDim()))
	for i, d := range sh.GetDim() {
		s.dims[i] = unknownDim
		if dv, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && dv.DimValue >= 0 && dv.DimValue <= maxDim {
			s.dims[i] = dim(dv.DimValue)
		} else if inf != nil {
			s.dims[i] = inf.newSym()
		}
	}
	return s
}

// dimPair says that two graph input dimensions must be equal: input
// dimPair.a[0] axis a[1] and input b[0] axis b[1].
type dimPair struct{ a, b [2]int }

// inferShapes runs shape inference over the planned graph (see the comment
// at the top of this file). order is the nodes' topological order, nds
// their instantiated Nodes (nil for none), nodeIn and nodeOut their value
// indices. It refines m.sig and sets m.dimEq; it returns an error wrapping
// ErrInvalidModel for a contradiction.
func (m *Model) inferShapes(g *onnxpb.GraphProto, order []int, nodes []*onnxpb.NodeProto, nds []*Node, nodeIn, nodeOut [][]int) error {
	inf := &shapeInf{}
	vals := make([]vshape, len(m.consts))
	inSyms := make([][]dim, len(m.inputs))
	for k, vi := range m.inputs {
		if k < len(m.inTypes) {
			vals[vi] = shapeOfType(m.inTypes[k], inf)
			inSyms[k] = vals[vi].dims
		}
	}
	for vi, c := range m.consts {
		if c != nil {
			vals[vi] = shapeOfConst(c)
		}
	}
	declared := map[string]*onnxpb.TypeProto{}
	for _, vi := range g.GetValueInfo() {
		declared[vi.GetName()] = vi.GetType()
	}
	for _, vi := range g.GetOutput() {
		declared[vi.GetName()] = vi.GetType()
	}
	for _, ni := range order {
		n, nd := nodes[ni], nds[ni]
		if nd == nil {
			continue
		}
		folded := len(nodeOut[ni]) > 0
		for _, vi := range nodeOut[ni] {
			folded = folded && m.consts[vi] != nil
		}
		if folded {
			continue // outputs already described from their values
		}
		f := shapeFuncFor(nd.Domain, nd.OpType, nd.Version)
		if f == nil {
			continue
		}
		c := &shapeCtx{inf: inf, n: nd, in: make([]vshape, len(nodeIn[ni])), out: make([]vshape, len(nodeOut[ni]))}
		for k, vi := range nodeIn[ni] {
			if vi >= 0 {
				c.in[k] = vals[vi]
				c.in[k].dims = resolveAll(inf, c.in[k].dims)
				c.in[k].val = resolveElems(inf, c.in[k].val)
			}
		}
		if err := f(c); err != nil {
			return fmt.Errorf("%w: node %q (%s): %w", ErrInvalidModel, n.GetName(), n.GetOpType(), err)
		}
		for k, vi := range nodeOut[ni] {
			if n.GetOutput()[k] == "" {
				continue
			}
			out := c.out[k]
			if !out.ranked {
				out.dims = nil
			}
			if err := checkDeclared(inf, out, declared[n.GetOutput()[k]]); err != nil {
				return fmt.Errorf("%w: node %q (%s): output %q: %w", ErrInvalidModel, n.GetName(), n.GetOpType(), n.GetOutput()[k], err)
			}
			vals[vi] = out
		}
	}
	m.refineSignature(inf, vals, inSyms)
	return nil
}

func resolveAll(inf *shapeInf, ds []dim) []dim {
	if ds == nil {
		return nil
	}
	out := make([]dim, len(ds))
	for i, d := range ds {
		out[i] = inf.resolve(d)
	}
	return out
}

func resolveElems(inf *shapeInf, es []elem) []elem {
	if es == nil {
		return nil
	}
	out := make([]elem, len(es))
	for i, e := range es {
		out[i] = e
		if !e.isConst {
			out[i] = dimElem(inf.resolve(e.d))
		}
	}
	return out
}

// checkDeclared compares an inferred value with its declared type: element
// types, ranks and sizes known on both sides must agree. Symbols never
// contradict a declaration (and a declaration binds no symbol: converters
// often declare a fixed batch size the graph does not need).
func checkDeclared(inf *shapeInf, got vshape, tp *onnxpb.TypeProto) error {
	if tp == nil || tp.GetTensorType() == nil {
		return nil
	}
	want := shapeOfType(tp, nil)
	if got.dt != tensor.Invalid && want.dt != tensor.Invalid && got.dt != want.dt {
		return fmt.Errorf("inferred element type %v, the graph declares %v", got.dt, want.dt)
	}
	if !got.ranked || !want.ranked {
		return nil
	}
	if len(got.dims) != len(want.dims) {
		return fmt.Errorf("inferred shape %s, the graph declares %s", formatDims(inf, got.dims), formatDims(inf, want.dims))
	}
	for i, d := range got.dims {
		d = inf.resolve(d)
		if d.known() && want.dims[i].known() && d != want.dims[i] {
			return fmt.Errorf("inferred shape %s, the graph declares %s", formatDims(inf, got.dims), formatDims(inf, want.dims))
		}
	}
	return nil
}

// formatDims writes dims as [N0, 3, ?].
func formatDims(inf *shapeInf, ds []dim) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range ds {
		if i > 0 {
			b.WriteString(", ")
		}
		d = inf.resolve(d)
		switch {
		case d.known():
			b.WriteString(strconv.FormatInt(int64(d), 10))
		case d.isSymbol():
			b.WriteString("N" + strconv.Itoa(d.symbol()))
		default:
			b.WriteByte('?')
		}
	}
	b.WriteByte(']')
	return b.String()
}

// refineSignature fills what the declarations leave open: input sizes that
// unification fixed, output shapes and sizes that inference found; and
// records the input dimensions proved equal.
func (m *Model) refineSignature(inf *shapeInf, vals []vshape, inSyms [][]dim) {
	firstOf := map[int][2]int{} // root symbol -> first input dimension
	m.dimEq = nil
	for k, syms := range inSyms {
		if k >= len(m.sig.Inputs) {
			break
		}
		spec := &m.sig.Inputs[k]
		for a, d := range syms {
			if a >= len(spec.Shape) || spec.Shape[a] >= 0 {
				continue
			}
			r := inf.resolve(d)
			switch {
			case r.known():
				spec.Shape[a] = int64(r)
			case r.isSymbol():
				if p, ok := firstOf[r.symbol()]; ok {
					m.dimEq = append(m.dimEq, dimPair{a: p, b: [2]int{k, a}})
				} else {
					firstOf[r.symbol()] = [2]int{k, a}
				}
			}
		}
	}
	for k, vi := range m.outputs {
		if k >= len(m.outTensor) || k >= len(m.sig.Outputs) {
			continue
		}
		spec := &m.sig.Outputs[k]
		v := vals[vi]
		if !m.outTensor[k] {
			// A sequence of maps served as a [N, C] tensor: its shape
			// function describes that tensor.
			if spec.DType != tensor.Invalid && len(spec.Shape) == 2 && v.ranked && len(v.dims) == 2 {
				for i, d := range v.dims {
					if r := inf.resolve(d); r.known() {
						spec.Shape[i] = int64(r)
					}
				}
			}
			continue
		}
		if spec.DType == tensor.Invalid && v.dt != tensor.Invalid {
			spec.DType = v.dt
		}
		if !v.ranked {
			continue
		}
		if spec.Shape == nil {
			spec.Shape = make([]int64, len(v.dims))
			for i := range spec.Shape {
				spec.Shape[i] = -1
			}
		}
		if len(spec.Shape) != len(v.dims) {
			continue // checkDeclared has refused a contradiction; this is a graph input or constant
		}
		for i, d := range v.dims {
			if r := inf.resolve(d); spec.Shape[i] < 0 && r.known() {
				spec.Shape[i] = int64(r)
			}
		}
	}
}

// checkDimEq refuses inputs whose dimensions shape inference proved must
// be equal but differ (before running anything).
func (m *Model) checkDimEq(inputs []Value) error {
	for _, p := range m.dimEq {
		a, b := &inputs[p.a[0]].Tensor, &inputs[p.b[0]].Tensor
		if p.a[1] >= len(a.Shape) || p.b[1] >= len(b.Shape) {
			continue // the rank check has already answered
		}
		if a.Shape[p.a[1]] != b.Shape[p.b[1]] {
			return badInput("input %q has shape %v and input %q has shape %v: dimension %d of the first must equal dimension %d of the second",
				m.inNames[p.a[0]], a.Shape, m.inNames[p.b[0]], b.Shape, p.a[1], p.b[1])
		}
	}
	return nil
}
