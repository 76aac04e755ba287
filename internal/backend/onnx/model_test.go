package onnx

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// fixture is one model of testdata/gen.py with scikit-learn's predictions.
type fixture struct {
	X             [][]float32
	Label         []int64
	Probabilities [][]float64
	Predictions   [][]float64
}

func loadFixture(t testing.TB, name string) (*Model, *fixture) {
	t.Helper()
	path := filepath.Join("testdata", name+".onnx")
	bm, err := Load(context.Background(), backend.Config{Name: name, Artifact: path, Dir: "testdata", Format: "onnx"})
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return bm.(*Model), &f
}

func (f *fixture) input() *tensor.Tensor {
	var flat []float32
	for _, r := range f.X {
		flat = append(flat, r...)
	}
	return &tensor.Tensor{Name: "X", DType: tensor.FP32, Shape: []int64{int64(len(f.X)), int64(len(f.X[0]))}, Data: flat}
}

func TestScikitLearnFixtures(t *testing.T) {
	for _, name := range []string{"logreg_iris", "forest_iris", "boosting_cancer", "svm_iris", "mlp_iris", "forest_diabetes", "scaler_linear_diabetes"} {
		t.Run(name, func(t *testing.T) {
			m, f := loadFixture(t, name)
			outs, err := m.Infer(context.Background(), []*tensor.Tensor{f.input()})
			if err != nil {
				t.Fatalf("Infer: %v", err)
			}
			sig := m.Signature()
			if len(outs) != len(sig.Outputs) {
				t.Fatalf("Infer returned %d outputs, signature has %d", len(outs), len(sig.Outputs))
			}
			for k, o := range outs {
				switch sig.Outputs[k].Name {
				case "label":
					got := o.Data.([]int64)
					for i, want := range f.Label {
						if got[i] != want {
							t.Errorf("label[%d] = %d, want %d (row %v)", i, got[i], want, f.X[i])
						}
					}
				case "probabilities":
					checkClose(t, "probabilities", o, f.Probabilities, 1e-5)
				case "predictions":
					checkClose(t, "predictions", o, f.Predictions, 1e-5)
				default:
					t.Errorf("unexpected output %q", sig.Outputs[k].Name)
				}
			}
		})
	}
}

// checkClose compares a [N, C] FP32 tensor with want, to tol relative to
// max(1, |want|).
func checkClose(t *testing.T, what string, got *tensor.Tensor, want [][]float64, tol float64) {
	t.Helper()
	if len(got.Shape) != 2 || got.Shape[0] != int64(len(want)) || got.Shape[1] != int64(len(want[0])) {
		t.Fatalf("%s shape = %v, want [%d %d]", what, got.Shape, len(want), len(want[0]))
	}
	d := got.Data.([]float32)
	c := len(want[0])
	for i, row := range want {
		for j, w := range row {
			if g := float64(d[i*c+j]); math.Abs(g-w) > tol*math.Max(1, math.Abs(w)) {
				t.Errorf("%s[%d][%d] = %v, want %v", what, i, j, g, w)
			}
		}
	}
}

func TestInferConcurrent(t *testing.T) {
	m, f := loadFixture(t, "mlp_iris")
	want, err := m.Infer(context.Background(), []*tensor.Tensor{f.input()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				got, err := m.Infer(context.Background(), []*tensor.Tensor{f.input()})
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				a, b := got[1].Data.([]float32), want[1].Data.([]float32)
				for i := range a {
					if a[i] != b[i] {
						t.Errorf("goroutine %d: probabilities[%d] = %v, want %v", g, i, a[i], b[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestRunSteadyStateAllocs checks the goal of no per-inference allocations
// inside the graph once buffers have grown (outputs handed to the caller
// are still allocated).
func TestRunSteadyStateAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items at random, so pooled buffers are reallocated")
	}
	for _, name := range []string{"mlp_iris", "forest_iris", "scaler_linear_diabetes", "svm_iris"} {
		t.Run(name, func(t *testing.T) {
			m, f := loadFixture(t, name)
			s := m.newState()
			in := f.input()
			s.inputs[0] = Value{Kind: KindTensor, Tensor: *in}
			ctx := context.Background()
			allocs := steadyAllocs(50, func() {
				if err := m.run(ctx, s); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("run allocates %v times, want 0", allocs)
			}
		})
	}
}

func TestInferRejectsBadInput(t *testing.T) {
	m, _ := loadFixture(t, "mlp_iris")
	tests := []struct {
		name string
		in   *tensor.Tensor
	}{
		{"wrong type", &tensor.Tensor{Name: "X", DType: tensor.FP64, Shape: []int64{1, 4}, Data: make([]float64, 4)}},
		{"wrong width", &tensor.Tensor{Name: "X", DType: tensor.FP32, Shape: []int64{1, 3}, Data: make([]float32, 3)}},
		{"data short", &tensor.Tensor{Name: "X", DType: tensor.FP32, Shape: []int64{2, 4}, Data: make([]float32, 4)}},
		{"missing", &tensor.Tensor{Name: "Y", DType: tensor.FP32, Shape: []int64{1, 4}, Data: make([]float32, 4)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.Infer(context.Background(), []*tensor.Tensor{tt.in}); !errors.Is(err, backend.ErrInvalidInput) {
				t.Errorf("Infer(%v) error = %v, want one wrapping backend.ErrInvalidInput", tt.in.Shape, err)
			}
		})
	}
}

func BenchmarkInfer(b *testing.B) {
	for _, name := range []string{"mlp_iris", "forest_iris", "boosting_cancer"} {
		b.Run(name, func(b *testing.B) {
			m, f := loadFixture(b, name)
			in := []*tensor.Tensor{f.input()}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Infer(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
