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
// (here 64 MiB, so that a huge declared tensor fails fast; Parse may
// allocate at most four times that in all). A model that
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
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err := Parse(data, "", Options{MaxBytes: 64 << 20})
		runtime.ReadMemStats(&after)
		// The limit bounds what the model keeps; decoding and folding may
		// allocate a few times that in passing, never more.
		if got := after.TotalAlloc - before.TotalAlloc; got > 4*64<<20 {
			t.Fatalf("Parse of %d bytes allocated %d bytes with a limit of 64 MiB", len(data), got)
		}
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

// FuzzShapeInference mutates the numbers shape inference computes with:
// starting from a valid graph (the TestShapeInferenceGraphs cases, the
// fixtures and, when present, the small conformance models), it sets every
// graph input dimension and every integer attribute from the fuzzed
// values (negative, zero, huge), then loads the model. Loading must give
// an error or a model whose signature holds only sizes and -1: never a
// panic, an overflow into a negative size, or an unbounded allocation.
func FuzzShapeInference(f *testing.F) {
	var bases [][]byte
	for _, c := range inferenceCases() {
		bases = append(bases, c.b.marshal(f))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.onnx"))
	conf, _ := filepath.Glob(filepath.Join(conformanceDir, "*", "*", "model.onnx"))
	for _, c := range conf {
		if st, err := os.Stat(c); err == nil && st.Size() <= 2048 {
			files = append(files, c)
		}
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, data)
	}
	for i := range min(len(bases), 64) {
		f.Add(uint16(i), int64(1), int64(3), int64(-1), uint8(0))
	}
	f.Add(uint16(0), int64(1<<62), int64(-1<<62), int64(0), uint8(0xff))
	f.Fuzz(func(t *testing.T, which uint16, a, b, c int64, mask uint8) {
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(bases[int(which)%len(bases)], &mp); err != nil {
			t.Fatal(err)
		}
		vals := []int64{a, b, c}
		k := 0
		next := func() int64 { k++; return vals[k%3] }
		for _, in := range mp.GetGraph().GetInput() {
			for _, d := range in.GetType().GetTensorType().GetShape().GetDim() {
				if mask&1 != 0 {
					d.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: next()}
				}
			}
		}
		for _, n := range mp.GetGraph().GetNode() {
			for _, at := range n.GetAttribute() {
				switch {
				case mask&2 != 0 && at.I != nil:
					at.I = proto.Int64(next())
				case mask&4 != 0 && len(at.GetInts()) > 0:
					for i := range at.Ints {
						at.Ints[i] = next()
					}
				}
			}
		}
		if mask&8 != 0 {
			for _, init := range mp.GetGraph().GetInitializer() {
				for i := range init.GetInt64Data() {
					init.Int64Data[i] = next()
				}
			}
		}
		data, err := proto.Marshal(&mp)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Parse(data, "", Options{MaxBytes: 64 << 20})
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
