package serve_test

import (
	"context"
	"fmt"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/oip"
	"github.com/shoal-ml/shoal/internal/serve"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// A Server can be used in process, without HTTP: load a repository, then
// call Infer.
func ExampleServer_Infer() {
	s, err := serve.New(serve.Config{
		Repository: "../../examples/models",
		Loaders:    map[string]backend.Loader{"xgboost": xgboost.Load},
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := s.LoadAll(ctx); err != nil {
		panic(err)
	}
	defer s.Close(ctx)
	in := &tensor.Tensor{Name: "input", DType: tensor.FP32, Shape: []int64{2, 4},
		Data: []float32{5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3}}
	resp, err := s.Infer(ctx, &oip.InferRequest{
		ModelName: "iris",
		Inputs:    []*tensor.Tensor{in},
		Outputs:   []oip.RequestedOutput{{Name: "label"}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.ModelName, resp.ModelVersion, resp.Outputs[0].Name, resp.Outputs[0].Data)
	// Output: iris 1 label [0 2]
}
