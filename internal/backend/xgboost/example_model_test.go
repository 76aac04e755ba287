package xgboost

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// irisDir is the example model the server embeds as its default, written
// by examples/train_iris_xgb.py.
var irisDir = filepath.Join("..", "..", "..", "examples", "models", "iris", "1")

// TestExampleIris checks the embedded example model against the xgboost
// predictions saved beside it, with the labels its model.yaml declares.
func TestExampleIris(t *testing.T) {
	yaml, err := os.ReadFile(filepath.Join(irisDir, "model.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(yaml), "format: xgboost") {
		t.Errorf("model.yaml does not say format: xgboost:\n%s", yaml)
	}
	labels := []string{"setosa", "versicolor", "virginica"}
	if !strings.Contains(string(yaml), "labels: ["+strings.Join(labels, ", ")+"]") {
		t.Errorf("model.yaml does not list the labels %v:\n%s", labels, yaml)
	}
	data, err := os.ReadFile(filepath.Join(irisDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Inputs        [][]*float64 `json:"inputs"`
		Probabilities [][]float64  `json:"probabilities"`
		Labels        []string     `json:"labels"`
	}
	if err := json.Unmarshal(data, &exp); err != nil {
		t.Fatal(err)
	}

	m, err := Load(context.Background(), backend.Config{
		Name: "iris", Version: 1, Dir: irisDir, Format: "xgboost", Labels: labels,
		Artifact: filepath.Join(irisDir, "model.json"),
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
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
	n := len(exp.Inputs)
	in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{int64(n), 4}, Data: rows}
	out, err := m.Infer(context.Background(), []*tensor.Tensor{in})
	if err != nil {
		t.Fatalf("Infer: %v", err)
	}
	gotLabels, gotProbs := out[0].Data.([]int64), out[1].Data.([]float32)
	for i := range n {
		if got := labels[gotLabels[i]]; got != exp.Labels[i] {
			t.Errorf("row %d: label %q, want %q", i, got, exp.Labels[i])
		}
		for k, want := range exp.Probabilities[i] {
			if got := float64(gotProbs[i*3+k]); !close(got, want) {
				t.Errorf("row %d: probability %d = %v, want %v", i, k, got, want)
			}
		}
	}
}
