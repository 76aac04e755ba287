// Package batch holds the dynamic batching benchmark (run.sh); this file
// measures the backend alone: the cost of one row by batch size.
package batch

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// BenchmarkInferRows runs the model that gen.py writes (its path in
// $SHOAL_BATCH_MODEL; skipped without it) on batches of 1 to 64 rows and
// reports the time per row: how much batching saves in the backend alone.
func BenchmarkInferRows(b *testing.B) {
	path := os.Getenv("SHOAL_BATCH_MODEL")
	if path == "" {
		b.Skip("set SHOAL_BATCH_MODEL to the model.json that gen.py writes")
	}
	m, err := xgboost.Load(context.Background(), backend.Config{Artifact: path})
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("rows=", n), func(b *testing.B) {
			x := make([]float32, n*32)
			for i := range x {
				x[i] = float32(i%97)/24 - 2
			}
			in := []*tensor.Tensor{{Name: "input", DType: tensor.FP32, Shape: []int64{int64(n), 32}, Data: x}}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Infer(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
