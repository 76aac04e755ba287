// Package batch holds the dynamic batching benchmark (run.sh); this file
// measures the backend alone: the cost of one row by batch size.
package batch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/onnx"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// BenchmarkInferRows runs the benchmark's MLP (mlp.onnx, 64 -> 512 -> 512 ->
// 10) on batches of 1 to 64 distinct rows and reports the time per row: how
// much batching saves in the backend alone.
func BenchmarkInferRows(b *testing.B) {
	m, err := onnx.Load(context.Background(), backend.Config{Artifact: "mlp.onnx", Format: "onnx"})
	if err != nil {
		b.Fatal(err)
	}
	if got := m.(backend.Batcher).Batching(); !got.Concat {
		b.Fatalf("mlp.onnx does not declare batching: %s", m.(*onnx.Model).BatchingDenied())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 4096*64)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("rows=", n), func(b *testing.B) {
			ins := make([][]*tensor.Tensor, 4096/n)
			for j := range ins {
				ins[j] = []*tensor.Tensor{{Name: "input", DType: tensor.FP32, Shape: []int64{int64(n), 64}, Data: x[j*n*64 : (j+1)*n*64]}}
			}
			b.ReportAllocs()
			j := 0
			for b.Loop() {
				if _, err := m.Infer(context.Background(), ins[j%len(ins)]); err != nil {
					b.Fatal(err)
				}
				j++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
