package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// controlOps are the control-flow operators, which run subgraphs (see
// subgraph.go): If, Loop and Scan.
func controlOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "If", Since: 1, New: newIf},
		{Domain: DomainONNX, Type: "Loop", Since: 1, New: newLoop},
		{Domain: DomainONNX, Type: "Scan", Since: 8, Until: 8, New: newScan8},
		{Domain: DomainONNX, Type: "Scan", Since: 9, New: newScan},
	}
}

// newIf runs then_branch or else_branch, two graphs without inputs whose
// outputs become the node's.
func newIf(n *Node) (Kernel, error) {
	thenG, err := n.Subgraph("then_branch")
	if err != nil {
		return nil, err
	}
	elseG, err := n.Subgraph("else_branch")
	if err != nil {
		return nil, err
	}
	for _, sg := range []*Subgraph{thenG, elseG} {
		if sg.NumInputs() != 0 {
			return nil, fmt.Errorf("%w: If: a branch has %d inputs, want none", ErrInvalidModel, sg.NumInputs())
		}
		if sg.NumOutputs() != n.NumOutputs {
			return nil, fmt.Errorf("%w: If: a branch has %d outputs, the node %d", ErrInvalidModel, sg.NumOutputs(), n.NumOutputs)
		}
	}
	declared := n.NumInputs
	return func(tmp *Scratch, in, out []*Value) error {
		c := in[0]
		if err := checkType("If cond", c, tensor.Bool); err != nil {
			return err
		}
		if c.Len() != 1 {
			return badInput("If: cond has shape %v, want one element", c.Tensor.Shape)
		}
		ss := subStates(tmp, thenG, elseG)
		branch := ss[1]
		if c.Bools()[0] {
			branch = ss[0]
		}
		defer branch.release()
		if err := branch.run(tmp.Context(), in[declared:]); err != nil {
			return fmt.Errorf("branch of If: %w", err)
		}
		for k := range out {
			if err := out[k].CopyFrom(branch.output(k)); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// loopState is a Loop kernel's memory in one execution state.
type loopState struct {
	body      *subState
	iter      Value      // the iteration number fed to the body
	cond      Value      // the condition fed to the body
	carry     [2][]Value // loop-carried values, double-buffered
	scans     [][]*Value // per scan output, one element per iteration
	scanBytes int64
}

// newLoop runs body while the trip count and the condition allow, carrying
// N values from one iteration to the next and stacking K scan outputs.
// Inputs: M (optional INT64 trip count), cond (optional BOOL), then the N
// initial values; body: (iteration, cond, N values) -> (cond, N values, K
// scan elements); outputs: the N final values, then the K stacked scans.
func newLoop(n *Node) (Kernel, error) {
	body, err := n.Subgraph("body")
	if err != nil {
		return nil, err
	}
	nCarried := n.NumInputs - 2
	if nCarried < 0 {
		return nil, fmt.Errorf("%w: Loop has %d inputs, want at least 2 (M, cond)", ErrInvalidModel, n.NumInputs)
	}
	if body.NumInputs() != nCarried+2 {
		return nil, fmt.Errorf("%w: Loop body has %d inputs, want %d (iteration, cond and %d carried values)", ErrInvalidModel, body.NumInputs(), nCarried+2, nCarried)
	}
	nScan := body.NumOutputs() - 1 - nCarried
	if nScan < 0 || n.NumOutputs != nCarried+nScan {
		return nil, fmt.Errorf("%w: Loop body has %d outputs and the node %d, for %d carried values", ErrInvalidModel, body.NumOutputs(), n.NumOutputs, nCarried)
	}
	scanTypes := make([]tensor.DType, nScan)
	for k := range scanTypes {
		scanTypes[k] = declaredDType(body, 1+nCarried+k)
	}
	hasM := n.NumInputs > 0 && n.InputPresent[0]
	hasCond := n.NumInputs > 1 && n.InputPresent[1]
	declared, limit := n.NumInputs, n.MaxBytes
	return func(tmp *Scratch, in, out []*Value) error {
		ls, _ := tmp.Any.(*loopState)
		if ls == nil {
			ls = &loopState{body: body.newState(), scans: make([][]*Value, nScan)}
			ls.carry[0] = make([]Value, nCarried)
			ls.carry[1] = make([]Value, nCarried)
			tmp.Any = ls
		}
		defer ls.body.release()
		trip := int64(-1)
		if hasM {
			m := in[0]
			if err := checkType("Loop M", m, tensor.Int64); err != nil {
				return err
			}
			if m.Len() != 1 {
				return badInput("Loop: M has shape %v, want one element", m.Tensor.Shape)
			}
			trip = m.Int64s()[0]
		}
		cond := true
		if hasCond {
			c := in[1]
			if err := checkType("Loop cond", c, tensor.Bool); err != nil {
				return err
			}
			if c.Len() != 1 {
				return badInput("Loop: cond has shape %v, want one element", c.Tensor.Shape)
			}
			cond = c.Bools()[0]
		}
		cur := 0
		for k := range nCarried {
			if err := ls.carry[0][k].CopyFrom(Arg(in, 2+k)); err != nil {
				return err
			}
		}
		ls.scanBytes = 0
		ctx := tmp.Context()
		captured := in[min(declared, len(in)):]
		var i int64
		for ; (trip < 0 || i < trip) && cond; i++ {
			if err := ls.iter.Resize(tensor.Int64, nil); err != nil {
				return err
			}
			ls.iter.Int64s()[0] = i
			if err := ls.cond.Resize(tensor.Bool, nil); err != nil {
				return err
			}
			ls.cond.Bools()[0] = cond
			ls.body.setInput(0, &ls.iter)
			ls.body.setInput(1, &ls.cond)
			for k := range nCarried {
				ls.body.setInput(2+k, &ls.carry[cur][k])
			}
			if err := ls.body.run(ctx, captured); err != nil {
				return fmt.Errorf("iteration %d of Loop: %w", i, err)
			}
			if hasCond {
				c := ls.body.output(0)
				if err := checkType("Loop body cond", c, tensor.Bool); err != nil {
					return err
				}
				if c.Len() != 1 {
					return badInput("Loop: the body's cond has shape %v, want one element", c.Tensor.Shape)
				}
				cond = c.Bools()[0]
			}
			next := 1 - cur
			var carried int64
			for k := range nCarried {
				if err := ls.carry[next][k].CopyFrom(ls.body.output(1 + k)); err != nil {
					return err
				}
				carried += valueBytes(&ls.carry[next][k])
			}
			cur = next
			for k := range nScan {
				e, err := scanElement(ls.scans, k, int(i))
				if err != nil {
					return err
				}
				if err := e.CopyFrom(ls.body.output(1 + nCarried + k)); err != nil {
					return err
				}
				if e.Kind != KindTensor {
					return badInput("Loop: scan output %d is a %v, want a tensor", k, e)
				}
				ls.scanBytes += valueBytes(e)
			}
			if limit > 0 && ls.scanBytes+carried > limit {
				return badInput("Loop: after %d iterations the loop's values take more than the memory limit of %d bytes", i+1, limit)
			}
		}
		for k := range nCarried {
			if err := out[k].CopyFrom(&ls.carry[cur][k]); err != nil {
				return err
			}
		}
		for k := range nScan {
			if err := stackScan(tmp, out[nCarried+k], ls.scans[k][:i], scanTypes[k], 0, false); err != nil {
				return fmt.Errorf("scan output %d of Loop: %w", k, err)
			}
		}
		return nil
	}, nil
}

// declaredDType returns the element type declared for output k of sg, or
// FP32 when it declares none (the type of an empty stack).
func declaredDType(sg *Subgraph, k int) tensor.DType {
	if tp := sg.m.outTypes[k]; tp.GetTensorType() != nil {
		if dt, err := dtypeOf(tp.GetTensorType().GetElemType()); err == nil {
			return dt
		}
	}
	return tensor.FP32
}

// scanElement returns the Value for element i of scan output k, reusing
// those of earlier runs.
func scanElement(scans [][]*Value, k, i int) (*Value, error) {
	for len(scans[k]) <= i {
		scans[k] = append(scans[k], new(Value))
	}
	return scans[k][i], nil
}

// stackScan stacks elems (tensors of one type and shape) into out along a
// new axis (0 <= axis <= rank of an element), in reverse order when
// reverse. With no elements, out is an empty 1-D tensor of type dt.
func stackScan(tmp *Scratch, out *Value, elems []*Value, dt tensor.DType, axis int, reverse bool) error {
	if len(elems) == 0 {
		return out.Resize(dt, []int64{0})
	}
	first := elems[0]
	shape := first.Tensor.Shape
	if axis < 0 || axis > len(shape) {
		return badInput("scan output axis %d out of range for rank %d", axis, len(shape))
	}
	for t, e := range elems {
		if e.Kind != KindTensor || e.Tensor.DType != first.Tensor.DType || !equalShape(e.Tensor.Shape, shape) {
			return badInput("iteration %d gives %v, iteration 0 gave %v", t, e, first)
		}
	}
	L := len(elems)
	os := tmp.Shape(len(shape) + 1)
	copy(os, shape[:axis])
	os[axis] = int64(L)
	copy(os[axis+1:], shape[axis:])
	if err := out.Resize(first.Tensor.DType, os); err != nil {
		return err
	}
	outer, inner := prod(shape[:axis]), prod(shape[axis:])
	for t, e := range elems {
		p := t
		if reverse {
			p = L - 1 - t
		}
		for o := range outer {
			copyBlock(out.Tensor.Data, (o*L+p)*inner, e.Tensor.Data, o*inner, inner)
		}
	}
	return nil
}

// sliceAxis makes dst the slice of src at index p of axis (which it
// removes from the shape), building the shape in tmp.
func sliceAxis(tmp *Scratch, dst, src *Value, axis, p int) error {
	shape := src.Tensor.Shape
	L := int(shape[axis])
	ds := tmp.Shape(len(shape) - 1)
	copy(ds, shape[:axis])
	copy(ds[axis:], shape[axis+1:])
	if err := dst.Resize(src.Tensor.DType, ds); err != nil {
		return err
	}
	outer, inner := prod(shape[:axis]), prod(shape[axis+1:])
	for o := range outer {
		copyBlock(dst.Tensor.Data, o*inner, src.Tensor.Data, (o*L+p)*inner, inner)
	}
	return nil
}

// copyBlock copies n elements from src[soff:] to dst[doff:], two slices of
// the same type.
func copyBlock(dst any, doff int, src any, soff, n int) {
	switch d := dst.(type) {
	case []float32:
		copy(d[doff:doff+n], src.([]float32)[soff:soff+n])
	case []float64:
		copy(d[doff:doff+n], src.([]float64)[soff:soff+n])
	case []int64:
		copy(d[doff:doff+n], src.([]int64)[soff:soff+n])
	case []int32:
		copy(d[doff:doff+n], src.([]int32)[soff:soff+n])
	case []bool:
		copy(d[doff:doff+n], src.([]bool)[soff:soff+n])
	case []uint8:
		copy(d[doff:doff+n], src.([]uint8)[soff:soff+n])
	case []uint16:
		copy(d[doff:doff+n], src.([]uint16)[soff:soff+n])
	case []uint32:
		copy(d[doff:doff+n], src.([]uint32)[soff:soff+n])
	case []uint64:
		copy(d[doff:doff+n], src.([]uint64)[soff:soff+n])
	case []int8:
		copy(d[doff:doff+n], src.([]int8)[soff:soff+n])
	case []int16:
		copy(d[doff:doff+n], src.([]int16)[soff:soff+n])
	case [][]byte:
		copy(d[doff:doff+n], src.([][]byte)[soff:soff+n])
	default:
		panic(fmt.Sprintf("onnx: copyBlock of %T", dst))
	}
}

// scanState is a Scan kernel's memory in one execution state.
type scanState struct {
	body   *subState
	state  [2][]Value // state variables, double-buffered
	slices []Value    // the current slice of each scan input
	scans  [][]*Value // per scan output, one element per iteration
	batch  []Value    // Scan 8: one batch entry's inputs
	bout   []Value    // Scan 8: one batch entry's outputs
	batchP []*Value   // pointers to batch
	boutP  []*Value   // pointers to bout
	bouts  [][]*Value // Scan 8: per output, one entry per batch entry
}

// scanSpec is Scan's attributes, checked against the body.
type scanSpec struct {
	nState, nIn, nOut int
	inAxes, outAxes   []int64
	inRev, outRev     []bool
	outTypes          []tensor.DType
	limit             int64
}

// newScan (opset 9+) iterates body over slices of M scan inputs along
// their scan_input_axes, carrying N state variables, and stacks K scan
// outputs along scan_output_axes. Inputs: N initial states, M scan inputs;
// body: (N states, M slices) -> (N states, K elements); outputs: N final
// states, K stacked outputs.
func newScan(n *Node) (Kernel, error) {
	body, sp, err := scanSetup(n, n.NumInputs, "scan_input_directions")
	if err != nil {
		return nil, err
	}
	declared := n.NumInputs
	return func(tmp *Scratch, in, out []*Value) error {
		ss := newScanState(tmp, body, sp)
		defer ss.body.release()
		return sp.run(tmp, ss, in[:declared], in[declared:], out)
	}, nil
}

// scanSetup reads Scan's attributes for a node whose state and scan inputs
// number nInputs.
func scanSetup(n *Node, nInputs int, dirAttr string) (*Subgraph, *scanSpec, error) {
	body, err := n.Subgraph("body")
	if err != nil {
		return nil, nil, err
	}
	nIn := int(n.Attrs.Int("num_scan_inputs", -1))
	inAxes := n.Attrs.Ints("scan_input_axes")
	outAxes := n.Attrs.Ints("scan_output_axes")
	inDirs := n.Attrs.Ints(dirAttr)
	outDirs := n.Attrs.Ints("scan_output_directions")
	if err := n.Attrs.Err(); err != nil {
		return nil, nil, err
	}
	if nIn < 1 || nIn > nInputs {
		return nil, nil, fmt.Errorf("%w: Scan num_scan_inputs %d, with %d inputs", ErrAttr, nIn, nInputs)
	}
	sp := &scanSpec{nState: nInputs - nIn, nIn: nIn, limit: n.MaxBytes}
	sp.nOut = body.NumOutputs() - sp.nState
	if body.NumInputs() != nInputs || sp.nOut < 0 || n.NumOutputs != body.NumOutputs() {
		return nil, nil, fmt.Errorf("%w: Scan body has %d inputs and %d outputs, the node %d inputs and %d outputs",
			ErrInvalidModel, body.NumInputs(), body.NumOutputs(), nInputs, n.NumOutputs)
	}
	axes := func(v []int64, count int, what string) ([]int64, error) {
		if v == nil {
			return make([]int64, count), nil
		}
		if len(v) != count {
			return nil, fmt.Errorf("%w: Scan %s has %d entries, want %d", ErrAttr, what, len(v), count)
		}
		return v, nil
	}
	dirs := func(v []int64, count int, what string) ([]bool, error) {
		r := make([]bool, count)
		if v == nil {
			return r, nil
		}
		if len(v) != count {
			return nil, fmt.Errorf("%w: Scan %s has %d entries, want %d", ErrAttr, what, len(v), count)
		}
		for i, d := range v {
			if d != 0 && d != 1 {
				return nil, fmt.Errorf("%w: Scan %s[%d] = %d, want 0 or 1", ErrAttr, what, i, d)
			}
			r[i] = d == 1
		}
		return r, nil
	}
	if sp.inAxes, err = axes(inAxes, sp.nIn, "scan_input_axes"); err != nil {
		return nil, nil, err
	}
	if sp.outAxes, err = axes(outAxes, sp.nOut, "scan_output_axes"); err != nil {
		return nil, nil, err
	}
	if sp.inRev, err = dirs(inDirs, sp.nIn, dirAttr); err != nil {
		return nil, nil, err
	}
	if sp.outRev, err = dirs(outDirs, sp.nOut, "scan_output_directions"); err != nil {
		return nil, nil, err
	}
	sp.outTypes = make([]tensor.DType, sp.nOut)
	for k := range sp.outTypes {
		sp.outTypes[k] = declaredDType(body, sp.nState+k)
	}
	return body, sp, nil
}

func newScanState(tmp *Scratch, body *Subgraph, sp *scanSpec) *scanState {
	ss, _ := tmp.Any.(*scanState)
	if ss == nil {
		ss = &scanState{body: body.newState(), slices: make([]Value, sp.nIn), scans: make([][]*Value, sp.nOut)}
		ss.state[0] = make([]Value, sp.nState)
		ss.state[1] = make([]Value, sp.nState)
		tmp.Any = ss
	}
	return ss
}

// run runs one scan: in holds the N initial states and M scan inputs,
// out receives the N final states and K stacked outputs.
func (sp *scanSpec) run(tmp *Scratch, ss *scanState, in, captured, out []*Value) error {
	L := -1
	for j := range sp.nIn {
		x := Arg(in, sp.nState+j)
		if x.Kind != KindTensor {
			return badInput("Scan: scan input %d is a %v, want a tensor", j, x)
		}
		a, err := axisIndex(sp.inAxes[j], len(x.Tensor.Shape))
		if err != nil || len(x.Tensor.Shape) == 0 {
			return badInput("Scan: scan input %d of shape %v has no axis %d", j, x.Tensor.Shape, sp.inAxes[j])
		}
		if l := int(x.Tensor.Shape[a]); L < 0 {
			L = l
		} else if l != L {
			return badInput("Scan: scan inputs have %d and %d elements along their scan axes", L, l)
		}
	}
	cur := 0
	for k := range sp.nState {
		if err := ss.state[0][k].CopyFrom(Arg(in, k)); err != nil {
			return err
		}
	}
	ctx := tmp.Context()
	var bytes int64
	for t := range L {
		for k := range sp.nState {
			ss.body.setInput(k, &ss.state[cur][k])
		}
		for j := range sp.nIn {
			x := in[sp.nState+j]
			a, _ := axisIndex(sp.inAxes[j], len(x.Tensor.Shape))
			p := t
			if sp.inRev[j] {
				p = L - 1 - t
			}
			if err := sliceAxis(tmp, &ss.slices[j], x, a, p); err != nil {
				return err
			}
			ss.body.setInput(sp.nState+j, &ss.slices[j])
		}
		if err := ss.body.run(ctx, captured); err != nil {
			return fmt.Errorf("iteration %d of Scan: %w", t, err)
		}
		next := 1 - cur
		for k := range sp.nState {
			if err := ss.state[next][k].CopyFrom(ss.body.output(k)); err != nil {
				return err
			}
		}
		cur = next
		for k := range sp.nOut {
			e, err := scanElement(ss.scans, k, t)
			if err != nil {
				return err
			}
			if err := e.CopyFrom(ss.body.output(sp.nState + k)); err != nil {
				return err
			}
			if e.Kind != KindTensor {
				return badInput("Scan: scan output %d is a %v, want a tensor", k, e)
			}
			bytes += valueBytes(e)
		}
		if sp.limit > 0 && bytes > sp.limit {
			return badInput("Scan: after %d iterations the scan outputs take more than the memory limit of %d bytes", t+1, sp.limit)
		}
	}
	for k := range sp.nState {
		if err := out[k].CopyFrom(&ss.state[cur][k]); err != nil {
			return err
		}
	}
	for k := range sp.nOut {
		elems := ss.scans[k][:max(L, 0)]
		axis := int(sp.outAxes[k])
		if axis < 0 && len(elems) > 0 {
			axis += len(elems[0].Tensor.Shape) + 1
		}
		if err := stackScan(tmp, out[sp.nState+k], elems, sp.outTypes[k], axis, sp.outRev[k]); err != nil {
			return fmt.Errorf("output %d of Scan: %w", k, err)
		}
	}
	return nil
}

// newScan8 is Scan of opset 8, where every input and output has a batch
// axis first and scan inputs their sequence axis second: the opset 9 scan
// runs once per batch entry. Inputs: sequence_lens (optional; shoal
// supports only full lengths), N initial states, M scan inputs.
func newScan8(n *Node) (Kernel, error) {
	if n.NumInputs < 2 {
		return nil, fmt.Errorf("%w: Scan has %d inputs", ErrInvalidModel, n.NumInputs)
	}
	body, sp, err := scanSetup(n, n.NumInputs-1, "directions")
	if err != nil {
		return nil, err
	}
	declared := n.NumInputs
	nAll := sp.nState + sp.nIn
	return func(tmp *Scratch, in, out []*Value) error {
		ss := newScanState(tmp, body, sp)
		defer ss.body.release()
		if ss.batchP == nil {
			ss.batch, ss.bout = make([]Value, nAll), make([]Value, len(out))
			ss.batchP, ss.boutP = make([]*Value, nAll), make([]*Value, len(out))
			for i := range ss.batch {
				ss.batchP[i] = &ss.batch[i]
			}
			for i := range ss.bout {
				ss.boutP[i] = &ss.bout[i]
			}
			ss.bouts = make([][]*Value, len(out))
		}
		rest := in[1:declared]
		B := -1
		for i := range nAll {
			x := Arg(rest, i)
			if x.Kind != KindTensor || len(x.Tensor.Shape) < 1 || (i >= sp.nState && len(x.Tensor.Shape) < 2) {
				return badInput("Scan: input %d is %v, want a tensor with a batch axis (and a sequence axis for scan inputs)", i+1, x)
			}
			if b := int(x.Tensor.Shape[0]); B < 0 {
				B = b
			} else if b != B {
				return badInput("Scan: inputs have batch sizes %d and %d", B, b)
			}
		}
		if sl := in[0]; sl.Kind == KindTensor {
			if err := checkType("Scan sequence_lens", sl, tensor.Int64); err != nil {
				return err
			}
			L := rest[sp.nState].Tensor.Shape[1]
			for _, l := range sl.Int64s() {
				if l != L {
					return fmt.Errorf("%w: Scan with sequence_lens shorter than the sequence axis", ErrUnsupported)
				}
			}
		}
		for b := range B {
			for i := range nAll {
				if err := sliceAxis(tmp, &ss.batch[i], rest[i], 0, b); err != nil {
					return err
				}
			}
			if err := sp.run(tmp, ss, ss.batchP, in[declared:], ss.boutP); err != nil {
				return err
			}
			for k := range out {
				e, _ := scanElement(ss.bouts, k, b)
				if err := e.CopyFrom(&ss.bout[k]); err != nil {
					return err
				}
			}
		}
		for k := range out {
			if err := stackScan(tmp, out[k], ss.bouts[k][:max(B, 0)], tensor.FP32, 0, false); err != nil {
				return fmt.Errorf("output %d of Scan: %w", k, err)
			}
		}
		return nil
	}, nil
}
