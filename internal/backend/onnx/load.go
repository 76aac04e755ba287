package onnx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// ErrInvalidModel is wrapped by Parse and Load when the file is not a valid
// ONNX model: not a protobuf, a graph with a cycle, an undefined or twice
// defined value, a tensor whose data does not match its shape, constants
// above the memory limit.
var ErrInvalidModel = errors.New("onnx: invalid model")

// DefaultMaxBytes is the memory limit for a model's file and constants when
// Options.MaxBytes is zero.
const DefaultMaxBytes = 4 << 30

// Options configure Parse. The zero value is ready to use.
type Options struct {
	// MaxBytes bounds the size of the model file plus the memory its
	// constants (initializers, external data, folded constants) take; zero
	// means DefaultMaxBytes. A hostile file cannot make Parse allocate much
	// more than this.
	MaxBytes int64
	// Ops is the operator table; nil means DefaultOps().
	Ops *OpSet
}

// Model is a planned ONNX graph. It is immutable after Parse and safe for
// concurrent use: each Run or Infer takes an execution state (the buffers of
// every intermediate value) from a pool and gives it back when done.
type Model struct {
	sig       backend.Signature
	inputs    []int    // value index of each graph input, in graph order
	inNames   []string // their names
	inTypes   []*onnxpb.TypeProto
	outputs   []int // value index of each graph output
	outNames  []string
	outTypes  []*onnxpb.TypeProto
	outTensor []bool   // per output: declared as a tensor
	consts    []*Value // per value: the constant, or nil
	slotOf    []int    // per value: the slot index for computed values, -1 otherwise
	nslots    int
	steps     []step
	dimEq     []dimPair // input dimensions shape inference proved equal (shapeinfer.go)
	batching  batchVerdict
	pool      sync.Pool
}

// step is one node of the plan.
type step struct {
	name   string // node name and type, for errors
	kernel Kernel
	in     []int // value indices; -1 for an absent optional input
	out    []int // value indices
}

// state is one execution state: the Values of every slot and of every graph
// input, and each step's argument lists and scratch memory.
type state struct {
	vals    []*Value
	slots   []Value
	inputs  []Value
	ins     [][]*Value
	outs    [][]*Value
	scratch []Scratch
}

// Load implements backend.Loader for format "onnx": it reads cfg.Artifact
// (external data files must lie in cfg.Dir) and plans it with the default
// Options. Parameters: "max_bytes" overrides Options.MaxBytes.
func Load(ctx context.Context, cfg backend.Config) (backend.Model, error) {
	var opt Options
	if s, ok := cfg.Parameters["max_bytes"]; ok {
		if _, err := fmt.Sscan(s, &opt.MaxBytes); err != nil || opt.MaxBytes <= 0 {
			return nil, fmt.Errorf("onnx: parameter max_bytes=%q: want a positive integer", s)
		}
	}
	m, err := ParseFile(cfg.Artifact, opt)
	if err != nil {
		return nil, err
	}
	if err := m.servable(cfg); err != nil {
		return nil, err
	}
	return m, nil
}

// ParseFile reads and plans the model in file; external data must lie in
// the file's directory.
func ParseFile(file string, opt Options) (*Model, error) {
	max := opt.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%w: %s is %d bytes, above the limit of %d", ErrInvalidModel, file, st.Size(), max)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	return Parse(data, filepath.Dir(file), opt)
}

// Parse decodes and plans a serialized ModelProto. dir is the directory of
// external data files ("" forbids external data). It returns errors
// wrapping ErrInvalidModel or ErrUnsupported.
func Parse(data []byte, dir string, opt Options) (*Model, error) {
	budget := opt.MaxBytes
	if budget <= 0 {
		budget = DefaultMaxBytes
	}
	if int64(len(data)) > budget {
		return nil, fmt.Errorf("%w: %d bytes, above the limit of %d", ErrInvalidModel, len(data), budget)
	}
	ops := opt.Ops
	if ops == nil {
		ops = DefaultOps()
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(data, &mp); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidModel, err)
	}
	r := &tensorReader{dir: dir, budget: budget - int64(len(data))}
	return plan(&mp, ops, r)
}

// canonDomain maps the two spellings of the default domain to DomainONNX.
func canonDomain(d string) string {
	if d == "ai.onnx" {
		return DomainONNX
	}
	return d
}

// plan checks the graph of mp and builds its execution plan.
func plan(mp *onnxpb.ModelProto, ops *OpSet, r *tensorReader) (*Model, error) {
	g := mp.GetGraph()
	if g == nil {
		return nil, fmt.Errorf("%w: no graph", ErrInvalidModel)
	}
	opsets := map[string]int64{}
	for _, o := range mp.GetOpsetImport() {
		opsets[canonDomain(o.GetDomain())] = o.GetVersion()
	}
	if len(mp.GetOpsetImport()) == 0 {
		opsets[DomainONNX] = 1 // IR version 1 models had no imports
	}
	return planGraph(g, &graphEnv{opsets: opsets, ops: ops, r: r, limit: r.budget}, nil)
}

