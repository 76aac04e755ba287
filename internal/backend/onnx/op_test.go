package onnx

import (
	"errors"
	"reflect"
	"runtime/debug"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// runOp instantiates op typ of the default domain at version and runs it.
func runOp(t *testing.T, typ string, version int64, attrs *Attrs, in ...*Value) (*Value, error) {
	t.Helper()
	op, ok := DefaultOps().Lookup(DomainONNX, typ, version)
	if !ok {
		t.Fatalf("Lookup(%q, %d) found nothing", typ, version)
	}
	if attrs == nil {
		attrs = NewAttrs(nil)
	}
	k, err := op.New(&Node{OpType: typ, Version: version, Attrs: attrs, NumInputs: len(in), NumOutputs: 1})
	if err != nil {
		return nil, err
	}
	out := new(Value)
	err = k(new(Scratch), in, []*Value{out})
	return out, err
}

// steadyAllocs is testing.AllocsPerRun with the garbage collector off:
// a collection empties the sync.Pools that keep scratch (gemm's packing
// buffers), and the refill would count as the kernel's allocation.
func steadyAllocs(runs int, f func()) float64 {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	return testing.AllocsPerRun(runs, f)
}

func f32(shape []int64, data ...float32) *Value {
	return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.FP32, Shape: shape, Data: data}}
}

func TestBroadcastOps(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		a, b      *Value
		wantShape []int64
		want      []float32
	}{
		{"same shape", "Add", f32([]int64{2}, 1, 2), f32([]int64{2}, 10, 20), []int64{2}, []float32{11, 22}},
		{"scalar b", "Mul", f32([]int64{3}, 1, 2, 3), f32(nil, 2), []int64{3}, []float32{2, 4, 6}},
		{"row vector", "Sub", f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), f32([]int64{3}, 1, 1, 1), []int64{2, 3}, []float32{0, 1, 2, 3, 4, 5}},
		{"column vector", "Add", f32([]int64{2, 1}, 10, 20), f32([]int64{1, 3}, 1, 2, 3), []int64{2, 3}, []float32{11, 12, 13, 21, 22, 23}},
		{"middle axis", "Div", f32([]int64{2, 1, 2}, 2, 4, 6, 8), f32([]int64{1, 2, 1}, 1, 2), []int64{2, 2, 2}, []float32{2, 4, 1, 2, 6, 8, 3, 4}},
		{"matmul", "MatMul", f32([]int64{2, 2}, 1, 2, 3, 4), f32([]int64{2, 1}, 1, 1), []int64{2, 1}, []float32{3, 7}},
		{"matmul vector", "MatMul", f32([]int64{2}, 1, 2), f32([]int64{2, 2}, 1, 2, 3, 4), []int64{2}, []float32{7, 10}},
		{"matmul batch broadcast", "MatMul", f32([]int64{2, 1, 2}, 1, 0, 0, 1), f32([]int64{2, 1}, 5, 6), []int64{2, 1, 1}, []float32{5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, tt.op, 14, nil, tt.a, tt.b)
			if err != nil {
				t.Fatalf("%s(%v, %v): %v", tt.op, tt.a, tt.b, err)
			}
			if !reflect.DeepEqual(got.Tensor.Shape, tt.wantShape) || !reflect.DeepEqual(got.Float32s(), tt.want) {
				t.Errorf("%s = %v %v, want %v %v", tt.op, got.Tensor.Shape, got.Float32s(), tt.wantShape, tt.want)
			}
		})
	}
}

func TestBroadcastMismatch(t *testing.T) {
	_, err := runOp(t, "Add", 14, nil, f32([]int64{2}, 1, 2), f32([]int64{3}, 1, 2, 3))
	if !errors.Is(err, backend.ErrInvalidInput) {
		t.Errorf("Add([2], [3]) error = %v, want one wrapping backend.ErrInvalidInput", err)
	}
}

func TestIntDivByZero(t *testing.T) {
	a := &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: []int64{1}}}
	b := &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Shape: []int64{1}, Data: []int64{0}}}
	if _, err := runOp(t, "Div", 14, nil, a, b); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Div(1, 0) error = %v, want ErrInvalidInput", err)
	}
}

func TestOpSetOverlap(t *testing.T) {
	k := func(*Node) (Kernel, error) { return nil, nil }
	_, err := NewOpSet([]Op{{Type: "X", Since: 1, Until: 12, New: k}, {Type: "X", Since: 13, New: k}})
	if err != nil {
		t.Errorf("disjoint ranges: %v", err)
	}
	if _, err := NewOpSet([]Op{{Type: "X", Since: 1, New: k}, {Type: "X", Since: 13, New: k}}); err == nil {
		t.Errorf("overlapping ranges: no error")
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	op, _ := DefaultOps().Lookup(DomainONNX, "Add", 14)
	k, err := op.New(&Node{Attrs: NewAttrs(nil)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := f32([]int64{2, 3}, 1, 2, 3, 4, 5, 6), f32([]int64{3}, 1, 2, 3)
	tmp, out := new(Scratch), []*Value{new(Value)}
	in := []*Value{a, b}
	allocs := steadyAllocs(100, func() {
		if err := k(tmp, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Add allocates %v times per run, want 0", allocs)
	}
}

func TestGemmFP64Transposed(t *testing.T) {
	f64 := func(shape []int64, d ...float64) *Value {
		return &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.FP64, Shape: shape, Data: d}}
	}
	op, _ := DefaultOps().Lookup(DomainONNX, "Gemm", 13)
	// A is given transposed as [K=3, M=1], B transposed as [N=2, K=3].
	attrs := NewAttrs([]*onnxpb.AttributeProto{
		{Name: proto.String("transA"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)},
		{Name: proto.String("transB"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)},
	})
	k, err := op.New(&Node{OpType: "Gemm", Version: 13, Attrs: attrs})
	if err != nil {
		t.Fatal(err)
	}
	out := new(Value)
	a := f64([]int64{3, 1}, 1, 2, 3)
	b := f64([]int64{2, 3}, 1, 0, 0, 0, 1, 1)
	if err := k(new(Scratch), []*Value{a, b}, []*Value{out}); err != nil {
		t.Fatal(err)
	}
	if got, want := out.Float64s(), []float64{1, 5}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(out.Tensor.Shape, []int64{1, 2}) {
		t.Errorf("Gemm = %v %v, want [1 2] %v", out.Tensor.Shape, got, want)
	}
}
