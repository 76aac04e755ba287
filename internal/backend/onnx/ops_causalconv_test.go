package onnx

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// runCausalConv runs CausalConvWithState with both outputs.
func runCausalConv(t *testing.T, act string, in ...*Value) (y, state *Value, err error) {
	t.Helper()
	op, ok := DefaultOps().Lookup(DomainONNX, "CausalConvWithState", 27)
	if !ok {
		t.Fatal("CausalConvWithState 27 not found")
	}
	str := onnxpb.AttributeProto_STRING
	attrs := NewAttrs([]*onnxpb.AttributeProto{{Name: proto.String("activation"), Type: &str, S: []byte(act)}})
	k, err := op.New(&Node{OpType: "CausalConvWithState", Version: 27, Attrs: attrs, NumInputs: len(in), NumOutputs: 2})
	if err != nil {
		return nil, nil, err
	}
	y, state = new(Value), new(Value)
	return y, state, k(new(Scratch), in, []*Value{y, state})
}

func TestCausalConvWithState(t *testing.T) {
	// One batch, one channel, kernel [1, 2, 3] over past [10, 20] ++ [1, 2].
	x := sgF32([]int64{1, 1, 2}, 1, 2)
	w := sgF32([]int64{1, 1, 3}, 1, 2, 3)
	past := sgF32([]int64{1, 1, 2}, 10, 20)
	y, state, err := runCausalConv(t, "none", x, w, sgF32([]int64{1}, 0.5), past)
	if err != nil {
		t.Fatal(err)
	}
	// y0 = 10*1 + 20*2 + 1*3 + 0.5; y1 = 20*1 + 1*2 + 2*3 + 0.5.
	if got, want := y.Float32s(), []float32{53.5, 28.5}; !reflect.DeepEqual(got, want) {
		t.Errorf("output = %v, want %v", got, want)
	}
	if got, want := state.Float32s(), []float32{1, 2}; !reflect.DeepEqual(got, want) || !reflect.DeepEqual(state.Tensor.Shape, []int64{1, 1, 2}) {
		t.Errorf("present_state = %v %v, want [1 1 2] %v", state.Tensor.Shape, got, want)
	}
	// Without past state the left padding is zero; SiLU on top.
	y, _, err = runCausalConv(t, "silu", x, w)
	if err != nil {
		t.Fatal(err)
	}
	silu := func(v float64) float32 { return float32(v / (1 + math.Exp(-v))) }
	if got, want := y.Float32s(), []float32{silu(3), silu(2 + 6)}; !reflect.DeepEqual(got, want) {
		t.Errorf("silu output = %v, want %v", got, want)
	}
	if _, _, err := runCausalConv(t, "none", x, sgF32([]int64{2, 1, 3}, 1, 2, 3, 4, 5, 6)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("weight for 2 channels on 1: error = %v, want ErrInvalidInput", err)
	}
	if _, _, err := runCausalConv(t, "none", x, w, &Value{}, sgF32([]int64{1, 1, 1}, 1)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("past_state too short: error = %v, want ErrInvalidInput", err)
	}
	if _, _, err := runCausalConv(t, "gelu", x, w); !errors.Is(err, ErrAttr) {
		t.Errorf("activation gelu: error = %v, want ErrAttr", err)
	}
}