// planGraph checks g and builds its execution plan. outer is nil for the
// main graph; for a subgraph (see subgraph.go) it holds the outer-scope
// values the subgraph reads, which become inputs after its own (or
// constants, when they are constant outside).
func planGraph(g *onnxpb.GraphProto, env *graphEnv, outer *outerScope) (*Model, error) {
	opsets, ops, r := env.opsets, env.ops, env.r
	m := &Model{}
	index := map[string]int{}
	addValue := func(name string) (int, error) {
		if name == "" {
			m.consts = append(m.consts, nil)
			return len(m.consts) - 1, nil
		}
		if _, dup := index[name]; dup {
			return 0, fmt.Errorf("%w: value %q defined twice", ErrInvalidModel, name)
		}
		index[name] = len(m.consts)
		m.consts = append(m.consts, nil)
		return len(m.consts) - 1, nil
	}
	for _, tp := range g.GetInitializer() {
		v, err := r.value(tp)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", tp.GetName(), err)
		}
		i, err := addValue(tp.GetName())
		if err != nil {
			return nil, err
		}
		m.consts[i] = v
	}
	if len(g.GetSparseInitializer()) > 0 {
		return nil, fmt.Errorf("%w: sparse initializers", ErrUnsupported)
	}
	for _, vi := range g.GetInput() {
		if _, isInit := index[vi.GetName()]; isInit {
			continue // an initializer listed as input: a constant here
		}
		i, err := addValue(vi.GetName())
		if err != nil {
			return nil, err
		}
		if vi.GetName() == "" {
			return nil, fmt.Errorf("%w: graph input without a name", ErrInvalidModel)
		}
		m.inputs = append(m.inputs, i)
		m.inNames = append(m.inNames, vi.GetName())
		m.inTypes = append(m.inTypes, vi.GetType())
	}
	if err := m.addOuter(outer, addValue); err != nil {
		return nil, err
	}
	nodes := g.GetNode()
	producer := map[int]int{} // value -> node
	nodeOut := make([][]int, len(nodes))
	for ni, n := range nodes {
		for _, name := range n.GetOutput() {
			i, err := addValue(name)
			if err != nil {
				return nil, fmt.Errorf("node %d (%s): %w", ni, n.GetOpType(), err)
			}
			producer[i] = ni
			nodeOut[ni] = append(nodeOut[ni], i)
		}
	}
	nodeIn := make([][]int, len(nodes))
	captures := make([][]string, len(nodes))
	for ni, n := range nodes {
		captures[ni] = nodeCaptures(n)
		for k, name := range append(append([]string(nil), n.GetInput()...), captures[ni]...) {
			if name == "" {
				nodeIn[ni] = append(nodeIn[ni], -1)
				continue
			}
			i, ok := index[name]
			if !ok {
				what := "reads"
				if k >= len(n.GetInput()) {
					what = "has a subgraph that reads"
				}
				return nil, fmt.Errorf("%w: node %d (%s) %s %q, which nothing defines", ErrInvalidModel, ni, n.GetOpType(), what, name)
			}
			nodeIn[ni] = append(nodeIn[ni], i)
		}
	}
	order, err := topoOrder(nodeIn, producer)
	if err != nil {
		return nil, err
	}
	for _, vi := range g.GetOutput() {
		i, ok := index[vi.GetName()]
		if !ok {
			return nil, fmt.Errorf("%w: graph output %q is not defined", ErrInvalidModel, vi.GetName())
		}
		m.outputs = append(m.outputs, i)
		m.outNames = append(m.outNames, vi.GetName())
		m.outTypes = append(m.outTypes, vi.GetType())
	}
	if len(m.outputs) == 0 {
		return nil, fmt.Errorf("%w: no outputs", ErrInvalidModel)
	}

	// Instantiate every node in order, folding those whose inputs are all
	// constant.
	nds := make([]*Node, len(nodes)) // for shape inference
	for _, ni := range order {
		n := nodes[ni]
		domain := canonDomain(n.GetDomain())
		version, ok := opsets[domain]
		if !ok {
			return nil, fmt.Errorf("%w: node %q (%s) in domain %q, which the model does not import", ErrInvalidModel, n.GetName(), n.GetOpType(), domain)
		}
		op, ok := ops.Lookup(domain, n.GetOpType(), version)
		if !ok {
			return nil, fmt.Errorf("%w: operator %s version %d (node %q)", ErrUnsupported, opName(domain, n.GetOpType()), version, n.GetName())
		}
		attrs := NewAttrs(n.GetAttribute())
		attrs.conv = r.value
		nd := &Node{
			Name: n.GetName(), OpType: n.GetOpType(), Domain: domain, Version: version, Attrs: attrs,
			NumInputs: len(n.GetInput()), NumOutputs: len(nodeOut[ni]),
			InputPresent: make([]bool, len(nodeIn[ni])), OutputPresent: make([]bool, len(nodeOut[ni])),
			Const: make([]*Value, len(nodeIn[ni])),
		}
		env.bindSubgraphs(nd, captures[ni])
		allConst := true
		for k, vi := range nodeIn[ni] {
			if vi >= 0 {
				nd.InputPresent[k] = true
				nd.Const[k] = m.consts[vi]
				allConst = allConst && m.consts[vi] != nil
			}
		}
		for k, name := range n.GetOutput() {
			nd.OutputPresent[k] = name != ""
		}
		kernel, err := op.New(nd)
		if err == nil {
			err = attrs.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("node %q (%s): %w", n.GetName(), n.GetOpType(), err)
		}
		nds[ni] = nd
		st := step{name: n.GetName() + " (" + n.GetOpType() + ")", kernel: kernel, in: nodeIn[ni], out: nodeOut[ni]}
		if allConst && (len(nodeIn[ni]) > 0 || n.GetOpType() == "Constant") && foldable(domain, n.GetOpType()) {
			if err := m.fold(st, r); err != nil {
				return nil, fmt.Errorf("node %q (%s): %w", n.GetName(), n.GetOpType(), err)
			}
			continue
		}
		m.steps = append(m.steps, st)
	}
	m.assignSlots()
	if err := m.signature(g); err != nil {
		return nil, err
	}
	if err := m.inferShapes(g, order, nodes, nds, nodeIn, nodeOut); err != nil {
		return nil, err
	}
	m.batching = analyzeBatching(g, order, opsets, index, m.consts)
	m.pool.New = func() any { return m.newState() }
	return m, nil
}

