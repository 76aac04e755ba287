package onnx

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// TestShapeInferenceFixtures loads the scikit-learn fixtures with their
// declared output shapes removed: inference alone must give the shapes the
// metadata endpoint reports.
func TestShapeInferenceFixtures(t *testing.T) {
	tests := []struct {
		name string
		want backend.Signature
	}{
		{"logreg_iris", sig(spec("X", tensor.FP32, -1, 4), spec("label", tensor.Int64, -1), spec("probabilities", tensor.FP32, -1, 3))},
		{"forest_iris", sig(spec("X", tensor.FP32, -1, 4), spec("label", tensor.Int64, -1), spec("probabilities", tensor.FP32, -1, 3))},
		{"boosting_cancer", sig(spec("X", tensor.FP32, -1, 30), spec("label", tensor.Int64, -1), spec("probabilities", tensor.FP32, -1, 2))},
		{"svm_iris", sig(spec("X", tensor.FP32, -1, 4), spec("label", tensor.Int64, -1), spec("probabilities", tensor.FP32, -1, 3))},
		{"mlp_iris", sig(spec("X", tensor.FP32, -1, 4), spec("label", tensor.Int64, -1), spec("probabilities", tensor.FP32, -1, 3))},
		{"forest_diabetes", sig(spec("X", tensor.FP32, -1, 10), spec("predictions", tensor.FP32, -1, 1))},
		{"scaler_linear_diabetes", sig(spec("X", tensor.FP32, -1, 10), spec("predictions", tensor.FP32, -1, 1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			for _, strip := range []bool{false, true} {
				if strip {
					data = stripShapes(t, data, false)
				}
				m, err := Parse(data, "", Options{})
				if err != nil {
					t.Fatal(err)
				}
				if got := m.Signature(); !reflect.DeepEqual(got, tt.want) {
					t.Errorf("Signature() (output shapes stripped: %v) = %v, want %v", strip, got, tt.want)
				}
			}
		})
	}
}

func spec(name string, dt tensor.DType, shape ...int64) backend.TensorSpec {
	return backend.TensorSpec{Name: name, DType: dt, Shape: shape}
}

// sig makes a signature of one input and the given outputs.
func sig(in backend.TensorSpec, outs ...backend.TensorSpec) backend.Signature {
	return backend.Signature{Inputs: []backend.TensorSpec{in}, Outputs: outs}
}

// graphBuilder writes small ONNX graphs for the tests.
type graphBuilder struct {
	g onnxpb.GraphProto
}

// input declares a float input; a negative dimension is symbolic.
func (b *graphBuilder) input(name string, dims ...int64) *graphBuilder {
	b.g.Input = append(b.g.Input, valueInfo(name, onnxFloat, dims))
	return b
}

// output declares an output; dims nil leaves the shape out.
func (b *graphBuilder) output(name string, elem int32, dims []int64) *graphBuilder {
	vi := valueInfo(name, elem, dims)
	if dims == nil {
		vi.Type.GetTensorType().Shape = nil
	}
	b.g.Output = append(b.g.Output, vi)
	return b
}

func (b *graphBuilder) node(typ string, in, out []string, attrs ...*onnxpb.AttributeProto) *graphBuilder {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{Name: proto.String(out[0] + "_node"), OpType: proto.String(typ), Input: in, Output: out, Attribute: attrs})
	return b
}

func (b *graphBuilder) floats(name string, dims []int64) *graphBuilder {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	dt := int32(onnxFloat)
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), DataType: &dt, Dims: dims, FloatData: make([]float32, n)})
	return b
}

func (b *graphBuilder) ints(name string, data ...int64) *graphBuilder {
	dt := int32(onnxInt64)
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), DataType: &dt, Dims: []int64{int64(len(data))}, Int64Data: data})
	return b
}

func (b *graphBuilder) parse(t testing.TB) (*Model, error) {
	t.Helper()
	return Parse(b.marshal(t), "", Options{})
}

func (b *graphBuilder) marshal(t testing.TB) []byte {
	t.Helper()
	data, err := proto.Marshal(&onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: &b.g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(17)}}})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func valueInfo(name string, elem int32, dims []int64) *onnxpb.ValueInfoProto {
	sh := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		if d < 0 {
			sh.Dim = append(sh.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "N"}})
		} else {
			sh.Dim = append(sh.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
		}
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(elem), Shape: sh}}}}
}

// inferenceCase is a small graph whose outputs declare no shape, and the
// signature inference must give it.
type inferenceCase struct {
	name    string
	b       *graphBuilder
	wantIn  [][]int64
	wantOut [][]int64
}

