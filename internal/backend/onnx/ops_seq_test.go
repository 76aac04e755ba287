package onnx

import (
	"errors"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

func seqOf(vs ...*Value) *Value {
	return &Value{Kind: KindSequence, Seq: vs}
}

func i64s(shape []int64, data ...int64) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Shape: shape, Data: data}}
}

// seqShapes describes a sequence as its elements' shapes and data.
func seqShapes(v *Value) (shapes [][]int64, data [][]float32) {
	for _, e := range v.Seq {
		shapes = append(shapes, e.Tensor.Shape)
		data = append(data, e.Float32s())
	}
	return shapes, data
}

func TestSequenceOps(t *testing.T) {
	a, b, c := sgF32([]int64{1}, 1), sgF32([]int64{1}, 2), sgF32([]int64{1}, 3)
	tests := []struct {
		name  string
		op    string
		attrs *Attrs
		in    []*Value
		want  [][]float32 // the elements of a sequence output, or one tensor
	}{
		{"construct", "SequenceConstruct", nil, []*Value{a, b}, [][]float32{{1}, {2}}},
		{"insert at end", "SequenceInsert", nil, []*Value{seqOf(a, b), c}, [][]float32{{1}, {2}, {3}}},
		{"insert at front", "SequenceInsert", nil, []*Value{seqOf(a, b), c, i64s(nil, 0)}, [][]float32{{3}, {1}, {2}}},
		{"insert at -1", "SequenceInsert", nil, []*Value{seqOf(a, b), c, i64s(nil, -1)}, [][]float32{{1}, {3}, {2}}},
		{"erase last", "SequenceErase", nil, []*Value{seqOf(a, b, c)}, [][]float32{{1}, {2}}},
		{"erase first", "SequenceErase", nil, []*Value{seqOf(a, b, c), i64s(nil, -3)}, [][]float32{{2}, {3}}},
		{"at", "SequenceAt", nil, []*Value{seqOf(a, b, c), i64s(nil, -1)}, [][]float32{{3}}},
		{"split chunks", "SplitToSequence", nil, []*Value{sgF32([]int64{5}, 1, 2, 3, 4, 5), i64s(nil, 2)}, [][]float32{{1, 2}, {3, 4}, {5}}},
		{"split lengths", "SplitToSequence", nil, []*Value{sgF32([]int64{5}, 1, 2, 3, 4, 5), i64s([]int64{2}, 1, 4)}, [][]float32{{1}, {2, 3, 4, 5}}},
		{"split ones", "SplitToSequence", NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("axis", 1), sgIntAttr("keepdims", 0)}),
			[]*Value{sgF32([]int64{2, 2}, 1, 2, 3, 4)}, [][]float32{{1, 3}, {2, 4}}},
		{"concat", "ConcatFromSequence", NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("axis", 0)}), []*Value{seqOf(a, sgF32([]int64{2}, 2, 3))}, [][]float32{{1, 2, 3}}},
		{"stack", "ConcatFromSequence", NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("axis", -1), sgIntAttr("new_axis", 1)}),
			[]*Value{seqOf(sgF32([]int64{2}, 1, 2), sgF32([]int64{2}, 3, 4))}, [][]float32{{1, 3, 2, 4}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runOp(t, tt.op, 17, tt.attrs, tt.in...)
			if err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			var got [][]float32
			if out.Kind == KindSequence {
				_, got = seqShapes(out)
			} else {
				got = [][]float32{out.Float32s()}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s = %v, want %v", tt.op, got, tt.want)
			}
		})
	}
}

func TestSequenceOpsShapes(t *testing.T) {
	out, err := runOp(t, "SplitToSequence", 17, NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("axis", 1), sgIntAttr("keepdims", 0)}), sgF32([]int64{2, 2}, 1, 2, 3, 4))
	if err != nil {
		t.Fatal(err)
	}
	if shapes, _ := seqShapes(out); !reflect.DeepEqual(shapes, [][]int64{{2}, {2}}) {
		t.Errorf("SplitToSequence(keepdims=0) shapes = %v, want [[2] [2]]", shapes)
	}
	out, err = runOp(t, "ConcatFromSequence", 17, NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("axis", -1), sgIntAttr("new_axis", 1)}),
		seqOf(sgF32([]int64{2}, 1, 2), sgF32([]int64{2}, 3, 4)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Tensor.Shape, []int64{2, 2}) {
		t.Errorf("ConcatFromSequence(new_axis=1) shape = %v, want [2 2]", out.Tensor.Shape)
	}
	out, err = runOp(t, "SequenceLength", 17, nil, seqOf(sgF32(nil, 1), sgF32(nil, 2)))
	if err != nil || out.Int64s()[0] != 2 {
		t.Errorf("SequenceLength = %v, %v, want 2", out, err)
	}
}

