package lightgbm

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

// The fixtures are hand-written models with hand-traced expectations: no
// LightGBM library was available to generate them (see testdata/README.md).
type expected struct {
	Inputs  [][]*float64 `json:"inputs"`
	Raw     [][]float64  `json:"raw"`
	Predict [][]float64  `json:"predict"`
	Notes   []string     `json:"notes"`
}

func readCase(t *testing.T, name string) (*Model, expected, []float32) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	var exp expected
	data, err = os.ReadFile(filepath.Join("testdata", name+".expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}
	var rows []float32
	for _, r := range exp.Inputs {
		for _, v := range r {
			if v == nil {
				rows = append(rows, float32(math.NaN()))
			} else {
				rows = append(rows, float32(*v))
			}
		}
	}
	return m, exp, rows
}

func near(got, want float64) bool {
	return math.Abs(got-want) <= 1e-6*max(1, math.Abs(want))
}

func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			m, exp, rows := readCase(t, name)
			n, g := len(exp.Inputs), m.OutputGroups()
			raw := make([]float64, n*g)
			m.PredictRaw(rows, raw)
			pred := make([]float64, n*g)
			m.Predict(rows, pred)
			for r := range n {
				for k := range g {
					if got, want := raw[r*g+k], exp.Raw[r][k]; !near(got, want) {
						t.Errorf("row %d (%s): raw[%d] = %v, want %v", r, exp.Notes[r], k, got, want)
					}
					if got, want := pred[r*g+k], exp.Predict[r][k]; !near(got, want) {
						t.Errorf("row %d (%s): predict[%d] = %v, want %v", r, exp.Notes[r], k, got, want)
					}
				}
			}

			bm, err := Load(context.Background(), backend.Config{Artifact: file})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{int64(n), int64(m.NumFeature)}, Data: rows}
			out, err := bm.Infer(context.Background(), []*tensor.Tensor{in})
			if err != nil {
				t.Fatalf("Infer: %v", err)
			}
			checkOutputs(t, m, out, exp)
		})
	}
}

// checkOutputs checks Infer's tensors against the signature conventions.
func checkOutputs(t *testing.T, m *Model, out []*tensor.Tensor, exp expected) {
	t.Helper()
	n := len(exp.Inputs)
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
		got := out[0].Data.([]float32)
		for r := range n {
			if !near(float64(got[r]), exp.Predict[r][0]) {
				t.Errorf("predictions[%d] = %v, want %v", r, got[r], exp.Predict[r][0])
			}
		}
		return
	}
	k := m.NumClass
	labels, probs := out[0].Data.([]int64), out[1].Data.([]float32)
	if s := out[1].Shape; len(s) != 2 || s[0] != int64(n) || s[1] != int64(k) {
		t.Errorf("probabilities shape = %v, want [%d %d]", s, n, k)
	}
	for r := range n {
		want := exp.Predict[r]
		if k == 2 && len(want) == 1 {
			want = []float64{1 - want[0], want[0]}
		}
		best := 0
		for j := range want {
			if !near(float64(probs[r*k+j]), want[j]) {
				t.Errorf("row %d: probabilities[%d] = %v, want %v", r, j, probs[r*k+j], want[j])
			}
			if want[j] > want[best] {
				best = j
			}
		}
		if k == 2 && want[1] == 0.5 {
			best = 1 // binary: p >= 0.5 is class 1
		}
		if labels[r] != int64(best) {
			t.Errorf("row %d: label = %d, want %d", r, labels[r], best)
		}
	}
}

// oneLeaf is a model whose raw score is 0.5 for every row, under objective.
func oneLeaf(objective string, numClass int) string {
	var b strings.Builder
	b.WriteString("tree\nversion=v4\nnum_class=" + strconv.Itoa(numClass) + "\nnum_tree_per_iteration=" + strconv.Itoa(numClass) +
		"\nlabel_index=0\nmax_feature_idx=0\nobjective=" + objective + "\nfeature_names=x\nfeature_infos=none\n\n")
	for i := range numClass {
		b.WriteString("Tree=" + strconv.Itoa(i) + "\nnum_leaves=1\nnum_cat=0\nleaf_value=0.5\nis_linear=0\nshrinkage=1\n\n\n")
	}
	b.WriteString("end of trees\n")
	return b.String()
}

