package onnx

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// The operator API.
//
// An operator is an Op: a domain, an op type, the range of opset versions
// whose semantics it implements, and a constructor, New. Ops live in an
// explicit table, an *OpSet, built by DefaultOps from one list function per
// file (basicOps in ops_basic.go, mlOps in ops_ml.go, ...); there is no
// registration at init time. To add operators, write a function returning
// []Op in your ops_*.go file and append it in DefaultOps.
//
// At load time, the planner resolves every node against the model's opset
// imports (Lookup picks the Op of the node's domain and type whose version
// range holds the imported version) and calls New once per node with a
// *Node describing it: attributes, the number of inputs and outputs, and the
// value of every input that is a constant (an initializer or a folded
// Constant). New parses and checks the attributes (so a bad attribute is a
// load error, not a run error), precomputes what it can, and returns a
// Kernel. A node whose op is not in the table, or whose imported version is
// outside every range, makes the load fail with ErrUnsupported.
//
// A Kernel is a plain function, called for every run of the graph, possibly
// from many goroutines at once: it must treat everything it captured from
// New as read-only. Each call gets
//
//   - tmp: scratch memory owned by one execution state and this node, kept
//     between runs (use it for temporaries instead of make);
//   - in: the node's inputs, in order; an absent optional input is a Value
//     of KindNone (and in may be shorter than the node's declared inputs
//     when trailing optional inputs are absent: use Arg); inputs are
//     read-only, they may be graph inputs owned by the caller or constants
//     shared by every run;
//   - out: the node's outputs, Values owned by the execution state. Write
//     each one with Value.Resize (which reuses the buffer of an earlier run)
//     and then fill every element of its Data. An output Value may be the
//     same buffer another, already dead, value used before (the planner
//     shares buffers by liveness), so never assume its contents. Never make
//     an output share memory with an input: copy instead.
//
// Kernels return errors wrapping ErrInvalidInput (itself wrapping
// backend.ErrInvalidInput) for inputs of the wrong type or shape.
//
// So that a model run allocates nothing in steady state, a kernel allocates
// neither in Go code (no make, no append past capacity, no closures that
// escape, no fmt on the success path) nor through interfaces: take the typed
// slice once with a type switch or the accessors (Value.Float32s, ...).

// Domains of the operator sets shoal implements. The default domain is
// spelled "" or "ai.onnx" in models; the planner maps both to DomainONNX.
const (
	DomainONNX = ""
	DomainML   = "ai.onnx.ml"
)

// Op is one operator implementation for a range of opset versions. Several
// Ops may share a domain and type with disjoint version ranges (Softmax
// before and since opset 13).
type Op struct {
	// Domain is DomainONNX or DomainML.
	Domain string
	// Type is the ONNX op type ("Add", "TreeEnsembleClassifier").
	Type string
	// Since is the first opset version of Domain this Op implements: the
	// since_version of the operator's schema in ONNX's Operators.md.
	Since int64
	// Until is the last opset version this Op implements; zero means every
	// later version (until a new schema version needs a new Op).
	Until int64
	// New instantiates the operator for one node. It is called once per
	// node at load time and returns an error (wrapped by the loader with
	// the node's name) for bad attributes or constant inputs.
	New func(n *Node) (Kernel, error)
}

// Kernel computes one node's outputs from its inputs; see the operator API
// above for the contract on tmp, in and out.
type Kernel func(tmp *Scratch, in, out []*Value) error

