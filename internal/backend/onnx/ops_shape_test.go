package onnx

import (
	"reflect"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

func i64(shape []int64, data ...int64) *Value { return tv(tensor.Int64, shape, data) }

func attrs(a ...*onnxpb.AttributeProto) *Attrs { return NewAttrs(a) }

func TestShapeOps(t *testing.T) {
	x23 := f32([]int64{2, 3}, 0, 1, 2, 3, 4, 5)
	tests := []struct {
		name    string
		op      string
		version int64
		attrs   *Attrs
		in      []*Value
		want    *Value
	}{
		{"shape start end", "Shape", 15, attrs(intAttr("start", 1)), []*Value{x23}, i64([]int64{1}, 3)},
		{"transpose default", "Transpose", 13, nil, []*Value{x23}, f32([]int64{3, 2}, 0, 3, 1, 4, 2, 5)},
		{"slice negative step", "Slice", 13, nil,
			[]*Value{x23, i64([]int64{1}, -1), i64([]int64{1}, -100), i64([]int64{1}, 1), i64([]int64{1}, -2)},
			f32([]int64{2, 2}, 2, 0, 5, 3)},
		{"slice opset 1 attributes", "Slice", 1, attrs(intsAttr("starts", 1), intsAttr("ends", 2), intsAttr("axes", 0)),
			[]*Value{x23}, f32([]int64{1, 3}, 3, 4, 5)},
		{"unsqueeze input axes", "Unsqueeze", 13, nil, []*Value{x23, i64([]int64{2}, 0, -1)},
			f32([]int64{1, 2, 3, 1}, 0, 1, 2, 3, 4, 5)},
		{"squeeze all ones", "Squeeze", 11, nil, []*Value{f32([]int64{1, 2, 1}, 7, 8)}, f32([]int64{2}, 7, 8)},
		{"expand", "Expand", 13, nil, []*Value{f32([]int64{2, 1}, 1, 2), i64([]int64{2}, 2, 2)}, f32([]int64{2, 2}, 1, 1, 2, 2)},
		{"tile", "Tile", 13, nil, []*Value{f32([]int64{2}, 1, 2), i64([]int64{1}, 2)}, f32([]int64{4}, 1, 2, 1, 2)},
		{"gather axis 1 negative index", "Gather", 13, attrs(intAttr("axis", 1)), []*Value{x23, i64([]int64{2}, -1, 0)},
			f32([]int64{2, 2}, 2, 0, 5, 3)},
		{"gather elements", "GatherElements", 13, attrs(intAttr("axis", 1)), []*Value{x23, i64([]int64{2, 1}, 2, 0)},
			f32([]int64{2, 1}, 2, 3)},
		{"where broadcast", "Where", 16, nil,
			[]*Value{tv(tensor.Bool, []int64{2}, []bool{true, false}), f32([]int64{2, 2}, 1, 2, 3, 4), f32(nil, 0)},
			f32([]int64{2, 2}, 1, 0, 3, 0)},
		{"range int", "Range", 11, nil, []*Value{i64(nil, 1), i64(nil, 8), i64(nil, 3)}, i64([]int64{3}, 1, 4, 7)},
		{"scatter nd add", "ScatterND", 16, attrs(stringAttr("reduction", "add")),
			[]*Value{f32([]int64{3}, 1, 1, 1), i64([]int64{2, 1}, 0, 0), f32([]int64{2}, 5, 6)},
			f32([]int64{3}, 12, 1, 1)},
		{"string concat broadcast", "StringConcat", 20, nil,
			[]*Value{tv(tensor.Bytes, []int64{2}, [][]byte{[]byte("a"), []byte("b")}), tv(tensor.Bytes, nil, [][]byte{[]byte("!")})},
			tv(tensor.Bytes, []int64{2}, [][]byte{[]byte("a!"), []byte("b!")})},
		{"regex full match", "RegexFullMatch", 20, attrs(stringAttr("pattern", "a+")),
			[]*Value{tv(tensor.Bytes, []int64{2}, [][]byte{[]byte("aaa"), []byte("aab")})},
			tv(tensor.Bool, []int64{2}, []bool{true, false})},
		{"bitcast int32 to float32", "BitCast", 26, attrs(intAttr("to", 1)),
			[]*Value{tv(tensor.Int32, []int64{1}, []int32{0x3f800000})}, f32([]int64{1}, 1)},
		{"nonzero", "NonZero", 13, nil, []*Value{f32([]int64{2, 2}, 1, 0, 0, 3)}, i64([]int64{2, 2}, 0, 1, 0, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, tt.op, tt.version, tt.attrs, tt.in...)
			if err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			if got.Tensor.DType != tt.want.Tensor.DType || !reflect.DeepEqual(got.Tensor.Shape, tt.want.Tensor.Shape) ||
				!reflect.DeepEqual(got.Tensor.Data, tt.want.Tensor.Data) {
				t.Errorf("%s = %v %v, want %v %v", tt.op, got, got.Tensor.Data, tt.want, tt.want.Tensor.Data)
			}
		})
	}
}

