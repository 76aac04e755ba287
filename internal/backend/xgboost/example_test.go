package xgboost_test

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Load the example iris classifier and classify one flower.
func ExampleLoad() {
	dir := filepath.Join("..", "..", "..", "examples", "models", "iris", "1")
	m, err := xgboost.Load(context.Background(), backend.Config{
		Artifact: filepath.Join(dir, "model.json"),
		Labels:   []string{"setosa", "versicolor", "virginica"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range m.Signature().Outputs {
		fmt.Println(s.Name, s.DType, s.Shape)
	}
	in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{4}, Data: []float32{6.3, 3.3, 6.0, 2.5}}
	out, err := m.Infer(context.Background(), []*tensor.Tensor{in})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("label", out[0].Data.([]int64)[0])
	// Output:
	// label INT64 [-1]
	// probabilities FP32 [-1 3]
	// label 2
}
