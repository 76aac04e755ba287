package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// seqOps are the sequence and optional operators. A sequence is a Value of
// KindSequence; an optional is represented by what it holds: its element
// (a tensor or a sequence) or, when empty, a Value of KindNone, the same as
// an absent input.
func seqOps() []Op {
	return []Op{
		{Domain: DomainONNX, Type: "SequenceEmpty", Since: 11, New: newSequenceEmpty},
		{Domain: DomainONNX, Type: "SequenceConstruct", Since: 11, New: newSequenceConstruct},
		{Domain: DomainONNX, Type: "SequenceAt", Since: 11, New: newSequenceAt},
		{Domain: DomainONNX, Type: "SequenceInsert", Since: 11, New: newSequenceInsert},
		{Domain: DomainONNX, Type: "SequenceErase", Since: 11, New: newSequenceErase},
		{Domain: DomainONNX, Type: "SequenceLength", Since: 11, New: newSequenceLength},
		{Domain: DomainONNX, Type: "SplitToSequence", Since: 11, New: newSplitToSequence},
		{Domain: DomainONNX, Type: "ConcatFromSequence", Since: 11, New: newConcatFromSequence},
		{Domain: DomainONNX, Type: "SequenceMap", Since: 17, New: newSequenceMap},
		{Domain: DomainONNX, Type: "Optional", Since: 15, New: newOptional},
		{Domain: DomainONNX, Type: "OptionalHasElement", Since: 15, New: newOptionalHasElement},
		{Domain: DomainONNX, Type: "OptionalGetElement", Since: 15, New: newOptionalGetElement},
	}
}

// checkSeq returns an error unless v is a sequence.
func checkSeq(what string, v *Value) error {
	if v.Kind != KindSequence {
		return badInput("%s: want a sequence, got %v", what, v)
	}
	return nil
}

// seqPosition reads a sequence position (a scalar INT32 or INT64) for a
// sequence of n elements: valid in [-n, n-1], or [-n, n] when end is
// allowed; negative positions count from the back.
func seqPosition(what string, v *Value, n int, end bool) (int, error) {
	if err := checkType(what, v, tensor.Int32, tensor.Int64); err != nil {
		return 0, err
	}
	if v.Len() != 1 {
		return 0, badInput("%s: shape %v, want a scalar", what, v.Tensor.Shape)
	}
	var p int64
	if v.Tensor.DType == tensor.Int32 {
		p = int64(v.Int32s()[0])
	} else {
		p = v.Int64s()[0]
	}
	hi := int64(n) - 1
	if end {
		hi++
	}
	if p < -int64(n) || p > hi {
		return 0, badInput("%s %d out of range for a sequence of %d", what, p, n)
	}
	if p < 0 {
		p += int64(n)
	}
	return int(p), nil
}

func newSequenceEmpty(n *Node) (Kernel, error) {
	dt := n.Attrs.Int("dtype", onnxFloat)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if _, err := dtypeOf(int32(dt)); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		out[0].ResizeSeq(0)
		return nil
	}, nil
}