// Node is what Op.New receives: one node of the graph, with its opset
// version resolved.
type Node struct {
	// Name is the node's name (may be empty) and OpType its type.
	Name, OpType string
	// Domain is DomainONNX or DomainML; Version is the opset version of
	// Domain the model imports.
	Domain  string
	Version int64
	// Attrs holds the node's attributes.
	Attrs *Attrs
	// NumInputs is the number of inputs listed by the node (including
	// absent optional ones, named ""), NumOutputs the number of outputs.
	NumInputs, NumOutputs int
	// InputPresent[i] says whether input i is given (a non-empty name).
	InputPresent []bool
	// OutputPresent[i] says whether output i is used (a non-empty name).
	OutputPresent []bool
	// Const[i] is the value of input i when it is known at load time (an
	// initializer or the output of constant nodes), nil otherwise. Kernels
	// that need an input at load time (a Reshape's shape, a Clip's bounds)
	// may read it here; they must still accept the value at run time.
	Const []*Value
	// Captures names the outer-scope values that the node's subgraph
	// attributes (If's branches, Loop's and Scan's body) read without
	// declaring them as inputs. The kernel receives them in `in` after the
	// NumInputs declared inputs, in this order; InputPresent and Const
	// cover them too. Nil for nodes without subgraphs.
	Captures []string
	// MaxBytes is the model's memory limit (Options.MaxBytes less the
	// file size). Kernels whose output size depends on the data of many
	// iterations (Loop's scan outputs, growing sequences) refuse to go
	// past it. Zero means no limit (tests that build nodes by hand).
	MaxBytes int64

	// sub plans a subgraph attribute with Captures as its outer scope;
	// set by the loader, nil in nodes built by hand (see Node.Subgraph).
	sub func(*onnxpb.GraphProto) (*Model, error)
}

// Errors of the operator layer.
var (
	// ErrUnsupported is wrapped when a model uses an operator, an opset
	// version, an attribute value or an element type that shoal does not
	// implement.
	ErrUnsupported = errors.New("onnx: unsupported")
	// ErrAttr is wrapped by Op.New for a missing or malformed attribute.
	ErrAttr = errors.New("onnx: bad attribute")
)

// OpSet is a table of operators, keyed by domain and type. It is immutable
// once built and safe for concurrent use.
type OpSet struct {
	ops map[opKey][]Op
}

type opKey struct{ domain, typ string }

// NewOpSet builds a table from lists of Ops. It returns an error when two
// Ops of the same domain and type have overlapping version ranges.
func NewOpSet(lists ...[]Op) (*OpSet, error) {
	s := &OpSet{ops: make(map[opKey][]Op)}
	for _, l := range lists {
		for _, op := range l {
			k := opKey{op.Domain, op.Type}
			for _, o := range s.ops[k] {
				if overlap(o, op) {
					return nil, fmt.Errorf("onnx: op %s:%s registered twice for overlapping versions [%d,%d] and [%d,%d]",
						op.Domain, op.Type, o.Since, o.Until, op.Since, op.Until)
				}
			}
			s.ops[k] = append(s.ops[k], op)
		}
	}
	return s, nil
}

func overlap(a, b Op) bool {
	aHi, bHi := a.Until, b.Until
	if aHi == 0 {
		aHi = 1 << 62
	}
	if bHi == 0 {
		bHi = 1 << 62
	}
	return a.Since <= bHi && b.Since <= aHi
}

// DefaultOps returns the table of every operator shoal implements. Each
// ops_*.go file contributes one list function.
func DefaultOps() *OpSet {
	s, err := NewOpSet(
		basicOps(),
		unaryOps(),
		coreOps(),
		mlOps(),
		mathOps(),
		shapeOps(),
		reduceOps(),
		nnOps(),
		controlOps(),
		seqOps(),
		textOps(),
		causalConvOps(),
		linearAttentionOps(),
		deformConvOps(),
		flexAttentionOps(),
		trainingOps(),
		swigluOps(),
		imageOps(),
		stftOps(),
		legacyOps(),
	)
	if err != nil {
		panic(err) // a programming error in the lists, caught by every test
	}
	return s
}

// Lookup returns the Op implementing domain:typ at opset version, or false.
func (s *OpSet) Lookup(domain, typ string, version int64) (Op, bool) {
	for _, op := range s.ops[opKey{domain, typ}] {
		if version >= op.Since && (op.Until == 0 || version <= op.Until) {
			return op, true
		}
	}
	return Op{}, false
}