// TestObjectives checks each objective's conversion of the raw score 0.5.
func TestObjectives(t *testing.T) {
	sig := func(s, x float64) float64 { return 1 / (1 + math.Exp(-s*x)) }
	tests := []struct {
		objective string
		numClass  int
		want      float64 // the prediction of the first output group
		classes   int
	}{
		{"regression", 1, 0.5, 0},
		{"regression sqrt", 1, 0.25, 0},
		{"regression_l1", 1, 0.5, 0},
		{"regression_l1 sqrt", 1, 0.25, 0},
		{"huber", 1, 0.5, 0},
		{"fair", 1, 0.5, 0},
		{"quantile", 1, 0.5, 0},
		{"mape", 1, 0.5, 0},
		{"poisson", 1, math.Exp(0.5), 0},
		{"gamma", 1, math.Exp(0.5), 0},
		{"tweedie", 1, math.Exp(0.5), 0},
		{"cross_entropy", 1, sig(1, 0.5), 0},
		{"cross_entropy_lambda", 1, math.Log1p(math.Exp(0.5)), 0},
		{"lambdarank", 1, 0.5, 0},
		{"rank_xendcg", 1, 0.5, 0},
		{"", 1, 0.5, 0},
		{"binary sigmoid:1", 1, sig(1, 0.5), 2},
		{"binary sigmoid:2.5", 1, sig(2.5, 0.5), 2},
		{"multiclass num_class:3", 3, 1.0 / 3, 3},
		{"multiclassova num_class:2 sigmoid:1", 2, sig(1, 0.5), 2},
	}
	for _, tt := range tests {
		t.Run(tt.objective, func(t *testing.T) {
			m, err := Parse([]byte(oneLeaf(tt.objective, tt.numClass)))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if m.NumClass != tt.classes {
				t.Errorf("NumClass = %d, want %d", m.NumClass, tt.classes)
			}
			out := make([]float64, m.OutputGroups())
			m.Predict([]float32{1}, out)
			if !near(out[0], tt.want) {
				t.Errorf("Predict = %v, want %v", out[0], tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/binary.txt")
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) string { return strings.Replace(string(good), old, new, 1) }
	tests := []struct {
		name string
		data string
		want error
	}{
		{"empty", "", ErrFormat},
		{"not a tree model", "linear\n", ErrFormat},
		{"unknown objective", edit("objective=binary sigmoid:1", "objective=survival"), ErrUnsupported},
		{"bad sigmoid", edit("sigmoid:1", "sigmoid:x"), ErrFormat},
		{"no max_feature_idx", edit("max_feature_idx=2\n", ""), ErrFormat},
		{"feature names count", edit("feature_names=a b c", "feature_names=a b"), ErrFormat},
		{"no end of trees", edit("end of trees", ""), ErrFormat},
		{"feature out of range", edit("split_feature=0 1", "split_feature=0 3"), ErrFormat},
		{"child out of range", edit("right_child=1 -3", "right_child=1 -4"), ErrFormat},
		{"cycle", edit("right_child=1 -3", "right_child=1 1"), ErrFormat},
		{"short leaf_value", edit("leaf_value=-0.5 0.25 0.75", "leaf_value=-0.5 0.25"), ErrFormat},
		{"bad number", edit("leaf_value=-0.5 0.25 0.75", "leaf_value=-0.5 x 0.75"), ErrFormat},
		{"missing type 3", edit("decision_type=2 10", "decision_type=2 14"), ErrFormat},
		{"categorical without cats", edit("decision_type=2 10", "decision_type=2 9"), ErrFormat},
		{"not key=value", edit("shrinkage=1\n", "shrinkage\n"), ErrFormat},
		{"partial iteration", strings.Replace(oneLeaf("multiclass num_class:3", 3),
			"Tree=2\nnum_leaves=1\nnum_cat=0\nleaf_value=0.5\nis_linear=0\nshrinkage=1\n\n\n", "", 1), ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.data))
			if !errors.Is(err, tt.want) {
				t.Errorf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestInferInputs(t *testing.T) {
	m, err := Load(context.Background(), backend.Config{Artifact: "testdata/regression.txt"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      *tensor.Tensor
		want    []float32
		wantErr bool
	}{
		{"one row", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{2}, Data: []float32{0.5, -3}}, []float32{-1.875}, false},
		{"fp64 batch", &tensor.Tensor{Name: "input", DType: tensor.FP64, Shape: []int64{2, 2}, Data: []float64{1, 0, 0.5, -3}}, []float32{3.375, -1.875}, false},
		{"int32", &tensor.Tensor{Name: "input", DType: tensor.Int32, Shape: []int64{1, 2}, Data: []int32{1, 0}}, []float32{3.375}, false},
		{"wide", &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{1, 3}, Data: []float32{1, 2, 3}}, nil, true},
		{"bytes", &tensor.Tensor{Name: "input", DType: tensor.Bytes, Shape: []int64{1, 2}, Data: [][]byte{{1}, {2}}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := m.Infer(context.Background(), []*tensor.Tensor{tt.in})
			if tt.wantErr {
				if !errors.Is(err, backend.ErrInvalidInput) {
					t.Fatalf("Infer = %v, want ErrInvalidInput", err)
				}
				if tt.name == "wide" && (!strings.Contains(err.Error(), "want 2") || !strings.Contains(err.Error(), "got 3")) {
					t.Errorf("width error %q does not name expected and got", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Infer: %v", err)
			}
			got := out[0].Data.([]float32)
			if len(got) != len(tt.want) {
				t.Fatalf("Infer gave %d predictions, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if !near(float64(got[i]), float64(tt.want[i])) {
					t.Errorf("prediction %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     backend.Config
		wantErr bool
	}{
		{"labels", backend.Config{Labels: []string{"a", "b", "c"}}, false},
		{"rename", backend.Config{Outputs: []backend.TensorSpec{{Name: "y"}, {Name: "p"}}}, false},
		{"too few labels", backend.Config{Labels: []string{"a", "b"}}, true},
		{"three outputs", backend.Config{Outputs: []backend.TensorSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Artifact = "testdata/multiclass.txt"
			m, err := Load(context.Background(), tt.cfg)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Load = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && len(tt.cfg.Outputs) > 0 && m.Signature().Outputs[1].Name != tt.cfg.Outputs[1].Name {
				t.Errorf("output 1 named %q, want %q", m.Signature().Outputs[1].Name, tt.cfg.Outputs[1].Name)
			}
		})
	}
}
