package onnx

import (
	"math"
	"reflect"
	"testing"
)

func TestReduceOps(t *testing.T) {
	x := f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6)
	tests := []struct {
		name    string
		op      string
		version int64
		attrs   *Attrs
		in      []*Value
		want    *Value
	}{
		{"sum all keepdims", "ReduceSum", 13, nil, []*Value{x}, f32([]int64{1, 1}, 21)},
		{"sum axis input", "ReduceSum", 13, attrs(intAttr("keepdims", 0)), []*Value{x, i64([]int64{1}, -1)}, f32([]int64{2}, 6, 15)},
		{"sum noop", "ReduceSum", 13, attrs(intAttr("noop_with_empty_axes", 1)), []*Value{x}, x},
		{"mean attribute axes", "ReduceMean", 13, attrs(intsAttr("axes", 0)), []*Value{x}, f32([]int64{1, 3}, 2.5, 3.5, 4.5)},
		{"max input axes", "ReduceMax", 18, attrs(intAttr("keepdims", 0)), []*Value{x, i64([]int64{1}, 1)}, f32([]int64{2}, 3, 6)},
		{"l2", "ReduceL2", 13, attrs(intAttr("keepdims", 0)), []*Value{f32([]int64{2}, 3, 4)}, f32(nil, 5)},
		{"log sum exp large", "ReduceLogSumExp", 13, attrs(intAttr("keepdims", 0)), []*Value{f32([]int64{2}, 1000, 1000)},
			f32(nil, float32(1000+math.Ln2))},
		{"prod int", "ReduceProd", 13, attrs(intAttr("keepdims", 0)), []*Value{i64([]int64{3}, 2, 3, 4)}, i64(nil, 24)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, tt.op, tt.version, tt.attrs, tt.in...)
			if err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			if !reflect.DeepEqual(got.Tensor.Shape, tt.want.Tensor.Shape) || !reflect.DeepEqual(got.Tensor.Data, tt.want.Tensor.Data) {
				t.Errorf("%s = %v %v, want %v %v", tt.op, got, got.Tensor.Data, tt.want, tt.want.Tensor.Data)
			}
		})
	}
}

func TestReduceSteadyStateAllocs(t *testing.T) {
	op, _ := DefaultOps().Lookup(DomainONNX, "ReduceMean", 18)
	k, err := op.New(&Node{Version: 18, Attrs: NewAttrs(nil), NumInputs: 2, NumOutputs: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := []*Value{f32([]int64{2, 3, 4}, make([]float32, 24)...), i64([]int64{1}, 1)}
	tmp, out := new(Scratch), []*Value{new(Value)}
	allocs := steadyAllocs(50, func() {
		if err := k(tmp, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReduceMean allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkReduceMean(b *testing.B) {
	op, _ := DefaultOps().Lookup(DomainONNX, "ReduceMean", 18)
	k, _ := op.New(&Node{Version: 18, Attrs: NewAttrs(nil), NumInputs: 2, NumOutputs: 1})
	in := []*Value{f32([]int64{8, 128, 768}, make([]float32, 8*128*768)...), i64([]int64{1}, -1)}
	tmp, out := new(Scratch), []*Value{new(Value)}
	b.ReportAllocs()
	for b.Loop() {
		if err := k(tmp, in, out); err != nil {
			b.Fatal(err)
		}
	}
}