// inferenceCases are the graphs of TestShapeInferenceGraphs, also the
// bases FuzzShapeInference mutates.
func inferenceCases() []inferenceCase {
	return []inferenceCase{{
		name: "MatMul fixes the input's inner dimension",
		b: (&graphBuilder{}).input("X", -1, -1).floats("W", []int64{4, 3}).
			node("MatMul", []string{"X", "W"}, []string{"H"}).node("Relu", []string{"H"}, []string{"Y"}).
			output("Y", onnxFloat, nil),
		wantIn:  [][]int64{{-1, 4}},
		wantOut: [][]int64{{-1, 3}},
	}, {
		name: "Shape, Gather, Unsqueeze, Concat, Reshape keep the batch",
		b: (&graphBuilder{}).input("X", -1, 4, 2).ints("i0", 0).ints("a0", 0).ints("rest", 8).
			node("Shape", []string{"X"}, []string{"s"}).
			node("Gather", []string{"s", "i0"}, []string{"n"}).
			node("Concat", []string{"n", "rest"}, []string{"target"}, intAttr("axis", 0)).
			node("Reshape", []string{"X", "target"}, []string{"Y"}).
			output("Y", onnxFloat, nil),
		wantIn:  [][]int64{{-1, 4, 2}},
		wantOut: [][]int64{{-1, 8}},
	}, {
		name: "Reshape to -1 solves for the batch symbol",
		b: (&graphBuilder{}).input("X", -1, 4, 2).ints("target", -1, 8).
			node("Reshape", []string{"X", "target"}, []string{"Y"}).
			node("Reshape", []string{"X", "target2"}, []string{"Z"}).ints("target2", 2, -1).
			output("Y", onnxFloat, nil).output("Z", onnxFloat, nil),
		wantIn:  [][]int64{{-1, 4, 2}},
		wantOut: [][]int64{{-1, 8}, {2, -1}},
	}, {
		name: "Flatten and Gemm",
		b: (&graphBuilder{}).input("X", -1, 2, 2).floats("B", []int64{3, 4}).floats("C", []int64{3}).
			node("Flatten", []string{"X"}, []string{"F"}).
			node("Gemm", []string{"F", "B", "C"}, []string{"Y"}, intAttr("transB", 1)).
			output("Y", onnxFloat, nil),
		wantIn:  [][]int64{{-1, 2, 2}},
		wantOut: [][]int64{{-1, 3}},
	}, {
		name: "Conv, MaxPool, GlobalAveragePool",
		b: (&graphBuilder{}).input("X", -1, 1, 8, 8).floats("W", []int64{2, 1, 3, 3}).
			node("Conv", []string{"X", "W"}, []string{"C"}, intsAttr("pads", 1, 1, 1, 1)).
			node("MaxPool", []string{"C"}, []string{"P"}, intsAttr("kernel_shape", 2, 2), intsAttr("strides", 2, 2)).
			node("GlobalAveragePool", []string{"P"}, []string{"G"}).
			output("P", onnxFloat, nil).output("G", onnxFloat, nil),
		wantIn:  [][]int64{{-1, 1, 8, 8}},
		wantOut: [][]int64{{-1, 2, 4, 4}, {-1, 2, 1, 1}},
	}, {
		name: "reductions, Transpose, Squeeze, Unsqueeze, Slice, ArgMax",
		b: (&graphBuilder{}).input("X", -1, 3, 5).ints("ax", 2).ints("st", 1).ints("en", 100).ints("sax", 1).
			node("ReduceSum", []string{"X", "ax"}, []string{"R"}, intAttr("keepdims", 0)).
			node("Transpose", []string{"X"}, []string{"T"}, intsAttr("perm", 2, 0, 1)).
			node("Unsqueeze", []string{"R", "sax"}, []string{"U"}).
			node("Squeeze", []string{"U", "sax"}, []string{"S"}).
			node("Slice", []string{"X", "st", "en", "sax"}, []string{"L"}).
			node("ArgMax", []string{"X"}, []string{"A"}, intAttr("axis", 2)).
			output("R", onnxFloat, nil).output("T", onnxFloat, nil).output("S", onnxFloat, nil).
			output("L", onnxFloat, nil).output("A", onnxInt64, nil),
		wantIn:  [][]int64{{-1, 3, 5}},
		wantOut: [][]int64{{-1, 3}, {5, -1, 3}, {-1, 3}, {-1, 2, 5}, {-1, 3, 1}},
	}, {
		name: "broadcasting with a constant row",
		b: (&graphBuilder{}).input("X", -1, 1).floats("b", []int64{1, 6}).
			node("Add", []string{"X", "b"}, []string{"Y"}).
			node("Less", []string{"X", "b"}, []string{"Z"}).
			output("Y", onnxFloat, nil).output("Z", onnxBool, nil),
		wantIn:  [][]int64{{-1, 1}},
		wantOut: [][]int64{{-1, 6}, {-1, 6}},
	}}
}

// TestShapeInferenceGraphs checks the signature inference gives small
// graphs whose outputs declare no shape.
func TestShapeInferenceGraphs(t *testing.T) {
	for _, tt := range inferenceCases() {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.b.parse(t)
			if err != nil {
				t.Fatal(err)
			}
			var gotIn, gotOut [][]int64
			for _, s := range m.Signature().Inputs {
				gotIn = append(gotIn, s.Shape)
			}
			for _, s := range m.Signature().Outputs {
				gotOut = append(gotOut, s.Shape)
			}
			if !reflect.DeepEqual(gotIn, tt.wantIn) {
				t.Errorf("input shapes = %v, want %v", gotIn, tt.wantIn)
			}
			if !reflect.DeepEqual(gotOut, tt.wantOut) {
				t.Errorf("output shapes = %v, want %v", gotOut, tt.wantOut)
			}
		})
	}
}