// Types returns the number of distinct domain:type pairs in s and their
// names ("Add", "ai.onnx.ml:Scaler"), sorted.
func (s *OpSet) Types() []string {
	var names []string
	for k := range s.ops {
		if k.domain == DomainONNX {
			names = append(names, k.typ)
		} else {
			names = append(names, k.domain+":"+k.typ)
		}
	}
	sort.Strings(names)
	return names
}

// Arg returns in[i], or an absent Value when the node has fewer inputs.
// Kernels use it for trailing optional inputs.
func Arg(in []*Value, i int) *Value {
	if i < len(in) && in[i] != nil {
		return in[i]
	}
	return &absent
}

// absent is the shared absent value returned by Arg; it is never written.
var absent Value

// Scratch is temporary memory for one node in one execution state. Each
// accessor returns a slice of n elements, reusing the memory of earlier
// calls; the contents are unspecified. Two calls to the same accessor
// return the same memory, so take each kind of slice once per run (or
// slice one larger one up). Any is free for a kernel's own per-state
// data (nil at first).
type Scratch struct {
	f32   []float32
	f64   []float64
	i64   []int64
	shape []int64
	Any   any
	// ctx is the context of the run in progress, set by the executor
	// before each kernel call (nil when constants are folded at load
	// time); kernels that loop read it through Context. It is a field
	// only because a Kernel's signature has no room for it.
	ctx context.Context
}

// Context returns the context of the run in progress (Background when
// there is none, as when constants are folded), for kernels that run
// subgraphs or loop for long and must stop when the request is cancelled.
func (s *Scratch) Context() context.Context {
	if s.ctx == nil {
		return context.Background()
	}
	return s.ctx
}

// Float32s returns n float32s of scratch memory.
func (s *Scratch) Float32s(n int) []float32 {
	if cap(s.f32) < n {
		s.f32 = make([]float32, n)
	}
	return s.f32[:n]
}

// Float64s returns n float64s of scratch memory.
func (s *Scratch) Float64s(n int) []float64 {
	if cap(s.f64) < n {
		s.f64 = make([]float64, n)
	}
	return s.f64[:n]
}

// Int64s returns n int64s of scratch memory.
func (s *Scratch) Int64s(n int) []int64 {
	if cap(s.i64) < n {
		s.i64 = make([]int64, n)
	}
	return s.i64[:n]
}

// Shape returns n int64s of scratch memory distinct from Int64s, meant for
// building an output shape to pass to Value.Resize.
func (s *Scratch) Shape(n int) []int64 {
	if cap(s.shape) < n {
		s.shape = make([]int64, n, max(n, 8))
	}
	return s.shape[:n]
}

// ErrInvalidInput is wrapped by kernels for inputs of the wrong type or
// shape. It wraps backend.ErrInvalidInput, so servers answer 400.
var ErrInvalidInput = fmt.Errorf("onnx: %w", backend.ErrInvalidInput)

// badInput returns an error wrapping ErrInvalidInput. It allocates: call it
// only on the error path.
func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

// Attrs are a node's attributes, read by Op.New. The getters return the
// default when the attribute is absent and record an error (returned by
// Err, wrapping ErrAttr) when it has the wrong type; New reads every
// attribute it needs and then checks Err once.
type Attrs struct {
	m    map[string]*onnxpb.AttributeProto
	used map[string]bool
	err  error
	// conv converts a TensorProto attribute to a Value; set by the loader.
	conv func(*onnxpb.TensorProto) (*Value, error)
}

// NewAttrs wraps attrs (used by the loader and by tests).
func NewAttrs(attrs []*onnxpb.AttributeProto) *Attrs {
	a := &Attrs{m: make(map[string]*onnxpb.AttributeProto, len(attrs)), used: map[string]bool{}}
	for _, p := range attrs {
		if _, dup := a.m[p.GetName()]; dup {
			a.fail("attribute %q given twice", p.GetName())
		}
		a.m[p.GetName()] = p
	}
	return a
}

func (a *Attrs) fail(format string, args ...any) {
	if a.err == nil {
		a.err = fmt.Errorf("%w: "+format, append([]any{ErrAttr}, args...)...)
	}
}

// Err returns the first error met by a getter, or nil.
func (a *Attrs) Err() error { return a.err }

