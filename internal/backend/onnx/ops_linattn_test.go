package onnx

import (
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

func runLinearAttention(t *testing.T, rule string, in ...*Value) (out, state *Value, err error) {
	t.Helper()
	op, ok := DefaultOps().Lookup(DomainONNX, "LinearAttention", 27)
	if !ok {
		t.Fatal("LinearAttention 27 not found")
	}
	str, f := onnxpb.AttributeProto_STRING, onnxpb.AttributeProto_FLOAT
	attrs := NewAttrs([]*onnxpb.AttributeProto{
		sgIntAttr("q_num_heads", 1), sgIntAttr("kv_num_heads", 1),
		{Name: proto.String("update_rule"), Type: &str, S: []byte(rule)},
		{Name: proto.String("scale"), Type: &f, F: proto.Float32(1)},
	})
	k, err := op.New(&Node{OpType: "LinearAttention", Version: 27, Attrs: attrs, NumInputs: len(in), NumOutputs: 2})
	if err != nil {
		return nil, nil, err
	}
	out, state = new(Value), new(Value)
	return out, state, k(new(Scratch), in, []*Value{out, state})
}

func TestLinearAttention(t *testing.T) {
	// One head, d_k = d_v = 1, two tokens: the state is a scalar.
	q := sgF32([]int64{1, 2, 1}, 1, 2)
	k := sgF32([]int64{1, 2, 1}, 0.5, 1)
	v := sgF32([]int64{1, 2, 1}, 4, 3)
	g := sgF32([]int64{1, 2, 1}, float32(math.Log(0.5)), 0)
	beta := sgF32([]int64{1, 2, 1}, 0.5, 0.5)
	near := func(a float32, b float64) bool { return math.Abs(float64(a)-b) < 1e-5 }
	tests := []struct {
		rule         string
		in           []*Value
		want0, want1 float64 // outputs of tokens 0 and 1
		state        float64
	}{
		// S1 = 2, o0 = 2; S2 = 2 + 3 = 5, o1 = 10.
		{"linear", []*Value{q, k, v}, 2, 10, 5},
		// S1 = 0.5*0 + 2 = 2; S2 = 1*2 + 3 = 5.
		{"gated", []*Value{q, k, v, {}, g}, 2, 10, 5},
		// S1 = 0.5*0.5*(4-0) = 1; S2 = 1 + 0.5*1*(3-1) = 2.
		{"delta", []*Value{q, k, v, {}, {}, beta}, 1, 4, 2},
		// With a past state of 4: S1' = 2, S1 = 2 + 0.25*(4-1) = 2.75;
		// S2' = 2.75, S2 = 2.75 + 0.5*(3-2.75) = 2.875.
		{"gated_delta", []*Value{q, k, v, sgF32([]int64{1, 1, 1, 1}, 4), g, beta}, 2.75, 5.75, 2.875},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			out, state, err := runLinearAttention(t, tt.rule, tt.in...)
			if err != nil {
				t.Fatal(err)
			}
			o := out.Float32s()
			if !near(o[0], tt.want0) || !near(o[1], tt.want1) || !near(state.Float32s()[0], tt.state) {
				t.Errorf("LinearAttention(%s) = %v, state %v; want [%v %v], state %v", tt.rule, o, state.Float32s(), tt.want0, tt.want1, tt.state)
			}
		})
	}
	if _, _, err := runLinearAttention(t, "gated", q, k, v); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("gated without decay: error = %v, want ErrInvalidInput", err)
	}
	if _, _, err := runLinearAttention(t, "linear", q, k, sgF32([]int64{1, 1, 1}, 1)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("value of another length: error = %v, want ErrInvalidInput", err)
	}
	if _, _, err := runLinearAttention(t, "softmax", q, k, v); !errors.Is(err, ErrAttr) {
		t.Errorf("update_rule softmax: error = %v, want ErrAttr", err)
	}
}
