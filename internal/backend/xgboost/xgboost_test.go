package xgboost

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// expected is a <case>.expected.json written by testdata/gen.py with
// xgboost 1.7.4: the rows (null for missing) and what Booster.predict
// returned for them, transformed and as margins.
type expected struct {
	Objective string       `json:"objective"`
	Inputs    [][]*float64 `json:"inputs"`
	Predict   any          `json:"predict"`
	Margin    any          `json:"margin"`
}

func readExpected(t *testing.T, path string) (exp expected, rows []float32, n int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, row := range exp.Inputs {
		for _, v := range row {
			if v == nil {
				rows = append(rows, float32(math.NaN()))
			} else {
				rows = append(rows, float32(*v))
			}
		}
	}
	return exp, rows, len(exp.Inputs)
}

// flatten turns a JSON number array, nested or not, into float64s.
func flatten(v any) []float64 {
	switch v := v.(type) {
	case float64:
		return []float64{v}
	case []any:
		var out []float64
		for _, e := range v {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return nil
}

// close reports whether got matches want to 1e-5, relative for large values.
func close(got, want float64) bool {
	return math.Abs(got-want) <= 1e-5*max(1, math.Abs(want))
}

func compare[T float32 | float64](t *testing.T, what string, got []T, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !close(float64(got[i]), want[i]) {
			t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func cases(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/*.expected.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in testdata (%v): run testdata/gen.py", err)
	}
	return files
}

// TestFixtures compares every fixture model with what xgboost 1.7.4's
// Booster.predict returned, both through Predict/PredictMargin and through
// the backend.Model interface.
func TestFixtures(t *testing.T) {
	for _, expPath := range cases(t) {
		name := strings.TrimSuffix(filepath.Base(expPath), ".expected.json")
		t.Run(name, func(t *testing.T) {
			exp, rows, n := readExpected(t, expPath)
			modelPath := filepath.Join("testdata", name+".json")
			data, err := os.ReadFile(modelPath)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if m.Objective != exp.Objective {
				t.Errorf("Objective = %q, want %q", m.Objective, exp.Objective)
			}
			margins := make([]float32, n*m.OutputGroups())
			m.PredictMargin(rows, margins)
			compare(t, "margin", margins, flatten(exp.Margin))
			compare(t, "predict", m.Predict(rows), flatten(exp.Predict))

			bm, err := Load(context.Background(), backend.Config{Artifact: modelPath})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{int64(n), int64(m.NumFeature)}, Data: rows}
			out, err := bm.Infer(context.Background(), []*tensor.Tensor{in})
			if err != nil {
				t.Fatalf("Infer: %v", err)
			}
			checkOutputs(t, m, out, n, exp)
		})
	}
}

// checkOutputs checks Infer's tensors against what the signature
// conventions derive from Booster.predict.
func checkOutputs(t *testing.T, m *Model, out []*tensor.Tensor, n int, exp expected) {
	t.Helper()
	pred, margin := flatten(exp.Predict), flatten(exp.Margin)
	sig := m.Signature()
	if len(out) != len(sig.Outputs) {
		t.Fatalf("Infer returned %d outputs, want %d", len(out), len(sig.Outputs))
	}
	for i, o := range out {
		if o.Name != sig.Outputs[i].Name || o.DType != sig.Outputs[i].DType {
			t.Errorf("output %d = %s %s, want %s %s", i, o.Name, o.DType, sig.Outputs[i].Name, sig.Outputs[i].DType)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("output %s: %v", o.Name, err)
		}
	}
	if m.NumClass == 0 {
		if got := out[0].Shape; len(got) != 1 || got[0] != int64(n) {
			t.Errorf("predictions shape = %v, want [%d]", got, n)
		}
		compare(t, "predictions", out[0].Data.([]float32), pred)
		return
	}
	k := m.NumClass
	var probs []float64
	var labels []int64
	switch m.Objective {
	case "binary:logistic", "binary:logitraw":
		for i := range n {
			p := pred[i]
			if m.Objective == "binary:logitraw" {
				p = 1 / (1 + math.Exp(-margin[i]))
			}
			probs = append(probs, 1-p, p)
			labels = append(labels, map[bool]int64{false: 0, true: 1}[p >= 0.5])
		}
	case "multi:softprob":
		probs = pred
		for i := range n {
			labels = append(labels, int64(argmax(pred[i*k:i*k+k])))
		}
	case "multi:softmax":
		for i := range n {
			labels = append(labels, int64(pred[i]))
			row := margin[i*k : i*k+k]
			hi, sum := row[argmax(row)], 0.0
			for _, v := range row {
				sum += math.Exp(v - hi)
			}
			for _, v := range row {
				probs = append(probs, math.Exp(v-hi)/sum)
			}
		}
	default:
		t.Fatalf("no expectation for classifier objective %q", m.Objective)
	}
	if got := out[1].Shape; len(got) != 2 || got[0] != int64(n) || got[1] != int64(k) {
		t.Errorf("probabilities shape = %v, want [%d %d]", got, n, k)
	}
	compare(t, "probabilities", out[1].Data.([]float32), probs)
	gotLabels := out[0].Data.([]int64)
	for i := range labels {
		if gotLabels[i] != labels[i] {
			t.Errorf("label[%d] = %d, want %d", i, gotLabels[i], labels[i])
		}
	}
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

// TestInferInputs checks the input conventions: any numeric dtype, one row
// as rank 1, and clear errors for the wrong width.
func TestInferInputs(t *testing.T) {
	m, err := Load(context.Background(), backend.Config{Artifact: "testdata/gbtree_multi_softprob.json"})
	if err != nil {
		t.Fatal(err)
	}
	row := []float64{5.1, 3.5, 1.4, 0.2}
	f32 := []float32{5.1, 3.5, 1.4, 0.2}
	tests := []struct {
		name    string
		in      *tensor.Tensor
		wantN   int64
		wantErr bool
	}{
		{"fp32 batch", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{1, 4}, Data: f32}, 1, false},
		{"fp32 one row", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{4}, Data: f32}, 1, false},
		{"fp64", &tensor.Tensor{Name: "input", DType: tensor.FP64, Shape: []int64{1, 4}, Data: row}, 1, false},
		{"int64", &tensor.Tensor{Name: "input", DType: tensor.Int64, Shape: []int64{2, 4}, Data: []int64{5, 3, 1, 0, 6, 3, 5, 2}}, 2, false},
		{"empty batch", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{0, 4}, Data: []float32{}}, 0, false},
		{"too narrow", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{1, 3}, Data: f32[:3]}, 0, true},
		{"rank 3", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{1, 1, 4}, Data: f32}, 0, true},
		{"bytes", &tensor.Tensor{Name: "input", DType: tensor.Bytes, Shape: []int64{1, 1}, Data: [][]byte{{1}}}, 0, true},
		{"wrong name", &tensor.Tensor{Name: "x", DType: tensor.FP32, Shape: []int64{1, 4}, Data: f32}, 0, true},
		{"data mismatch", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{2, 4}, Data: f32}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := m.Infer(context.Background(), []*tensor.Tensor{tt.in})
			if tt.wantErr {
				if !errors.Is(err, backend.ErrInvalidInput) {
					t.Fatalf("Infer(%v) error = %v, want ErrInvalidInput", tt.in.Shape, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Infer(%v): %v", tt.in.Shape, err)
			}
			if got := out[0].Shape[0]; got != tt.wantN {
				t.Errorf("Infer(%v) gave %d rows, want %d", tt.in.Shape, got, tt.wantN)
			}
			if tt.wantN > 0 && out[0].Data.([]int64)[0] != 0 {
				t.Errorf("Infer(%v) label = %d, want 0 (setosa)", tt.in.Shape, out[0].Data.([]int64)[0])
			}
		})
	}
	_, err = m.Infer(context.Background(), []*tensor.Tensor{tests[5].in})
	if err == nil || !strings.Contains(err.Error(), "want 4") || !strings.Contains(err.Error(), "got 3") {
		t.Errorf("width error %q does not name expected and got", err)
	}
}

func TestInferCancelled(t *testing.T) {
	m, err := Load(context.Background(), backend.Config{Artifact: "testdata/gbtree_reg_squarederror.json"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{1, 10}, Data: make([]float32, 10)}
	if _, err := m.Infer(ctx, []*tensor.Tensor{in}); !errors.Is(err, context.Canceled) {
		t.Errorf("Infer with a cancelled context: %v, want context.Canceled", err)
	}
}

// TestLoadConfig checks that model.yaml may rename tensors but not
// contradict the model.
func TestLoadConfig(t *testing.T) {
	art := "testdata/gbtree_multi_softprob.json"
	tests := []struct {
		name      string
		cfg       backend.Config
		wantIn    string
		wantOut   []string
		wantError bool
	}{
		{"default", backend.Config{}, "input", []string{"label", "probabilities"}, false},
		{"renamed", backend.Config{
			Inputs:  []backend.TensorSpec{{Name: "x"}},
			Outputs: []backend.TensorSpec{{Name: "class"}, {Name: "proba", DType: tensor.FP32, Shape: []int64{-1, 3}}},
		}, "x", []string{"class", "proba"}, false},
		{"labels", backend.Config{Labels: []string{"a", "b", "c"}}, "input", []string{"label", "probabilities"}, false},
		{"fp64 input", backend.Config{Inputs: []backend.TensorSpec{{Name: "x", DType: tensor.FP64}}}, "x", []string{"label", "probabilities"}, false},
		{"one output", backend.Config{Outputs: []backend.TensorSpec{{Name: "class"}}}, "", nil, true},
		{"wrong dtype", backend.Config{Outputs: []backend.TensorSpec{{Name: "a", DType: tensor.FP64}, {Name: "b"}}}, "", nil, true},
		{"wrong width", backend.Config{Inputs: []backend.TensorSpec{{Name: "x", Shape: []int64{-1, 5}}}}, "", nil, true},
		{"wrong labels", backend.Config{Labels: []string{"a", "b"}}, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Artifact = art
			m, err := Load(context.Background(), tt.cfg)
			if tt.wantError {
				if err == nil {
					t.Fatalf("Load(%+v) succeeded, want an error", tt.cfg)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			sig := m.Signature()
			if sig.Inputs[0].Name != tt.wantIn {
				t.Errorf("input name = %q, want %q", sig.Inputs[0].Name, tt.wantIn)
			}
			for i, want := range tt.wantOut {
				if sig.Outputs[i].Name != want {
					t.Errorf("output %d name = %q, want %q", i, sig.Outputs[i].Name, want)
				}
			}
			in := &tensor.Tensor{Name: tt.wantIn, DType: tensor.FP32, Shape: []int64{1, 4}, Data: []float32{6, 3, 5, 2}}
			out, err := m.Infer(context.Background(), []*tensor.Tensor{in})
			if err != nil {
				t.Fatalf("Infer: %v", err)
			}
			for i, want := range tt.wantOut {
				if out[i].Name != want {
					t.Errorf("Infer output %d = %q, want %q", i, out[i].Name, want)
				}
			}
		})
	}
}

func TestLoadDefaultArtifact(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile("testdata/gbtree_reg_squarederror.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DefaultArtifact), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), backend.Config{Dir: dir}); err != nil {
		t.Errorf("Load from Dir: %v", err)
	}
	if _, err := Load(context.Background(), backend.Config{Dir: t.TempDir()}); err == nil {
		t.Error("Load from an empty Dir succeeded")
	}
}

// BenchmarkInfer measures the whole backend path (input conversion, trees,
// softmax, output tensors) on the example iris model: 45 trees of depth 3.
func BenchmarkInfer(b *testing.B) {
	m, err := Load(context.Background(), backend.Config{Artifact: filepath.Join(irisDir, "model.json")})
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{1, 64} {
		rows := make([]float32, 4*batch)
		for i := range rows {
			rows[i] = float32(i%7) * 0.9
		}
		in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{int64(batch), 4}, Data: rows}
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Infer(context.Background(), []*tensor.Tensor{in}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
