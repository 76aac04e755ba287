package onnx

import (
	"context"
	"fmt"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// Subgraphs.
//
// If, Loop, Scan and SequenceMap carry graphs as attributes. A subgraph may
// read values of the graphs around it by name (outer scope) without
// declaring them. The loader finds those names (nodeCaptures), adds them to
// the node's inputs after its declared ones (so that the topological order
// and the buffer lifetimes of the enclosing graph account for them), and
// lets the operator plan each subgraph with Node.Subgraph: the subgraph is
// planned like a model, with its formal inputs first and the captured
// values after them (captured constants stay constants, so the subgraph's
// own constant nodes fold at load time).
//
// At run time a kernel keeps one execution state of each subgraph in its
// Scratch (one per execution state of the enclosing graph), binds the
// formal inputs and captures without copying, runs it with the context of
// the enclosing run and reads its outputs, which stay valid until the next
// run of that state.

// graphEnv is what planning a subgraph needs from the model around it.
type graphEnv struct {
	opsets map[string]int64
	ops    *OpSet
	r      *tensorReader
	limit  int64 // the model's memory limit for run-time growth (Node.MaxBytes)
}

// outerScope is the outer-scope values a subgraph reads: their names and,
// for those constant outside, their values.
type outerScope struct {
	names  []string
	consts []*Value
}

// bindSubgraphs gives nd the names its subgraphs capture, the memory limit
// and the means to plan its subgraph attributes.
func (env *graphEnv) bindSubgraphs(nd *Node, captures []string) {
	nd.MaxBytes = env.limit
	nd.Captures = captures
	if len(captures) == 0 && !hasGraphAttr(nd.Attrs) {
		return
	}
	nd.sub = func(g *onnxpb.GraphProto) (*Model, error) {
		return planGraph(g, env, &outerScope{names: captures, consts: nd.Const[nd.NumInputs:]})
	}
}

func hasGraphAttr(a *Attrs) bool {
	for _, p := range a.m {
		if p.GetG() != nil || len(p.GetGraphs()) > 0 {
			return true
		}
	}
	return false
}

// addOuter defines the captured names of outer in m: a constant outside
// stays a constant, any other becomes an input after the formal ones.
func (m *Model) addOuter(outer *outerScope, addValue func(string) (int, error)) error {
	if outer == nil {
		return nil
	}
	for k, name := range outer.names {
		i, err := addValue(name)
		if err != nil {
			return fmt.Errorf("outer-scope value %q: %w", name, err)
		}
		if c := outer.consts[k]; c != nil {
			m.consts[i] = c
			continue
		}
		m.inputs = append(m.inputs, i)
		m.inNames = append(m.inNames, name)
		m.inTypes = append(m.inTypes, nil)
	}
	return nil
}

// nodeCaptures returns the outer-scope names that the graph attributes of n
// read (recursively through nested subgraphs), each once, in order of
// first use; nil when n has no graph attribute.
func nodeCaptures(n *onnxpb.NodeProto) []string {
	var names []string
	seen := map[string]bool{}
	for _, a := range n.GetAttribute() {
		if g := a.GetG(); g != nil {
			freeNames(g, &names, seen)
		}
		for _, g := range a.GetGraphs() {
			freeNames(g, &names, seen)
		}
	}
	return names
}

// freeNames appends to names the values g reads but does not define.
func freeNames(g *onnxpb.GraphProto, names *[]string, seen map[string]bool) {
	local := map[string]bool{}
	for _, t := range g.GetInitializer() {
		local[t.GetName()] = true
	}
	for _, vi := range g.GetInput() {
		local[vi.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			local[o] = true
		}
	}
	use := func(name string) {
		if name != "" && !local[name] && !seen[name] {
			seen[name] = true
			*names = append(*names, name)
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			use(in)
		}
		var inner []string
		innerSeen := map[string]bool{}
		for _, a := range n.GetAttribute() {
			if sg := a.GetG(); sg != nil {
				freeNames(sg, &inner, innerSeen)
			}
			for _, sg := range a.GetGraphs() {
				freeNames(sg, &inner, innerSeen)
			}
		}
		for _, name := range inner {
			use(name)
		}
	}
	for _, vi := range g.GetOutput() {
		use(vi.GetName())
	}
}

// Graph returns a GRAPH attribute, or nil.
func (a *Attrs) Graph(name string) *onnxpb.GraphProto {
	if p := a.get(name, onnxpb.AttributeProto_GRAPH); p != nil {
		return p.GetG()
	}
	return nil
}

// Subgraph is a planned graph attribute of a node. It is immutable and safe
// for concurrent use; each execution state of the enclosing graph runs it
// on its own subState.
type Subgraph struct {
	m       *Model
	nformal int
	// bind[j] is, for input nformal+j of m, the index in the node's
	// Captures of the outer value it receives.
	bind []int
}

// Subgraph plans the GRAPH attribute attr of n (which must be present) with
// n's captures as its outer scope. It returns an error wrapping ErrAttr
// when the attribute is missing, and the planning errors of the subgraph.
func (n *Node) Subgraph(attr string) (*Subgraph, error) {
	g := n.Attrs.Graph(attr)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if g == nil {
		return nil, fmt.Errorf("%w: %s needs the graph attribute %q", ErrAttr, n.OpType, attr)
	}
	if n.sub == nil {
		return nil, fmt.Errorf("%w: %s: subgraphs are planned only by the loader", ErrUnsupported, n.OpType)
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, vi := range g.GetInput() {
		if inits[vi.GetName()] {
			return nil, fmt.Errorf("%w: subgraph %q: input %q is also an initializer", ErrInvalidModel, attr, vi.GetName())
		}
	}
	m, err := n.sub(g)
	if err != nil {
		return nil, fmt.Errorf("subgraph %q: %w", attr, err)
	}
	sg := &Subgraph{m: m, nformal: len(g.GetInput())}
	for _, name := range m.inNames[sg.nformal:] {
		j := -1
		for k, c := range n.Captures {
			if c == name {
				j = k
				break
			}
		}
		if j < 0 {
			return nil, fmt.Errorf("%w: subgraph %q reads %q, which the node does not capture", ErrInvalidModel, attr, name)
		}
		sg.bind = append(sg.bind, j)
	}
	return sg, nil
}

// NumInputs is the number of formal inputs of the subgraph.
func (sg *Subgraph) NumInputs() int { return sg.nformal }

// NumOutputs is the number of outputs of the subgraph.
func (sg *Subgraph) NumOutputs() int { return len(sg.m.outputs) }

// subState is one execution state of a subgraph.
type subState struct {
	sg *Subgraph
	s  *state
}

// newState returns a fresh execution state of sg.
func (sg *Subgraph) newState() *subState {
	return &subState{sg: sg, s: sg.m.newState()}
}

// setInput binds formal input k to v without copying (v must stay
// unchanged until the run that reads it is over).
func (ss *subState) setInput(k int, v *Value) {
	ss.s.inputs[k] = Value{Kind: v.Kind, Tensor: v.Tensor, Keys: v.Keys, Seq: v.Seq}
}

// run binds the captured values (the node's inputs after its declared
// ones) and runs the subgraph.
func (ss *subState) run(ctx context.Context, captured []*Value) error {
	for j, c := range ss.sg.bind {
		ss.setInput(ss.sg.nformal+j, Arg(captured, c))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return ss.sg.m.run(ctx, ss.s)
}

// output returns output k of the last run; it stays valid until the next
// run of ss.
func (ss *subState) output(k int) *Value {
	return ss.s.vals[ss.sg.m.outputs[k]]
}

// release drops the references to input data held by ss.
func (ss *subState) release() {
	clear(ss.s.inputs)
}

// subStates returns the per-state subgraph states kept in tmp.Any for the
// subgraphs sgs (created at the first run).
func subStates(tmp *Scratch, sgs ...*Subgraph) []*subState {
	if ss, ok := tmp.Any.([]*subState); ok {
		return ss
	}
	ss := make([]*subState, len(sgs))
	for i, sg := range sgs {
		ss[i] = sg.newState()
	}
	tmp.Any = ss
	return ss
}
