package onnx

import (
	"math"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// closeTo reports whether got and want agree within ONNX's tolerances.
func closeTo(got, want []float32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-5+1e-3*math.Abs(float64(want[i])) {
			return false
		}
	}
	return true
}

func TestNNOps(t *testing.T) {
	img := f32([]int64{1, 1, 3, 3}, 1, 2, 3, 4, 5, 6, 7, 8, 9)
	tests := []struct {
		name      string
		op        string
		version   int64
		attrs     *Attrs
		in        []*Value
		wantShape []int64
		want      []float32
	}{
		{"leaky relu", "LeakyRelu", 16, attrs(floatAttr("alpha", 0.1)), []*Value{f32([]int64{2}, -10, 3)}, []int64{2}, []float32{-1, 3}},
		{"gelu tanh", "Gelu", 20, attrs(stringAttr("approximate", "tanh")), []*Value{f32([]int64{2}, 0, 1)}, []int64{2}, []float32{0, 0.841192}},
		{"prelu channel slope", "PRelu", 16, nil, []*Value{f32([]int64{2, 2}, -1, -1, 2, -2), f32([]int64{2}, 0.5, 2)},
			[]int64{2, 2}, []float32{-0.5, -2, 2, -4}},
		{"hardmax opset 13", "Hardmax", 13, nil, []*Value{f32([]int64{2, 2}, 1, 3, 5, 2)}, []int64{2, 2}, []float32{0, 1, 1, 0}},
		{"conv same upper stride 2", "Conv", 11, attrs(stringAttr("auto_pad", "SAME_UPPER"), intsAttr("strides", 2, 2)),
			[]*Value{img, f32([]int64{1, 1, 2, 2}, 1, 1, 1, 1)}, []int64{1, 1, 2, 2}, []float32{12, 9, 15, 9}},
		{"conv groups with bias", "Conv", 11, attrs(intAttr("group", 2)),
			[]*Value{f32([]int64{1, 2, 1, 2}, 1, 2, 3, 4), f32([]int64{2, 1, 1, 1}, 10, 100), f32([]int64{2}, 1, 2)},
			[]int64{1, 2, 1, 2}, []float32{11, 21, 302, 402}},
		{"conv transpose stride 2", "ConvTranspose", 11, attrs(intsAttr("strides", 2)),
			[]*Value{f32([]int64{1, 1, 2}, 1, 2), f32([]int64{1, 1, 2}, 1, 10)}, []int64{1, 1, 4}, []float32{1, 10, 2, 20}},
		{"max pool ceil", "MaxPool", 12, attrs(intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2), intAttr("ceil_mode", 1)),
			[]*Value{img}, []int64{1, 1, 2, 2}, []float32{5, 6, 8, 9}},
		{"average pool pads excluded", "AveragePool", 11, attrs(intsAttr("kernel_shape", 2, 2), intsAttr("pads", 1, 1, 0, 0)),
			[]*Value{img}, []int64{1, 1, 3, 3}, []float32{1, 1.5, 2.5, 2.5, 3, 4, 5.5, 6, 7}},
		{"average pool pads included", "AveragePool", 11, attrs(intsAttr("kernel_shape", 2, 2), intsAttr("pads", 1, 1, 0, 0), intAttr("count_include_pad", 1)),
			[]*Value{img}, []int64{1, 1, 3, 3}, []float32{0.25, 0.75, 1.25, 1.25, 3, 4, 2.75, 6, 7}},
		{"global average", "GlobalAveragePool", 1, nil, []*Value{img}, []int64{1, 1, 1, 1}, []float32{5}},
		{"layer norm last axis", "LayerNormalization", 17, nil,
			[]*Value{f32([]int64{2, 2}, 1, 3, 2, 2), f32([]int64{2}, 1, 2), f32([]int64{2}, 0, 1)},
			[]int64{2, 2}, []float32{-0.999995, 2.99999, 0, 1}},
		{"batch norm inference", "BatchNormalization", 15, nil,
			[]*Value{f32([]int64{1, 2, 1, 1}, 3, 3), f32([]int64{2}, 1, 2), f32([]int64{2}, 0, 1), f32([]int64{2}, 1, 3), f32([]int64{2}, 4, 1)},
			[]int64{1, 2, 1, 1}, []float32{0.999999, 1}},
		{"trilu lower k", "Trilu", 14, attrs(intAttr("upper", 0)), []*Value{img, i64(nil, -1)},
			[]int64{1, 1, 3, 3}, []float32{0, 0, 0, 4, 0, 0, 7, 8, 0}},
		{"cumsum exclusive reverse", "CumSum", 14, attrs(intAttr("exclusive", 1), intAttr("reverse", 1)),
			[]*Value{f32([]int64{3}, 1, 2, 3), i64(nil, 0)}, []int64{3}, []float32{5, 3, 0}},
		{"pad reflect", "Pad", 13, attrs(stringAttr("mode", "reflect")), []*Value{f32([]int64{3}, 1, 2, 3), i64([]int64{2}, 2, 1)},
			[]int64{6}, []float32{3, 2, 1, 2, 3, 2}},
		{"pad wrap", "Pad", 19, attrs(stringAttr("mode", "wrap")), []*Value{f32([]int64{3}, 1, 2, 3), i64([]int64{2}, 1, 1)},
			[]int64{5}, []float32{3, 1, 2, 3, 1}},
		{"einsum matmul", "Einsum", 12, attrs(stringAttr("equation", "ij,jk->ik")),
			[]*Value{f32([]int64{1, 2}, 1, 2), f32([]int64{2, 1}, 3, 4)}, []int64{1, 1}, []float32{11}},
		{"resize nearest upsample", "Resize", 19, nil,
			[]*Value{f32([]int64{1, 1, 1, 2}, 1, 2), new(Value), f32([]int64{4}, 1, 1, 1, 2)},
			[]int64{1, 1, 1, 4}, []float32{1, 1, 2, 2}},
		{"resize linear align corners sizes", "Resize", 13, attrs(stringAttr("mode", "linear"), stringAttr("coordinate_transformation_mode", "align_corners")),
			[]*Value{f32([]int64{1, 1, 1, 2}, 0, 3), new(Value), new(Value), i64([]int64{4}, 1, 1, 1, 4)},
			[]int64{1, 1, 1, 4}, []float32{0, 1, 2, 3}},
		{"upsample opset 9", "Upsample", 9, nil,
			[]*Value{f32([]int64{1, 2}, 1, 2), f32([]int64{2}, 1, 2)}, []int64{1, 4}, []float32{1, 1, 2, 2}},
		{"nll loss mean with weights", "NegativeLogLikelihoodLoss", 13, nil,
			[]*Value{f32([]int64{2, 2}, -1, -2, -3, -4), i64([]int64{2}, 1, 0), f32([]int64{2}, 1, 3)},
			nil, []float32{2.25}},
		{"softmax cross entropy sum", "SoftmaxCrossEntropyLoss", 13, attrs(stringAttr("reduction", "sum")),
			[]*Value{f32([]int64{1, 2}, 0, 0), i64([]int64{1}, 1)}, nil, []float32{0.693147}},
		{"rms norm", "RMSNormalization", 23, nil,
			[]*Value{f32([]int64{2}, 3, 4), f32([]int64{2}, 1, 2)}, []int64{2}, []float32{0.848528, 2.262742}},
		{"attention uniform", "Attention", 23, nil,
			[]*Value{f32([]int64{1, 1, 1, 1}, 1), f32([]int64{1, 1, 2, 1}, 0, 0), f32([]int64{1, 1, 2, 1}, 1, 3)},
			[]int64{1, 1, 1, 1}, []float32{2}},
		{"attention causal", "Attention", 23, attrs(intAttr("is_causal", 1)),
			[]*Value{f32([]int64{1, 1, 1, 1}, 1), f32([]int64{1, 1, 2, 1}, 0, 0), f32([]int64{1, 1, 2, 1}, 1, 3)},
			[]int64{1, 1, 1, 1}, []float32{1}},
		{"attention boolean mask", "Attention", 23, nil,
			[]*Value{f32([]int64{1, 1, 1, 1}, 1), f32([]int64{1, 1, 2, 1}, 0, 0), f32([]int64{1, 1, 2, 1}, 1, 3),
				tv(tensor.Bool, []int64{1, 2}, []bool{false, true})},
			[]int64{1, 1, 1, 1}, []float32{3}},
		{"det 2x2", "Det", 22, nil, []*Value{f32([]int64{2, 2}, 1, 2, 3, 4)}, nil, []float32{-2}},
		{"center crop and pad", "CenterCropPad", 18, nil, []*Value{f32([]int64{3, 1}, 1, 2, 3), i64([]int64{2}, 1, 3)},
			[]int64{1, 3}, []float32{0, 2, 0}},
		{"hann window periodic", "HannWindow", 17, nil, []*Value{i64(nil, 4)}, []int64{4}, []float32{0, 0.5, 1, 0.5}},
		{"unique sorted", "Unique", 11, nil, []*Value{f32([]int64{4}, 3, 1, 3, 2)}, []int64{3}, []float32{1, 2, 3}},
		{"grid sample identity corners", "GridSample", 22, attrs(intAttr("align_corners", 1)),
			[]*Value{f32([]int64{1, 1, 2, 2}, 1, 2, 3, 4), f32([]int64{1, 1, 2, 2}, -1, -1, 1, 1)},
			[]int64{1, 1, 1, 2}, []float32{1, 4}},
		{"affine grid identity", "AffineGrid", 20, attrs(intAttr("align_corners", 1)),
			[]*Value{f32([]int64{1, 2, 3}, 1, 0, 0, 0, 1, 0), i64([]int64{4}, 1, 1, 1, 2)},
			[]int64{1, 1, 2, 2}, []float32{-1, 0, 1, 0}},
		{"rotary quarter turn", "RotaryEmbedding", 23, nil,
			[]*Value{f32([]int64{1, 1, 1, 2}, 1, 0), f32([]int64{1, 1, 1}, 0), f32([]int64{1, 1, 1}, 1)},
			[]int64{1, 1, 1, 2}, []float32{0, 1}},
		{"depth to space crd", "DepthToSpace", 13, attrs(intAttr("blocksize", 2), stringAttr("mode", "CRD")),
			[]*Value{f32([]int64{1, 4, 1, 1}, 1, 2, 3, 4)}, []int64{1, 1, 2, 2}, []float32{1, 2, 3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runOp(t, tt.op, tt.version, tt.attrs, tt.in...)
			if err != nil {
				t.Fatalf("%s: %v", tt.op, err)
			}
			if len(got.Tensor.Shape) != len(tt.wantShape) || numel(got.Tensor.Shape) != numel(tt.wantShape) || !closeTo(got.Float32s(), tt.want) {
				t.Errorf("%s = %v %v, want %v %v", tt.op, got.Tensor.Shape, got.Float32s(), tt.wantShape, tt.want)
			}
		})
	}
}

