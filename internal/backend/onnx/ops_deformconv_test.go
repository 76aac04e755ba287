package onnx

import (
	"errors"
	"reflect"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

func TestDeformConv(t *testing.T) {
	// X 1x1x3x3, W 1x1x2x2 of ones: output 2x2 of window sums.
	x := sgF32([]int64{1, 1, 3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	w := sgF32([]int64{1, 1, 2, 2}, 1, 1, 1, 1)
	zeros := sgF32([]int64{1, 8, 2, 2}, make([]float32, 32)...)
	out, err := runOp(t, "DeformConv", 22, nil, x, w, zeros)
	if err != nil {
		t.Fatal(err)
	}
	conv, err := runOp(t, "Conv", 11, nil, x, w)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out.Float32s(), conv.Float32s()) || !reflect.DeepEqual(out.Tensor.Shape, []int64{1, 1, 2, 2}) {
		t.Errorf("DeformConv(zero offsets) = %v %v, want Conv's %v", out.Tensor.Shape, out.Float32s(), conv.Float32s())
	}
	// Shift every tap half a pixel right (dx = 0.5) and mask the taps to
	// 0.5 with a bias of 1: each sample averages two neighbours.
	shift := make([]float32, 32)
	for k := range 4 {
		for p := range 4 {
			shift[(2*k+1)*4+p] = 0.5
		}
	}
	half := make([]float32, 16)
	for i := range half {
		half[i] = 0.5
	}
	out, err = runOp(t, "DeformConv", 22, nil, x, w, sgF32([]int64{1, 8, 2, 2}, shift...), sgF32([]int64{1}, 1), sgF32([]int64{1, 4, 2, 2}, half...))
	if err != nil {
		t.Fatal(err)
	}
	// Output (0,0) samples (0,0.5)=1.5, (0,1.5)=2.5, (1,0.5)=4.5, (1,1.5)=5.5:
	// 0.5*14 + 1 = 8. Output (0,1) reads column 2.5, half outside: (0,2.5)
	// = 0.5*3 = 1.5 and (1,2.5) = 3: 0.5*(2.5+1.5+5.5+3) + 1 = 7.25.
	if got := out.Float32s(); got[0] != 8 || got[1] != 7.25 {
		t.Errorf("DeformConv(shifted, masked) = %v, want [8 7.25 ...]", got)
	}
	if _, err := runOp(t, "DeformConv", 22, nil, x, w, sgF32([]int64{1, 8, 1, 1}, make([]float32, 8)...)); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("DeformConv(offset of the wrong shape) error = %v, want ErrInvalidInput", err)
	}
	if _, err := runOp(t, "DeformConv", 22, NewAttrs([]*onnxpb.AttributeProto{sgIntsAttr("strides", 1, 1, 1)}), x, w, zeros); !errors.Is(err, ErrUnsupported) {
		t.Errorf("DeformConv(3-D strides) error = %v, want ErrUnsupported", err)
	}
}
