package onnx

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
)

// FuzzLoad feeds arbitrary bytes to Parse: a malformed or hostile model
// must give an error, never a panic, and never allocate past the limit
// (here 64 MiB, so that a huge declared tensor fails fast). A model that
// loads must have a signature whose dimensions are sizes or -1. The seeds
// are the fixtures, the crashers found so far (testdata/fuzz) and, when
// the ONNX conformance data lies beside the repository, its small models,
// which use every operator and so every shape function.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.onnx"))
	conf, _ := filepath.Glob(filepath.Join(conformanceDir, "*", "*", "model.onnx"))
	for _, c := range conf {
		if st, err := os.Stat(c); err == nil && st.Size() <= 2048 {
			seeds = append(seeds, c)
		}
	}
	for _, s := range seeds {
		data, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// A model whose initializer claims 2^31 floats with no data.
	dt := int32(onnxFloat)
	huge, _ := proto.Marshal(&onnxpb.ModelProto{
		Graph: &onnxpb.GraphProto{
			Initializer: []*onnxpb.TensorProto{{Name: proto.String("w"), DataType: &dt, Dims: []int64{1 << 16, 1 << 15}}},
			Output:      []*onnxpb.ValueInfoProto{{Name: proto.String("w")}},
		},
	})
	f.Add(huge)
	f.Add([]byte{})
	f.Add([]byte("not a model"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, "", Options{MaxBytes: 64 << 20})
		if err == nil && m == nil {
			t.Fatal("Parse returned neither a model nor an error")
		}
		if err != nil {
			return
		}
		sig := m.Signature()
		for _, s := range append(append([]backend.TensorSpec{}, sig.Inputs...), sig.Outputs...) {
			for _, d := range s.Shape {
				if d < -1 {
					t.Fatalf("%s has shape %v", s.Name, s.Shape)
				}
			}
		}
	})
}

func TestParseRejects(t *testing.T) {
	dt := int32(onnxFloat)
	str := proto.String
	graph := func(g *onnxpb.GraphProto) []byte {
		data, err := proto.Marshal(&onnxpb.ModelProto{Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: proto.Int64(13)}}})
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	x := &onnxpb.ValueInfoProto{Name: str("x")}
	tests := []struct {
		name string
		data []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"no graph", []byte{}},
		{"undefined input", graph(&onnxpb.GraphProto{
			Input:  []*onnxpb.ValueInfoProto{x},
			Node:   []*onnxpb.NodeProto{{OpType: str("Relu"), Input: []string{"nope"}, Output: []string{"y"}}},
			Output: []*onnxpb.ValueInfoProto{{Name: str("y")}},
		})},
		{"cycle", graph(&onnxpb.GraphProto{
			Input: []*onnxpb.ValueInfoProto{x},
			Node: []*onnxpb.NodeProto{
				{OpType: str("Add"), Input: []string{"x", "b"}, Output: []string{"a"}},
				{OpType: str("Relu"), Input: []string{"a"}, Output: []string{"b"}},
			},
			Output: []*onnxpb.ValueInfoProto{{Name: str("b")}},
		})},
		{"defined twice", graph(&onnxpb.GraphProto{
			Input: []*onnxpb.ValueInfoProto{x},
			Node: []*onnxpb.NodeProto{
				{OpType: str("Relu"), Input: []string{"x"}, Output: []string{"y"}},
				{OpType: str("Relu"), Input: []string{"x"}, Output: []string{"y"}},
			},
			Output: []*onnxpb.ValueInfoProto{{Name: str("y")}},
		})},
		{"initializer without data", graph(&onnxpb.GraphProto{
			Initializer: []*onnxpb.TensorProto{{Name: str("w"), DataType: &dt, Dims: []int64{1 << 16, 1 << 15}}},
			Output:      []*onnxpb.ValueInfoProto{{Name: str("w")}},
		})},
		{"external data outside the directory", graph(&onnxpb.GraphProto{
			Initializer: []*onnxpb.TensorProto{{Name: str("w"), DataType: &dt, Dims: []int64{2},
				DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
				ExternalData: []*onnxpb.StringStringEntryProto{{Key: str("location"), Value: str("../../secret")}}}},
			Output: []*onnxpb.ValueInfoProto{{Name: str("w")}},
		})},
		{"unknown operator", graph(&onnxpb.GraphProto{
			Input:  []*onnxpb.ValueInfoProto{x},
			Node:   []*onnxpb.NodeProto{{OpType: str("NoSuchOp"), Input: []string{"x"}, Output: []string{"y"}}},
			Output: []*onnxpb.ValueInfoProto{{Name: str("y")}},
		})},
	}
	i64 := int32(onnxInt64)
	tests = append(tests, struct {
		name string
		data []byte
	}{"folding past the memory limit", graph(&onnxpb.GraphProto{
		// ConstantOfShape of a constant shape is folded at load time: a
		// [2^20, 2^10] float tensor is 4 GiB, above the 1 MiB limit below.
		Initializer: []*onnxpb.TensorProto{{Name: str("s"), DataType: &i64, Dims: []int64{2}, Int64Data: []int64{1 << 20, 1 << 10}}},
		Node:        []*onnxpb.NodeProto{{OpType: str("ConstantOfShape"), Input: []string{"s"}, Output: []string{"y"}}},
		Output:      []*onnxpb.ValueInfoProto{{Name: str("y")}},
	})})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			if _, err := Parse(tt.data, t.TempDir(), Options{MaxBytes: 1 << 20}); err == nil {
				t.Errorf("Parse(%s) = nil error, want one", tt.name)
			}
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
				t.Errorf("Parse(%s) allocated %d bytes, want at most 32 MiB with a 1 MiB limit", tt.name, got)
			}
		})
	}
}
