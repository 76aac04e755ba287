package onnx

import (
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// runOptimizer runs a training operator with nOut outputs.
func runOptimizer(t *testing.T, typ string, attrs []*onnxpb.AttributeProto, nOut int, in ...*Value) ([]*Value, error) {
	t.Helper()
	op, ok := DefaultOps().Lookup(DomainTraining, typ, 1)
	if !ok {
		t.Fatalf("%s not found", typ)
	}
	k, err := op.New(&Node{OpType: typ, Version: 1, Attrs: NewAttrs(attrs), NumInputs: len(in), NumOutputs: nOut})
	if err != nil {
		return nil, err
	}
	out := make([]*Value, nOut)
	for i := range out {
		out[i] = new(Value)
	}
	return out, k(new(Scratch), in, out)
}

func sgFloatAttr(name string, v float32) *onnxpb.AttributeProto {
	t := onnxpb.AttributeProto_FLOAT
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: &t, F: proto.Float32(v)}
}

func TestOptimizers(t *testing.T) {
	r, step := sgF32(nil, 0.1), &Value{Kind: KindTensor, Tensor: tensor.Tensor{DType: tensor.Int64, Data: []int64{1}}}
	x, g, h := sgF32([]int64{1}, 1), sgF32([]int64{1}, 2), sgF32([]int64{1}, 5)
	near := func(a float32, b float64) bool { return math.Abs(float64(a)-b) < 1e-6 }

	// Adagrad: r = 0.1/(1+1*0.5); h' = 5+4 = 9; x' = 1 - r*2/(3+0).
	out, err := runOptimizer(t, "Adagrad", []*onnxpb.AttributeProto{sgFloatAttr("decay_factor", 0.5)}, 2, r, step, x, g, h)
	if err != nil {
		t.Fatal(err)
	}
	if rr := 0.1 / 1.5; !near(out[0].Float32s()[0], 1-rr*2/3) || !near(out[1].Float32s()[0], 9) {
		t.Errorf("Adagrad = %v, %v; want %v, 9", out[0].Float32s(), out[1].Float32s(), 1-rr*2/3)
	}
	// Momentum (standard): v' = 0.9*5 + 0.5*2 = 5.5; x' = 1 - 0.1*5.5.
	mom := []*onnxpb.AttributeProto{sgFloatAttr("alpha", 0.9), sgFloatAttr("beta", 0.5), sgFloatAttr("norm_coefficient", 0),
		{Name: proto.String("mode"), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte("standard")}}
	out, err = runOptimizer(t, "Momentum", mom, 2, r, step, x, g, h)
	if err != nil {
		t.Fatal(err)
	}
	if !near(out[0].Float32s()[0], 1-0.1*5.5) || !near(out[1].Float32s()[0], 5.5) {
		t.Errorf("Momentum = %v, %v; want 0.45, 5.5", out[0].Float32s(), out[1].Float32s())
	}
	if _, err := runOptimizer(t, "Momentum", mom[:2], 2, r, step, x, g, h); !errors.Is(err, ErrAttr) {
		t.Errorf("Momentum without mode: error = %v, want ErrAttr", err)
	}
	if _, err := runOptimizer(t, "Adagrad", nil, 2, r, step, x, sgF32([]int64{2}, 1, 2), h); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Adagrad with a gradient of another shape: error = %v, want ErrInvalidInput", err)
	}
	if _, err := runOptimizer(t, "Adam", nil, 2, r, step, x, g, h, h); !errors.Is(err, ErrInvalidModel) {
		t.Errorf("Adam with 2 outputs for 3: error = %v, want ErrInvalidModel", err)
	}
}