// foldable reports whether a node with constant inputs may run at load time
// (random generators may not).
func foldable(domain, typ string) bool {
	switch typ {
	case "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout":
		return false
	case "If", "Loop", "Scan", "SequenceMap":
		return false // a subgraph may loop for long: run it with a context
	}
	return true
}

func opName(domain, typ string) string {
	if domain == DomainONNX {
		return typ
	}
	return domain + ":" + typ
}

// fold runs st at load time and records its outputs as constants.
func (m *Model) fold(st step, r *tensorReader) error {
	in := make([]*Value, len(st.in))
	for k, vi := range st.in {
		in[k] = &absent
		if vi >= 0 {
			in[k] = m.consts[vi]
		}
	}
	out := make([]*Value, len(st.out))
	for k := range out {
		out[k] = &Value{limit: int(max(r.budget/8, 1))}
	}
	if err := st.kernel(new(Scratch), in, out); err != nil {
		return err
	}
	for k, vi := range st.out {
		if err := r.take(valueBytes(out[k])); err != nil {
			return err
		}
		out[k].limit = 0
		m.consts[vi] = out[k]
	}
	return nil
}

// valueBytes estimates the memory a Value holds.
func valueBytes(v *Value) int64 {
	switch v.Kind {
	case KindTensor, KindMap:
		size := max(v.Tensor.DType.Size(), 16)
		return int64(v.Len()) * int64(size)
	case KindSequence:
		var n int64
		for _, e := range v.Seq {
			n += valueBytes(e)
		}
		return n
	}
	return 0
}

// topoOrder returns the nodes in an order where every node comes after the
// producers of its inputs (Kahn's algorithm, stable in file order), or an
// error wrapping ErrInvalidModel for a cycle.
func topoOrder(nodeIn [][]int, producer map[int]int) ([]int, error) {
	n := len(nodeIn)
	pending := make([]int, n)
	users := make([][]int, n)
	for ni, ins := range nodeIn {
		for _, vi := range ins {
			if p, ok := producer[vi]; ok && vi >= 0 {
				pending[ni]++
				users[p] = append(users[p], ni)
			}
		}
	}
	var queue, order []int
	for ni := range n {
		if pending[ni] == 0 {
			queue = append(queue, ni)
		}
	}
	for len(queue) > 0 {
		ni := queue[0]
		queue = queue[1:]
		order = append(order, ni)
		for _, u := range users[ni] {
			pending[u]--
			if pending[u] == 0 {
				queue = append(queue, u)
			}
		}
	}
	if len(order) != n {
		return nil, fmt.Errorf("%w: the graph has a cycle", ErrInvalidModel)
	}
	return order, nil
}

