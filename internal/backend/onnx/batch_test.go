package onnx

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx/onnxpb"
	"github.com/shoal-ml/shoal/internal/batch"
	"github.com/shoal-ml/shoal/internal/tensor"
)

var canBatch = backend.Batching{Concat: true, Split: true}

// TestBatchingFixtures: every scikit-learn fixture declares that it can be
// batched, and running its rows in batches gives each row, bit for bit,
// what it gets alone.
func TestBatchingFixtures(t *testing.T) {
	for _, name := range []string{"logreg_iris", "forest_iris", "boosting_cancer", "svm_iris", "mlp_iris", "forest_diabetes", "scaler_linear_diabetes"} {
		t.Run(name, func(t *testing.T) {
			m, f := loadFixture(t, name)
			if got := m.Batching(); got != canBatch {
				t.Fatalf("Batching() = %+v (%s), want %+v", got, m.BatchingDenied(), canBatch)
			}
			checkRowsAlone(t, m, f.input())
		})
	}
}

// TestBatchingMLP is the model where batching pays (bench/batch): 64 -> 512
// -> 512 -> 10 with ReLU and Softmax, k past one cache block of the gemm
// kernel, products large enough to run on several goroutines.
func TestBatchingMLP(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := (&graphBuilder{}).input("X", -1, 64)
	prev := "X"
	for i, dims := range [][2]int64{{64, 512}, {512, 512}, {512, 10}} {
		w, bias, h := "W"+string(rune('0'+i)), "B"+string(rune('0'+i)), "H"+string(rune('0'+i))
		randFloats(b, rng, w, dims[0], dims[1])
		randFloats(b, rng, bias, dims[1])
		b.node("MatMul", []string{prev, w}, []string{h + "m"}).node("Add", []string{h + "m", bias}, []string{h + "a"})
		prev = h + "a"
		if i < 2 {
			b.node("Relu", []string{prev}, []string{h})
			prev = h
		}
	}
	b.node("Softmax", []string{prev}, []string{"P"}, intAttr("axis", 1)).output("P", onnxFloat, []int64{-1, 10})
	m, err := b.parse(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Batching(); got != canBatch {
		t.Fatalf("Batching() = %+v (%s), want %+v", got, m.BatchingDenied(), canBatch)
	}
	checkRowsAlone(t, m, randInput(rng, 70, 64))
}

// TestBatchingGraphs checks which small graphs may be batched: those whose
// nodes keep rows apart do (and their rows are then checked bit for bit),
// those that mix rows, fix the batch or move it do not.
func TestBatchingGraphs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name string
		b    *graphBuilder
		deny string // "" when the graph may be batched; else a substring of BatchingDenied
	}{{
		name: "Gemm with a bias, Flatten, Reshape keeping rows, ReduceMean over features, ArgMax",
		b: randFloats(randFloats((&graphBuilder{}).input("X", -1, 2, 3), rng, "W", 6, 4), rng, "C", 4).ints("shape", 0, 2, -1).ints("axes", 2).
			node("Flatten", []string{"X"}, []string{"F"}).
			node("Gemm", []string{"F", "W", "C"}, []string{"G"}, floatAttr("alpha", 0.5), floatAttr("beta", 0.25)).
			node("Reshape", []string{"G", "shape"}, []string{"R"}).
			node("ReduceMean", []string{"R"}, []string{"M"}, intsAttr("axes", 2), intAttr("keepdims", 0)).
			node("ArgMax", []string{"M"}, []string{"Y"}, intAttr("axis", 1)).
			output("Y", onnxInt64, nil).output("M", onnxFloat, nil),
	}, {
		name: "Unsqueeze, Transpose keeping dim 0, Concat on features, Tanh",
		b: (&graphBuilder{}).input("X", -1, 3).ints("a1", 1).
			node("Unsqueeze", []string{"X", "a1"}, []string{"U"}).
			node("Transpose", []string{"U"}, []string{"T"}, intsAttr("perm", 0, 2, 1)).
			node("Concat", []string{"T", "T"}, []string{"C"}, intAttr("axis", 2)).
			node("Tanh", []string{"C"}, []string{"Y"}).
			output("Y", onnxFloat, nil),
	}, {
		name: "ReduceSum over axis 0 mixes rows",
		b: (&graphBuilder{}).input("X", -1, 3).ints("a0", 0).
			node("ReduceSum", []string{"X", "a0"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "reduces axis 0",
	}, {
		name: "ReduceSum over every axis",
		b: (&graphBuilder{}).input("X", -1, 3).
			node("ReduceSum", []string{"X"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "every axis",
	}, {
		name: "MatMul with the batch in B",
		b: randFloats((&graphBuilder{}).input("X", -1, 3, 3), rng, "A", 3, 3).
			node("MatMul", []string{"A", "X"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "A: input 0 is not batched",
	}, {
		name: "Transpose moving the batch",
		b: randFloats((&graphBuilder{}).input("X", -1, 3), rng, "A", 2, 3).
			node("Transpose", []string{"X"}, []string{"XT"}, intsAttr("perm", 1, 0)).
			node("MatMul", []string{"A", "XT"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "moves the batch",
	}, {
		name: "MatMul of a constant by the batch",
		b: randFloats((&graphBuilder{}).input("X", -1, 3), rng, "A", 3, 3).
			node("MatMul", []string{"X", "X"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "B: input 1 depends on the batch",
	}, {
		name: "Softmax over the batch",
		b: (&graphBuilder{}).input("X", -1, 3).
			node("Softmax", []string{"X"}, []string{"Y"}, intAttr("axis", 0)).output("Y", onnxFloat, nil),
		deny: "is the batch",
	}, {
		name: "Gemm with transB on float32",
		b: randFloats((&graphBuilder{}).input("X", -1, 3), rng, "W", 4, 3).
			node("Gemm", []string{"X", "W"}, []string{"Y"}, intAttr("transB", 1)).output("Y", onnxFloat, nil),
		deny: "transB",
	}, {
		name: "Reshape to a fixed first dimension",
		b: (&graphBuilder{}).input("X", -1, 4).ints("shape", 2, -1).
			node("Reshape", []string{"X", "shape"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "fixes the batch",
	}, {
		name: "Reshape that moves rows",
		b: (&graphBuilder{}).input("X", -1, 4).ints("shape", -1, 2).
			node("Reshape", []string{"X", "shape"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "changes the size of a row",
	}, {
		name: "a constant spanning the batch",
		b: randFloats((&graphBuilder{}).input("X", -1, 3), rng, "C", 4, 3).
			node("Add", []string{"X", "C"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "spans the batch",
	}, {
		name: "Shape reads the batch size",
		b: (&graphBuilder{}).input("X", -1, 3).
			node("Shape", []string{"X"}, []string{"Y"}).output("Y", onnxInt64, nil),
		deny: "not proven per-row",
	}, {
		name: "Concat along the batch",
		b: (&graphBuilder{}).input("X", -1, 3).
			node("Concat", []string{"X", "X"}, []string{"Y"}, intAttr("axis", 0)).output("Y", onnxFloat, nil),
		deny: "along the batch",
	}, {
		name: "fixed first dimension",
		b: (&graphBuilder{}).input("X", 2, 3).
			node("Relu", []string{"X"}, []string{"Y"}).output("Y", onnxFloat, nil),
		deny: "no dynamic first dimension",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.b.parse(t)
			if err != nil {
				t.Fatal(err)
			}
			got, why := m.Batching(), m.BatchingDenied()
			if tt.deny == "" {
				if got != canBatch {
					t.Fatalf("Batching() = %+v (%s), want %+v", got, why, canBatch)
				}
				shape := slicesClone(m.Signature().Inputs[0].Shape)
				shape[0] = 23
				checkRowsAlone(t, m, randInput(rng, shape...))
				return
			}
			if got != (backend.Batching{}) || !strings.Contains(why, tt.deny) {
				t.Fatalf("Batching() = %+v, BatchingDenied() = %q, want none, saying %q", got, why, tt.deny)
			}
		})
	}
}

func slicesClone(s []int64) []int64 { return append([]int64(nil), s...) }

// randFloats adds a float initializer of random values.
func randFloats(b *graphBuilder, rng *rand.Rand, name string, dims ...int64) *graphBuilder {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = rng.Float32()*2 - 1
	}
	dt := int32(onnxFloat)
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{Name: proto.String(name), DataType: &dt, Dims: dims, FloatData: data})
	return b
}

func randInput(rng *rand.Rand, shape ...int64) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= int(d)
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = rng.Float32()*4 - 2
	}
	return &tensor.Tensor{Name: "X", DType: tensor.FP32, Shape: shape, Data: data}
}

// checkRowsAlone runs x whole, then in parts of several sizes: every output
// row of a part must have the bits of the same row in the whole.
func checkRowsAlone(t *testing.T, m *Model, x *tensor.Tensor) {
	t.Helper()
	ctx := context.Background()
	whole, err := m.Infer(ctx, []*tensor.Tensor{x})
	if err != nil {
		t.Fatal(err)
	}
	rows := int(x.Shape[0])
	for _, size := range []int{1, 2, 5, 13} {
		var cut []int
		for left := rows; left > 0; left -= size {
			cut = append(cut, min(size, left))
		}
		parts, err := batch.Split(x, cut)
		if err != nil {
			t.Fatal(err)
		}
		got := make([][]*tensor.Tensor, len(whole))
		for _, p := range parts {
			outs, err := m.Infer(ctx, []*tensor.Tensor{p})
			if err != nil {
				t.Fatal(err)
			}
			for k, o := range outs {
				got[k] = append(got[k], o)
			}
		}
		for k, w := range whole {
			joined, err := batch.Concat(w.Name, got[k])
			if err != nil {
				t.Fatal(err)
			}
			if !sameBits(joined.Data, w.Data) || !reflect.DeepEqual(joined.Shape, w.Shape) {
				t.Fatalf("output %q in parts of %d rows differs from the whole batch of %d", w.Name, size, rows)
			}
		}
	}
}

// sameBits compares tensor data exactly, floats by their bits.
func sameBits(a, b any) bool {
	switch x := a.(type) {
	case []float32:
		y, ok := b.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.([]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}
