package onnx

import (
	"errors"
	"math"
	"testing"
)

func TestSwiGLU(t *testing.T) {
	out, err := runOp(t, "SwiGLU", 28, nil, sgF32([]int64{2}, 0, 2), sgF32([]int64{2}, 5, 3))
	if err != nil {
		t.Fatal(err)
	}
	want := 2 / (1 + math.Exp(-2)) * 3
	if got := out.Float32s(); got[0] != 0 || math.Abs(float64(got[1])-want) > 1e-6 {
		t.Errorf("SwiGLU = %v, want [0 %v]", got, want)
	}
	if _, err := runOp(t, "SwiGLU", 28, nil, sgF32([]int64{2}, 0, 2), sgF32([]int64{1}, 5)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("SwiGLU of mismatched shapes: error = %v, want ErrInvalidInput", err)
	}
}
