package onnx

import (
	"context"
	"errors"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// flexModel is FlexAttention over Q [1,1,1,2], K and V [1,1,2,2]; with
// scoreMod, score_mod multiplies the scores by the outer initializer z.
func flexModel(scoreMod bool) ([]byte, error) {
	node := sgNode("FlexAttention", []string{"q", "k", "v"}, []string{"y"})
	node.Domain = proto.String(DomainPreview)
	if scoreMod {
		node.Attribute = append(node.Attribute, sgGraphAttr("score_mod", &onnxpb.GraphProto{
			Name:   proto.String("score_mod"),
			Input:  []*onnxpb.ValueInfoProto{sgVI("s", onnxFloat)},
			Node:   []*onnxpb.NodeProto{sgNode("Mul", []string{"s", "z"}, []string{"s2"})},
			Output: []*onnxpb.ValueInfoProto{sgVI("s2", onnxFloat)},
		}))
	}
	return proto.Marshal(&onnxpb.ModelProto{
		IrVersion: proto.Int64(10),
		OpsetImport: []*onnxpb.OperatorSetIdProto{
			{Domain: proto.String(""), Version: proto.Int64(26)},
			{Domain: proto.String(DomainPreview), Version: proto.Int64(1)},
		},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("flex"),
			Initializer: []*onnxpb.TensorProto{sgFloatInit("z", nil, 0)},
			Input:       []*onnxpb.ValueInfoProto{sgVI("q", onnxFloat), sgVI("k", onnxFloat), sgVI("v", onnxFloat)},
			Node:        []*onnxpb.NodeProto{node},
			Output:      []*onnxpb.ValueInfoProto{sgVI("y", onnxFloat)},
		},
	})
}

func TestFlexAttention(t *testing.T) {
	q := sgF32([]int64{1, 1, 1, 2}, 1, 0)
	k := sgF32([]int64{1, 1, 2, 2}, 2, 0, 0, 0)
	v := sgF32([]int64{1, 1, 2, 2}, 10, 0, 0, 10)
	// Scores: [2, 0] / sqrt(2); softmax weights w0, w1 on V's rows.
	w0 := 1 / (1 + math.Exp(-2/math.Sqrt2))
	for _, tt := range []struct {
		name     string
		scoreMod bool
		want     [2]float64
	}{
		{"plain", false, [2]float64{10 * w0, 10 * (1 - w0)}},
		{"score_mod zeroes the scores", true, [2]float64{5, 5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := flexModel(tt.scoreMod)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data, "", Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			out, err := m.Run(context.Background(), []*Value{q, k, v})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			y := out[0].Float32s()
			if math.Abs(float64(y[0])-tt.want[0]) > 1e-5 || math.Abs(float64(y[1])-tt.want[1]) > 1e-5 {
				t.Errorf("FlexAttention = %v, want %v", y, tt.want)
			}
			if _, err := m.Run(context.Background(), []*Value{q, sgF32([]int64{1, 1, 2, 3}, make([]float32, 6)...), v}); !errors.Is(err, ErrInvalidInput) {
				t.Errorf("FlexAttention(K of another head size) error = %v, want ErrInvalidInput", err)
			}
		})
	}
}