// TestShapeInferenceRejects: graphs whose declarations contradict what
// inference finds, or whose nodes can never fit, fail to load with an
// error naming the node.
func TestShapeInferenceRejects(t *testing.T) {
	tests := []struct {
		name, node string
		b          *graphBuilder
	}{{
		name: "declared output width",
		node: "Y_node",
		b: (&graphBuilder{}).input("X", -1, 4).floats("W", []int64{4, 3}).
			node("MatMul", []string{"X", "W"}, []string{"Y"}).output("Y", onnxFloat, []int64{-1, 5}),
	}, {
		name: "declared output rank",
		node: "Y_node",
		b: (&graphBuilder{}).input("X", -1, 4).
			node("Relu", []string{"X"}, []string{"Y"}).output("Y", onnxFloat, []int64{-1}),
	}, {
		name: "declared element type",
		node: "Y_node",
		b: (&graphBuilder{}).input("X", -1, 4).
			node("Cast", []string{"X"}, []string{"Y"}, intAttr("to", onnxInt64)).output("Y", onnxFloat, []int64{-1, 4}),
	}, {
		name: "MatMul inner dimensions",
		node: "Y_node",
		b: (&graphBuilder{}).input("X", -1, 5).floats("W", []int64{4, 3}).
			node("MatMul", []string{"X", "W"}, []string{"Y"}).output("Y", onnxFloat, nil),
	}, {
		name: "broadcast of 3 and 4",
		node: "Y_node",
		b: (&graphBuilder{}).input("X", -1, 3).floats("b", []int64{4}).
			node("Add", []string{"X", "b"}, []string{"Y"}).output("Y", onnxFloat, nil),
	}, {
		name: "reshape of 12 elements to 5",
		node: "Y_node",
		b: (&graphBuilder{}).input("X", 3, 4).ints("s", 5).
			node("Reshape", []string{"X", "s"}, []string{"Y"}).output("Y", onnxFloat, nil),
	}, {
		name: "declared value_info",
		node: "H_node",
		b: func() *graphBuilder {
			b := (&graphBuilder{}).input("X", -1, 4).floats("W", []int64{4, 3}).
				node("MatMul", []string{"X", "W"}, []string{"H"}).node("Relu", []string{"H"}, []string{"Y"}).
				output("Y", onnxFloat, nil)
			b.g.ValueInfo = append(b.g.ValueInfo, valueInfo("H", onnxFloat, []int64{-1, 2}))
			return b
		}(),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.b.parse(t)
			if !errorsIsInvalid(err) || !strings.Contains(err.Error(), tt.node) {
				t.Errorf("Parse() error = %v, want one wrapping ErrInvalidModel naming %q", err, tt.node)
			}
		})
	}
}

// TestInferRefusesBeforeRunning: a request that cannot fit what inference
// proved about the inputs is refused with backend.ErrInvalidInput by the
// signature check, before any node runs.
func TestInferRefusesBeforeRunning(t *testing.T) {
	matmul, err := (&graphBuilder{}).input("X", -1, -1).floats("W", []int64{4, 3}).
		node("MatMul", []string{"X", "W"}, []string{"Y"}).output("Y", onnxFloat, nil).parse(t)
	if err != nil {
		t.Fatal(err)
	}
	concat, err := (&graphBuilder{}).input("A", -1, 3).input("B", -1, 2).
		node("Concat", []string{"A", "B"}, []string{"Y"}, intAttr("axis", 1)).output("Y", onnxFloat, nil).parse(t)
	if err != nil {
		t.Fatal(err)
	}
	f32 := func(name string, shape ...int64) *tensor.Tensor {
		t, err := tensor.New(name, tensor.FP32, shape)
		if err != nil {
			panic(err)
		}
		return t
	}
	tests := []struct {
		name    string
		m       *Model
		in      []*tensor.Tensor
		wantErr string // "" for success
	}{
		{"MatMul fits", matmul, []*tensor.Tensor{f32("X", 2, 4)}, ""},
		{"MatMul width", matmul, []*tensor.Tensor{f32("X", 2, 5)}, `input "X" has shape [2 5], want [-1 4]`},
		{"Concat fits", concat, []*tensor.Tensor{f32("A", 2, 3), f32("B", 2, 2)}, ""},
		{"Concat rows differ", concat, []*tensor.Tensor{f32("A", 2, 3), f32("B", 3, 2)}, `dimension 0 of the first must equal dimension 0 of the second`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Infer(context.Background(), tt.in)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Infer() = %v, want success", err)
			case tt.wantErr != "" && (!errors.Is(err, backend.ErrInvalidInput) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Infer() = %v, want an error wrapping backend.ErrInvalidInput saying %q", err, tt.wantErr)
			}
		})
	}
}
