package gateway

import (
	"math"
	"testing"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

func TestCompareOutputs(t *testing.T) {
	for _, tc := range []struct {
		name, a, b string
		diff       float64 // NaN: none comparable
		same       bool
	}{
		{"equal", `{"model_version":"1","outputs":[{"name":"p","data":[0.5,1]}]}`, `{"model_version":"2","outputs":[{"name":"p","data":[0.5,1]}]}`, 0, true},
		{"within tolerance", `{"outputs":[{"data":[1]}]}`, `{"outputs":[{"data":[1.0000001]}]}`, 1e-7, true},
		{"different numbers", `{"outputs":[{"data":[1,2]}]}`, `{"outputs":[{"data":[1,2.5]}]}`, 0.5, false},
		{"different names", `{"outputs":[{"name":"a","data":[1]}]}`, `{"outputs":[{"name":"b","data":[1]}]}`, 0, false},
		{"different shapes", `{"outputs":[{"data":[1]}]}`, `{"outputs":[{"data":[1,2]}]}`, math.NaN(), false},
		{"V1 predictions", `{"predictions":[0,2]}`, `{"predictions":[0,1]}`, 1, false},
		{"not JSON", `abc`, `abc`, math.NaN(), true},
	} {
		diff, same := compareOutputs([]byte(tc.a), []byte(tc.b))
		okDiff := (math.IsNaN(diff) && math.IsNaN(tc.diff)) || math.Abs(diff-tc.diff) < 1e-9
		if !okDiff || same != tc.same {
			t.Errorf("%s: compareOutputs = %v, %v; want %v, %v", tc.name, diff, same, tc.diff, tc.same)
		}
	}
}

func TestCompareInfer(t *testing.T) {
	resp := func(version string, v ...float32) *inferencepb.ModelInferResponse {
		return &inferencepb.ModelInferResponse{ModelName: "m", ModelVersion: version, Outputs: []*inferencepb.ModelInferResponse_InferOutputTensor{{
			Name: "p", Datatype: "FP32", Shape: []int64{int64(len(v))}, Contents: &inferencepb.InferTensorContents{Fp32Contents: v},
		}}}
	}
	if d, same := compareInfer(resp("1", 0.5, 1), resp("2", 0.5, 1)); d != 0 || !same {
		t.Errorf("equal outputs: %v, %v", d, same)
	}
	if d, same := compareInfer(resp("1", 0.5, 1), resp("1", 0.5, 0.25)); d != 0.75 || same {
		t.Errorf("different outputs: %v, %v; want 0.75, false", d, same)
	}
}
