package xgboost

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// FuzzParse checks that Parse never panics and that every model it accepts
// evaluates rows, with and without missing values, without panicking.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, file := range files {
		if strings.HasSuffix(file, ".expected.json") {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"learner":{"learner_model_param":{"num_feature":"1","num_class":"0"},"objective":{"name":"reg:squarederror"},` +
		`"gradient_booster":{"name":"gbtree","model":{"tree_info":[0],"trees":[{"left_children":[1,-1,-1],"right_children":[2,-1,-1],` +
		`"split_indices":[0,0,0],"split_conditions":[0.5,1,2],"default_left":[1,0,0]}]}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if m.NumFeature > 1<<12 {
			return // valid but too wide to be worth a row here
		}
		rows := make([]float32, 3*m.NumFeature)
		for i := range rows {
			switch i % 3 {
			case 0:
				rows[i] = float32(math.NaN())
			case 1:
				rows[i] = float32(i) - 10
			}
		}
		in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{3, int64(m.NumFeature)}, Data: rows}
		out, err := m.Infer(context.Background(), []*tensor.Tensor{in})
		if err != nil {
			t.Fatalf("Infer on a parsed model: %v", err)
		}
		if len(out) != len(m.Signature().Outputs) {
			t.Fatalf("Infer returned %d outputs, signature has %d", len(out), len(m.Signature().Outputs))
		}
		_ = m.Predict(rows)
	})
}