func TestSequenceOpsReject(t *testing.T) {
	a := sgF32([]int64{1}, 1)
	tests := []struct {
		name string
		op   string
		in   []*Value
	}{
		{"at past the end", "SequenceAt", []*Value{seqOf(a), i64s(nil, 1)}},
		{"at of a tensor", "SequenceAt", []*Value{a, i64s(nil, 0)}},
		{"insert past the end", "SequenceInsert", []*Value{seqOf(a), a, i64s(nil, 2)}},
		{"insert another type", "SequenceInsert", []*Value{seqOf(a), i64s(nil, 2)}},
		{"erase from empty", "SequenceErase", []*Value{seqOf()}},
		{"position not a scalar", "SequenceAt", []*Value{seqOf(a), i64s([]int64{2}, 0, 0)}},
		{"split not summing", "SplitToSequence", []*Value{sgF32([]int64{3}, 1, 2, 3), i64s([]int64{2}, 1, 1)}},
		{"split of zero", "SplitToSequence", []*Value{sgF32([]int64{3}, 1, 2, 3), i64s(nil, 0)}},
		{"get from empty optional", "OptionalGetElement", []*Value{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := runOp(t, tt.op, 18, nil, tt.in...); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("%s error = %v, want ErrInvalidInput", tt.op, err)
			}
		})
	}
}

func TestOptionalOps(t *testing.T) {
	a := sgF32([]int64{1}, 7)
	for _, tt := range []struct {
		in   *Value
		want bool
	}{{a, true}, {seqOf(), true}, {&Value{}, false}} {
		out, err := runOp(t, "OptionalHasElement", 18, nil, tt.in)
		if err != nil || out.Bools()[0] != tt.want {
			t.Errorf("OptionalHasElement(%v) = %v, %v, want %v", tt.in, out, err, tt.want)
		}
	}
	out, err := runOp(t, "OptionalGetElement", 18, nil, a)
	if err != nil || !reflect.DeepEqual(out.Float32s(), []float32{7}) {
		t.Errorf("OptionalGetElement(%v) = %v, %v, want [7]", a, out, err)
	}
}

func TestDecodeDataValue(t *testing.T) {
	tensorBytes := func(v float32) []byte {
		b, err := proto.Marshal(sgFloatInit("", []int64{1}, v))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var seq []byte
	seq = protowire.AppendTag(seq, 1, protowire.BytesType)
	seq = protowire.AppendBytes(seq, []byte("s"))
	seq = protowire.AppendTag(seq, 2, protowire.VarintType)
	seq = protowire.AppendVarint(seq, 1)
	for _, v := range []float32{1, 2} {
		seq = protowire.AppendTag(seq, 3, protowire.BytesType)
		seq = protowire.AppendBytes(seq, tensorBytes(v))
	}
	r := &tensorReader{budget: DefaultMaxBytes}
	v, err := decodeDataValue(seq, false, r, 0)
	if err != nil {
		t.Fatalf("decode sequence: %v", err)
	}
	if _, data := seqShapes(v); !reflect.DeepEqual(data, [][]float32{{1}, {2}}) {
		t.Errorf("decoded sequence = %v, want [[1] [2]]", data)
	}
	if msg := compareAny(v, v); msg != "" {
		t.Errorf("compareAny(v, v) = %q", msg)
	}
	if msg := compareAny(seqOf(v.Seq[0]), v); msg == "" {
		t.Error("compareAny of sequences of different lengths found no difference")
	}
	// An optional holding that sequence, and an empty optional.
	var opt []byte
	opt = protowire.AppendTag(opt, 5, protowire.BytesType)
	opt = protowire.AppendBytes(opt, seq)
	if o, err := decodeDataValue(opt, true, r, 0); err != nil || o.Kind != KindSequence || len(o.Seq) != 2 {
		t.Errorf("decode optional(sequence) = %v, %v, want seq(2)", o, err)
	}
	if o, err := decodeDataValue(nil, true, r, 0); err != nil || o.Kind != KindNone {
		t.Errorf("decode empty optional = %v, %v, want none", o, err)
	}
	// Truncated and hostile inputs give errors.
	if _, err := decodeDataValue(seq[:len(seq)-3], false, r, 0); err == nil {
		t.Error("decode of a truncated sequence succeeded")
	}
	deep := seq
	for range maxValueDepth + 2 {
		deep = protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), deep)
	}
	if _, err := decodeDataValue(deep, false, r, 0); !errors.Is(err, errDataProto) {
		t.Errorf("decode of a too deep sequence error = %v, want errDataProto", err)
	}
}
