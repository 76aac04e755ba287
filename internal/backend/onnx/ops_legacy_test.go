package onnx

import (
	"errors"
	"reflect"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

func TestLegacyPowAndGemm(t *testing.T) {
	// Pow-1 with broadcast=1, axis=0: B [2] aligns with A's first axis.
	attrs := NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("broadcast", 1), sgIntAttr("axis", 0)})
	out, err := runOp(t, "Pow", 6, attrs, sgF32([]int64{2, 2}, 2, 2, 3, 3), sgF32([]int64{2}, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := out.Float32s(), []float32{4, 4, 27, 27}; !reflect.DeepEqual(got, want) {
		t.Errorf("Pow(axis=0) = %v, want %v", got, want)
	}
	if _, err := runOp(t, "Pow", 6, nil, sgF32([]int64{2, 2}, 2, 2, 3, 3), sgF32([]int64{2}, 2, 3)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Pow(broadcast=0, shapes differ) error = %v, want ErrInvalidInput", err)
	}
	a, b := sgF32([]int64{1, 2}, 1, 2), sgF32([]int64{2, 1}, 3, 4)
	if _, err := runOp(t, "Gemm", 6, nil, a, b, sgF32([]int64{1}, 1)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Gemm-6(broadcast=0, C [1]) error = %v, want ErrInvalidInput", err)
	}
	out, err = runOp(t, "Gemm", 6, NewAttrs([]*onnxpb.AttributeProto{sgIntAttr("broadcast", 1)}), a, b, sgF32([]int64{1}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Float32s(); !reflect.DeepEqual(got, []float32{12}) {
		t.Errorf("Gemm-6(broadcast=1) = %v, want [12]", got)
	}
}