func TestSplitOutputs(t *testing.T) {
	op, _ := DefaultOps().Lookup(DomainONNX, "Split", 18)
	k, err := op.New(&Node{Version: 18, Attrs: NewAttrs(nil), NumInputs: 1, NumOutputs: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := []*Value{new(Value), new(Value)}
	if err := k(new(Scratch), []*Value{f32([]int64{3}, 1, 2, 3)}, out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out[0].Float32s(), []float32{1, 2}) || !reflect.DeepEqual(out[1].Float32s(), []float32{3}) {
		t.Errorf("Split([1 2 3]) = %v, %v, want [1 2], [3]", out[0].Float32s(), out[1].Float32s())
	}
}

func TestShapeSteadyStateAllocs(t *testing.T) {
	x := f32([]int64{2, 3, 4}, make([]float32, 24)...)
	for _, c := range []struct {
		op string
		in []*Value
	}{
		{"Transpose", []*Value{x}},
		{"Slice", []*Value{x, i64([]int64{1}, 1), i64([]int64{1}, 3), i64([]int64{1}, 2)}},
		{"Gather", []*Value{x, i64([]int64{2}, 1, 0)}},
		{"Where", []*Value{tv(tensor.Bool, []int64{4}, make([]bool, 4)), x, f32(nil, 1)}},
		{"Expand", []*Value{x, i64([]int64{4}, 2, 2, 3, 4)}},
		{"Unsqueeze", []*Value{x, i64([]int64{1}, 0)}},
	} {
		op, _ := DefaultOps().Lookup(DomainONNX, c.op, 13)
		k, err := op.New(&Node{Version: 13, Attrs: NewAttrs(nil), NumInputs: len(c.in), NumOutputs: 1})
		if err != nil {
			t.Fatal(err)
		}
		tmp, out := new(Scratch), []*Value{new(Value)}
		allocs := steadyAllocs(50, func() {
			if err := k(tmp, c.in, out); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s allocates %v times per run, want 0", c.op, allocs)
		}
	}
}

func BenchmarkTranspose(b *testing.B) {
	op, _ := DefaultOps().Lookup(DomainONNX, "Transpose", 13)
	k, _ := op.New(&Node{Version: 13, Attrs: attrs(intsAttr("perm", 0, 2, 3, 1)), NumInputs: 1, NumOutputs: 1})
	x := f32([]int64{1, 64, 56, 56}, make([]float32, 64*56*56)...)
	tmp, in, out := new(Scratch), []*Value{x}, []*Value{new(Value)}
	b.ReportAllocs()
	for b.Loop() {
		if err := k(tmp, in, out); err != nil {
			b.Fatal(err)
		}
	}
}
