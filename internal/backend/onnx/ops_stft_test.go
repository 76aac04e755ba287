package onnx

import (
	"errors"
	"math"
	"testing"
)

func TestSTFT(t *testing.T) {
	// One frame of cos(2*pi*j/4): bins 0, 1, 2 of a 4-point DFT are 0, 2, 0.
	sig := sgF32([]int64{1, 4, 1}, 1, 0, -1, 0)
	out, err := runOp(t, "STFT", 17, nil, sig, i64s(nil, 4), &Value{}, i64s(nil, 4))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 0, 2, 0, 0, 0}
	got := out.Float32s()
	if len(got) != len(want) {
		t.Fatalf("STFT shape %v, want [1 1 3 2]", out.Tensor.Shape)
	}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-6 {
			t.Fatalf("STFT = %v, want %v", got, want)
		}
	}
	for _, tt := range []struct {
		name string
		in   []*Value
	}{
		{"frame longer than the signal", []*Value{sig, i64s(nil, 1), &Value{}, i64s(nil, 8)}},
		{"no frame length", []*Value{sig, i64s(nil, 1)}},
		{"zero step", []*Value{sig, i64s(nil, 0), &Value{}, i64s(nil, 2)}},
		{"window and length disagree", []*Value{sig, i64s(nil, 1), sgF32([]int64{2}, 1, 1), i64s(nil, 3)}},
	} {
		if _, err := runOp(t, "STFT", 17, nil, tt.in...); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("STFT(%s) error = %v, want ErrInvalidInput", tt.name, err)
		}
	}
}

func TestMelWeightMatrix(t *testing.T) {
	out, err := runOp(t, "MelWeightMatrix", 17, nil, i64s(nil, 8), i64s(nil, 16), i64s(nil, 8192), sgF32(nil, 0), sgF32(nil, 4096))
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Tensor.Shape; len(got) != 2 || got[0] != 9 || got[1] != 8 {
		t.Errorf("MelWeightMatrix shape = %v, want [9 8]", got)
	}
	for i, v := range out.Float32s() {
		if v < 0 || v > 1 {
			t.Errorf("MelWeightMatrix element %d = %v, want a weight in [0, 1]", i, v)
		}
	}
	if _, err := runOp(t, "MelWeightMatrix", 17, nil, i64s(nil, 0), i64s(nil, 16), i64s(nil, 8192), sgF32(nil, 0), sgF32(nil, 4096)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("MelWeightMatrix(0 bins) error = %v, want ErrInvalidInput", err)
	}
}