// Has reports whether the attribute is present.
func (a *Attrs) Has(name string) bool { _, ok := a.m[name]; return ok }

func (a *Attrs) get(name string, want onnxpb.AttributeProto_AttributeType) *onnxpb.AttributeProto {
	p, ok := a.m[name]
	if !ok {
		return nil
	}
	a.used[name] = true
	if p.GetRefAttrName() != "" {
		a.fail("attribute %q refers to a function attribute", name)
		return nil
	}
	t := p.GetType()
	if t == onnxpb.AttributeProto_UNDEFINED {
		t = guessType(p)
	}
	if t != want {
		a.fail("attribute %q is %v, want %v", name, t, want)
		return nil
	}
	return p
}

// guessType infers the type of an attribute written without one (IR < 2).
func guessType(p *onnxpb.AttributeProto) onnxpb.AttributeProto_AttributeType {
	switch {
	case len(p.GetFloats()) > 0:
		return onnxpb.AttributeProto_FLOATS
	case len(p.GetInts()) > 0:
		return onnxpb.AttributeProto_INTS
	case len(p.GetStrings()) > 0:
		return onnxpb.AttributeProto_STRINGS
	case p.F != nil:
		return onnxpb.AttributeProto_FLOAT
	case p.I != nil:
		return onnxpb.AttributeProto_INT
	case p.S != nil:
		return onnxpb.AttributeProto_STRING
	case p.T != nil:
		return onnxpb.AttributeProto_TENSOR
	}
	return onnxpb.AttributeProto_UNDEFINED
}

// Int returns an INT attribute, or def.
func (a *Attrs) Int(name string, def int64) int64 {
	if p := a.get(name, onnxpb.AttributeProto_INT); p != nil {
		return p.GetI()
	}
	return def
}

// Float returns a FLOAT attribute, or def.
func (a *Attrs) Float(name string, def float32) float32 {
	if p := a.get(name, onnxpb.AttributeProto_FLOAT); p != nil {
		return p.GetF()
	}
	return def
}

// String returns a STRING attribute, or def.
func (a *Attrs) String(name, def string) string {
	if p := a.get(name, onnxpb.AttributeProto_STRING); p != nil {
		return string(p.GetS())
	}
	return def
}

// Ints returns an INTS attribute, or nil.
func (a *Attrs) Ints(name string) []int64 {
	if p := a.get(name, onnxpb.AttributeProto_INTS); p != nil {
		return p.GetInts()
	}
	return nil
}

// Floats returns a FLOATS attribute, or nil.
func (a *Attrs) Floats(name string) []float32 {
	if p := a.get(name, onnxpb.AttributeProto_FLOATS); p != nil {
		return p.GetFloats()
	}
	return nil
}

// Strings returns a STRINGS attribute, or nil.
func (a *Attrs) Strings(name string) []string {
	p := a.get(name, onnxpb.AttributeProto_STRINGS)
	if p == nil {
		return nil
	}
	s := make([]string, len(p.GetStrings()))
	for i, b := range p.GetStrings() {
		s[i] = string(b)
	}
	return s
}

// Tensor returns a TENSOR attribute as a Value, or nil.
func (a *Attrs) Tensor(name string) *Value {
	p := a.get(name, onnxpb.AttributeProto_TENSOR)
	if p == nil {
		return nil
	}
	if a.conv == nil {
		a.fail("attribute %q: tensor attributes are not readable here", name)
		return nil
	}
	v, err := a.conv(p.GetT())
	if err != nil {
		a.fail("attribute %q: %v", name, err)
		return nil
	}
	return v
}

// checkType returns an error wrapping ErrInvalidInput unless v is a tensor
// of one of the types in ok.
func checkType(what string, v *Value, ok ...tensor.DType) error {
	if v.Kind != KindTensor {
		return badInput("%s: want a tensor, got %v", what, v)
	}
	for _, dt := range ok {
		if v.Tensor.DType == dt {
			return nil
		}
	}
	return badInput("%s: element type %v not supported", what, v.Tensor.DType)
}