func TestResizeSteadyStateAllocs(t *testing.T) {
	op, _ := DefaultOps().Lookup(DomainONNX, "Resize", 19)
	k, err := op.New(&Node{Version: 19, Attrs: attrs(stringAttr("mode", "cubic")), NumInputs: 3, NumOutputs: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := []*Value{f32([]int64{1, 2, 4, 4}, make([]float32, 32)...), new(Value), f32([]int64{4}, 1, 1, 1.5, 0.5)}
	tmp, out := new(Scratch), []*Value{new(Value)}
	allocs := steadyAllocs(20, func() {
		if err := k(tmp, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Resize allocates %v times per run, want 0", allocs)
	}
}

func TestConvSteadyStateAllocs(t *testing.T) {
	op, _ := DefaultOps().Lookup(DomainONNX, "Conv", 11)
	k, err := op.New(&Node{Version: 11, Attrs: attrs(intsAttr("pads", 1, 1, 1, 1)), NumInputs: 2, NumOutputs: 1})
	if err != nil {
		t.Fatal(err)
	}
	in := []*Value{f32([]int64{1, 3, 8, 8}, make([]float32, 192)...), f32([]int64{4, 3, 3, 3}, make([]float32, 108)...)}
	tmp, out := new(Scratch), []*Value{new(Value)}
	allocs := steadyAllocs(20, func() {
		if err := k(tmp, in, out); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Conv allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkConv3x3(b *testing.B) {
	op, _ := DefaultOps().Lookup(DomainONNX, "Conv", 11)
	k, _ := op.New(&Node{Version: 11, Attrs: attrs(intsAttr("pads", 1, 1, 1, 1)), NumInputs: 2, NumOutputs: 1})
	in := []*Value{f32([]int64{1, 64, 56, 56}, make([]float32, 64*56*56)...), f32([]int64{64, 64, 3, 3}, make([]float32, 64*64*9)...)}
	tmp, out := new(Scratch), []*Value{new(Value)}
	b.ReportAllocs()
	for b.Loop() {
		if err := k(tmp, in, out); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNonMaxSuppression(t *testing.T) {
	boxes := f32([]int64{1, 3, 4}, 0, 0, 1, 1, 0, 0.1, 1, 1.1, 0, 2, 1, 3)
	scores := f32([]int64{1, 1, 3}, 0.9, 0.8, 0.7)
	got, err := runOp(t, "NonMaxSuppression", 11, nil, boxes, scores, i64([]int64{1}, 3), f32([]int64{1}, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 0, 0, 0, 0, 2}
	if !closeInts(got.Int64s(), want) {
		t.Errorf("NonMaxSuppression = %v, want %v", got.Int64s(), want)
	}
}

func closeInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRNNBidirectional(t *testing.T) {
	x := f32([]int64{2, 1, 1}, 1, 2)
	w := f32([]int64{2, 1, 1}, 1, 1)
	r := f32([]int64{2, 1, 1}, 0.5, 0)
	got, err := runOp(t, "RNN", 14, attrs(stringAttr("direction", "bidirectional"), intAttr("hidden_size", 1)), x, w, r)
	if err != nil {
		t.Fatal(err)
	}
	f1 := math.Tanh(1)
	f2 := math.Tanh(2 + 0.5*f1)
	want := []float32{float32(f1), float32(math.Tanh(1)), float32(f2), float32(math.Tanh(2))}
	if got.Tensor.Shape[0] != 2 || got.Tensor.Shape[1] != 2 || !closeTo(got.Float32s(), want) {
		t.Errorf("RNN = %v %v, want [2 2 1 1] %v", got.Tensor.Shape, got.Float32s(), want)
	}
}

func TestConvFP16(t *testing.T) {
	h := func(shape []int64, v ...float32) *Value {
		d := make([]uint16, len(v))
		for i, f := range v {
			d[i] = tensor.Float32ToFloat16(f)
		}
		return tv(tensor.FP16, shape, d)
	}
	got, err := runOp(t, "Conv", 11, nil, h([]int64{1, 1, 1, 2}, 1, 2), h([]int64{1, 1, 1, 1}, 2), h([]int64{1}, 0.5))
	if err != nil {
		t.Fatal(err)
	}
	d := got.Tensor.Data.([]uint16)
	if got.Tensor.DType != tensor.FP16 || tensor.Float16ToFloat32(d[0]) != 2.5 || tensor.Float16ToFloat32(d[1]) != 4.5 {
		t.Errorf("Conv FP16 = %v %v, want FP16 [2.5 4.5]", got.Tensor.DType, d)
	}
}