// assignSlots gives every computed value a buffer slot, sharing slots
// between values whose lifetimes do not overlap.
func (m *Model) assignSlots() {
	nv := len(m.consts)
	m.slotOf = make([]int, nv)
	last := make([]int, nv)
	for i := range m.slotOf {
		m.slotOf[i] = -1
		last[i] = -1
	}
	for s, st := range m.steps {
		for _, vi := range st.in {
			if vi >= 0 {
				last[vi] = s
			}
		}
	}
	for _, vi := range m.outputs {
		last[vi] = len(m.steps) // live to the end
	}
	var free []int
	for s, st := range m.steps {
		for _, vi := range st.out {
			if len(free) > 0 {
				m.slotOf[vi] = free[len(free)-1]
				free = free[:len(free)-1]
			} else {
				m.slotOf[vi] = m.nslots
				m.nslots++
			}
		}
		for _, vi := range st.out {
			if last[vi] < s { // never read
				free = append(free, m.slotOf[vi])
				last[vi] = s
			}
		}
		for _, vi := range st.in {
			if vi >= 0 && last[vi] == s && m.slotOf[vi] >= 0 {
				free = append(free, m.slotOf[vi])
				last[vi] = -2 // freed once even if read twice by this node
			}
		}
	}
}

// newState allocates an execution state.
func (m *Model) newState() *state {
	s := &state{
		vals:    make([]*Value, len(m.consts)),
		slots:   make([]Value, m.nslots),
		inputs:  make([]Value, len(m.inputs)),
		ins:     make([][]*Value, len(m.steps)),
		outs:    make([][]*Value, len(m.steps)),
		scratch: make([]Scratch, len(m.steps)),
	}
	for i, c := range m.consts {
		switch {
		case c != nil:
			s.vals[i] = c
		case m.slotOf[i] >= 0:
			s.vals[i] = &s.slots[m.slotOf[i]]
		}
	}
	for k, vi := range m.inputs {
		s.vals[vi] = &s.inputs[k]
	}
	for si, st := range m.steps {
		s.ins[si] = make([]*Value, len(st.in))
		for k, vi := range st.in {
			s.ins[si][k] = &absent
			if vi >= 0 {
				s.ins[si][k] = s.vals[vi]
			}
		}
		s.outs[si] = make([]*Value, len(st.out))
		for k, vi := range st.out {
			s.outs[si][k] = s.vals[vi]
		}
	}
	return s
}

// run executes the plan on s with the graph inputs already bound.
func (m *Model) run(ctx context.Context, s *state) error {
	for si := range m.steps {
		if si&15 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		st := &m.steps[si]
		s.scratch[si].ctx = ctx
		if err := st.kernel(&s.scratch[si], s.ins[si], s.outs[si]); err != nil {
			return fmt.Errorf("node %s: %w", st.name, err)
		}
	}
	return nil
}

// Run runs the model on inputs, given in the order of the graph inputs
// (InputNames), and returns the outputs in graph order as Values the
// caller owns. It is safe for concurrent use.
func (m *Model) Run(ctx context.Context, inputs []*Value) ([]*Value, error) {
	if len(inputs) != len(m.inputs) {
		return nil, fmt.Errorf("%w: %d inputs, want %d", ErrInvalidInput, len(inputs), len(m.inputs))
	}
	s := m.pool.Get().(*state)
	defer m.pool.Put(s)
	for k, v := range inputs {
		s.inputs[k] = Value{Kind: v.Kind, Tensor: v.Tensor, Keys: v.Keys, Seq: v.Seq}
	}
	defer clear(s.inputs) // do not keep the caller's data alive
	if err := m.run(ctx, s); err != nil {
		return nil, err
	}
	outs := make([]*Value, len(m.outputs))
	for k, vi := range m.outputs {
		outs[k] = new(Value)
		if err := outs[k].CopyFrom(s.vals[vi]); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// InputNames returns the names of the graph inputs (initializers excluded),
// in the order Run takes them.
func (m *Model) InputNames() []string { return m.inNames }

// OutputNames returns the names of the graph outputs, in the order Run
// returns them.
func (m *Model) OutputNames() []string { return m.outNames }

var _ backend.Model = (*Model)(nil)

// checkTensorType is used by servable for the signature.
func tensorSpec(name string, tp *onnxpb.TypeProto) (backend.TensorSpec, bool) {
	tt := tp.GetTensorType()
	if tt == nil {
		return backend.TensorSpec{Name: name}, false
	}
	dt, err := dtypeOf(tt.GetElemType())
	if err != nil {
		return backend.TensorSpec{Name: name}, false
	}
	spec := backend.TensorSpec{Name: name, DType: dt}
	if sh := tt.GetShape(); sh != nil {
		spec.Shape = make([]int64, len(sh.GetDim()))
		for i, d := range sh.GetDim() {
			spec.Shape[i] = -1
			if dv, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok && dv.DimValue >= 0 {
				spec.Shape[i] = dv.DimValue
			}
		}
	}
	return spec, true
}