func newSequenceConstruct(n *Node) (Kernel, error) {
	if n.NumInputs < 1 {
		return nil, fmt.Errorf("%w: SequenceConstruct needs at least one input", ErrInvalidModel)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		for i, v := range in {
			if v.Kind != KindTensor {
				return badInput("SequenceConstruct: input %d is a %v, want a tensor", i, v)
			}
			if v.Tensor.DType != in[0].Tensor.DType {
				return badInput("SequenceConstruct: inputs of types %v and %v", in[0].Tensor.DType, v.Tensor.DType)
			}
		}
		out[0].ResizeSeq(len(in))
		for i, v := range in {
			if err := out[0].Seq[i].CopyFrom(v); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func newSequenceAt(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		s := in[0]
		if err := checkSeq("SequenceAt", s); err != nil {
			return err
		}
		p, err := seqPosition("SequenceAt position", Arg(in, 1), len(s.Seq), false)
		if err != nil {
			return err
		}
		return out[0].CopyFrom(s.Seq[p])
	}, nil
}

func newSequenceInsert(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		s, t := in[0], Arg(in, 1)
		if err := checkSeq("SequenceInsert", s); err != nil {
			return err
		}
		if t.Kind != KindTensor {
			return badInput("SequenceInsert: the inserted value is a %v, want a tensor", t)
		}
		if len(s.Seq) > 0 && s.Seq[0].Kind == KindTensor && s.Seq[0].Tensor.DType != t.Tensor.DType {
			return badInput("SequenceInsert: a %v into a sequence of %v", t.Tensor.DType, s.Seq[0].Tensor.DType)
		}
		p := len(s.Seq)
		if pos := Arg(in, 2); pos.Kind != KindNone {
			var err error
			if p, err = seqPosition("SequenceInsert position", pos, len(s.Seq), true); err != nil {
				return err
			}
		}
		out[0].ResizeSeq(len(s.Seq) + 1)
		for i, e := range out[0].Seq {
			var err error
			switch {
			case i < p:
				err = e.CopyFrom(s.Seq[i])
			case i == p:
				err = e.CopyFrom(t)
			default:
				err = e.CopyFrom(s.Seq[i-1])
			}
			if err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func newSequenceErase(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		s := in[0]
		if err := checkSeq("SequenceErase", s); err != nil {
			return err
		}
		if len(s.Seq) == 0 {
			return badInput("SequenceErase: the sequence is empty")
		}
		p := len(s.Seq) - 1
		if pos := Arg(in, 1); pos.Kind != KindNone {
			var err error
			if p, err = seqPosition("SequenceErase position", pos, len(s.Seq), false); err != nil {
				return err
			}
		}
		out[0].ResizeSeq(len(s.Seq) - 1)
		for i, e := range out[0].Seq {
			src := s.Seq[i]
			if i >= p {
				src = s.Seq[i+1]
			}
			if err := e.CopyFrom(src); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func newSequenceLength(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if err := checkSeq("SequenceLength", in[0]); err != nil {
			return err
		}
		if err := out[0].Resize(tensor.Int64, nil); err != nil {
			return err
		}
		out[0].Int64s()[0] = int64(len(in[0].Seq))
		return nil
	}, nil
}

// sliceRange makes dst the elements [start, start+size) of src along
// axis; with squeeze (size 1), the axis is dropped.
func sliceRange(tmp *Scratch, dst, src *Value, axis, start, size int, squeeze bool) error {
	shape := src.Tensor.Shape
	L := int(shape[axis])
	ds := tmp.Shape(len(shape))
	copy(ds, shape)
	ds[axis] = int64(size)
	if squeeze {
		ds = append(ds[:axis], ds[axis+1:]...)
	}
	if err := dst.Resize(src.Tensor.DType, ds); err != nil {
		return err
	}
	outer, inner := prod(shape[:axis]), prod(shape[axis+1:])
	for o := range outer {
		copyBlock(dst.Tensor.Data, o*size*inner, src.Tensor.Data, (o*L+start)*inner, size*inner)
	}
	return nil
}

// newSplitToSequence splits a tensor along axis into a sequence: into
// parts of the lengths given by a 1-D split, into chunks of a scalar
// split's size (the last one smaller), or without split into slices of
// size 1 (squeezed unless keepdims).
func newSplitToSequence(n *Node) (Kernel, error) {
	axisAttr := n.Attrs.Int("axis", 0)
	keep := n.Attrs.Int("keepdims", 1) != 0
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if x.Kind != KindTensor || len(x.Tensor.Shape) == 0 {
			return badInput("SplitToSequence: input %v, want a tensor of rank 1 or more", x)
		}
		axis, err := axisIndex(axisAttr, len(x.Tensor.Shape))
		if err != nil {
			return err
		}
		L := int(x.Tensor.Shape[axis])
		split := Arg(in, 1)
		if split.Kind == KindNone {
			out[0].ResizeSeq(L)
			for i := range L {
				if err := sliceRange(tmp, out[0].Seq[i], x, axis, i, 1, !keep); err != nil {
					return err
				}
			}
			return nil
		}
		if err := checkType("SplitToSequence split", split, tensor.Int32, tensor.Int64); err != nil {
			return err
		}
		at := func(i int) int64 {
			if split.Tensor.DType == tensor.Int32 {
				return int64(split.Int32s()[i])
			}
			return split.Int64s()[i]
		}
		if len(split.Tensor.Shape) == 0 {
			size := at(0)
			if size <= 0 {
				return badInput("SplitToSequence: split %d, want a positive size", size)
			}
			parts := (L + int(size) - 1) / int(size)
			out[0].ResizeSeq(parts)
			for i := range parts {
				lo := i * int(size)
				if err := sliceRange(tmp, out[0].Seq[i], x, axis, lo, min(int(size), L-lo), false); err != nil {
					return err
				}
			}
			return nil
		}
		if len(split.Tensor.Shape) != 1 {
			return badInput("SplitToSequence: split of shape %v, want a scalar or 1-D", split.Tensor.Shape)
		}
		var total int64
		for i := range split.Len() {
			if at(i) < 0 {
				return badInput("SplitToSequence: negative split %d", at(i))
			}
			total += at(i)
		}
		if total != int64(L) {
			return badInput("SplitToSequence: splits sum to %d, the axis has %d", total, L)
		}
		out[0].ResizeSeq(split.Len())
		lo := 0
		for i := range split.Len() {
			if err := sliceRange(tmp, out[0].Seq[i], x, axis, lo, int(at(i)), false); err != nil {
				return err
			}
			lo += int(at(i))
		}
		return nil
	}, nil
}

// newConcatFromSequence concatenates a sequence's tensors along axis, or
// stacks them along a new axis with new_axis=1.
func newConcatFromSequence(n *Node) (Kernel, error) {
	if !n.Attrs.Has("axis") {
		return nil, fmt.Errorf("%w: ConcatFromSequence needs axis", ErrAttr)
	}
	axisAttr := n.Attrs.Int("axis", 0)
	newAxis := n.Attrs.Int("new_axis", 0)
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if newAxis != 0 && newAxis != 1 {
		return nil, fmt.Errorf("%w: ConcatFromSequence new_axis %d, want 0 or 1", ErrAttr, newAxis)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		s := in[0]
		if err := checkSeq("ConcatFromSequence", s); err != nil {
			return err
		}
		if len(s.Seq) == 0 {
			return badInput("ConcatFromSequence: the sequence is empty")
		}
		first := s.Seq[0]
		if first.Kind != KindTensor {
			return badInput("ConcatFromSequence: elements are %v, want tensors", first)
		}
		shape := first.Tensor.Shape
		rank := len(shape) + int(newAxis)
		axis, err := axisIndex(axisAttr, rank)
		if err != nil {
			return err
		}
		if rank == 0 {
			return badInput("ConcatFromSequence: scalars need new_axis=1")
		}
		var total int64
		for i, e := range s.Seq {
			if e.Kind != KindTensor || e.Tensor.DType != first.Tensor.DType || len(e.Tensor.Shape) != len(shape) {
				return badInput("ConcatFromSequence: element %d is %v, element 0 %v", i, e, first)
			}
			for d := range shape {
				if (newAxis == 1 || d != axis) && e.Tensor.Shape[d] != shape[d] {
					return badInput("ConcatFromSequence: element %d is %v, element 0 %v", i, e, first)
				}
			}
			if newAxis == 1 {
				total++
			} else {
				total += e.Tensor.Shape[axis]
			}
		}
		os := tmp.Shape(rank)
		if newAxis == 1 {
			copy(os, shape[:axis])
			os[axis] = total
			copy(os[axis+1:], shape[axis:])
		} else {
			copy(os, shape)
			os[axis] = total
		}
		if err := out[0].Resize(first.Tensor.DType, os); err != nil {
			return err
		}
		outer := prod(shape[:axis])
		inner := prod(shape[axis:])
		if newAxis == 0 {
			inner = prod(shape[axis+1:])
		}
		off := 0
		for _, e := range s.Seq {
			size := 1
			if newAxis == 0 {
				size = int(e.Tensor.Shape[axis])
			}
			for o := range outer {
				copyBlock(out[0].Tensor.Data, (o*int(total)+off)*inner, e.Tensor.Data, o*size*inner, size*inner)
			}
			off += size
		}
		return nil
	}, nil
}

// newSequenceMap applies body to each element of the input sequence; the
// additional inputs are sequences of the same length (element i is given)
// or tensors (given whole). Each body output becomes an output sequence.
func newSequenceMap(n *Node) (Kernel, error) {
	body, err := n.Subgraph("body")
	if err != nil {
		return nil, err
	}
	if body.NumInputs() != n.NumInputs || body.NumOutputs() != n.NumOutputs {
		return nil, fmt.Errorf("%w: SequenceMap body has %d inputs and %d outputs, the node %d and %d",
			ErrInvalidModel, body.NumInputs(), body.NumOutputs(), n.NumInputs, n.NumOutputs)
	}
	declared := n.NumInputs
	return func(tmp *Scratch, in, out []*Value) error {
		s := in[0]
		if err := checkSeq("SequenceMap input", s); err != nil {
			return err
		}
		L := len(s.Seq)
		for j := 1; j < declared; j++ {
			if a := in[j]; a.Kind == KindSequence && len(a.Seq) != L {
				return badInput("SequenceMap: input %d has %d elements, the input sequence %d", j, len(a.Seq), L)
			}
		}
		ss := subStates(tmp, body)[0]
		defer ss.release()
		for k := range out {
			out[k].ResizeSeq(L)
		}
		ctx := tmp.Context()
		for i := range L {
			ss.setInput(0, s.Seq[i])
			for j := 1; j < declared; j++ {
				a := in[j]
				if a.Kind == KindSequence {
					a = a.Seq[i]
				}
				ss.setInput(j, a)
			}
			if err := ss.run(ctx, in[declared:]); err != nil {
				return fmt.Errorf("SequenceMap element %d: %w", i, err)
			}
			for k := range out {
				if err := out[k].Seq[i].CopyFrom(ss.output(k)); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil
}

// newOptional wraps its input in an optional, or makes an empty one (of
// the type attribute's type) when there is no input.
func newOptional(n *Node) (Kernel, error) {
	if n.NumInputs == 0 || !n.InputPresent[0] {
		if !n.Attrs.Has("type") {
			return nil, fmt.Errorf("%w: Optional without an input needs the type attribute", ErrAttr)
		}
	}
	return func(tmp *Scratch, in, out []*Value) error {
		return out[0].CopyFrom(Arg(in, 0))
	}, nil
}

// newOptionalHasElement says whether its input is a non-empty optional (or,
// since opset 18, a tensor or sequence); an absent input gives false.
func newOptionalHasElement(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		if err := out[0].Resize(tensor.Bool, nil); err != nil {
			return err
		}
		out[0].Bools()[0] = Arg(in, 0).Kind != KindNone
		return nil
	}, nil
}

// newOptionalGetElement returns what an optional holds (since opset 18 a
// tensor or sequence input is returned as it is); an empty optional is an
// error.
func newOptionalGetElement(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		v := Arg(in, 0)
		if v.Kind == KindNone {
			return badInput("OptionalGetElement: the optional is empty")
		}
		return out[0].CopyFrom(v)
	}, nil
}
