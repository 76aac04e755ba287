package batch

import (
	"context"
	"testing"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// BenchmarkDo measures the batcher's own cost: 64 goroutines send one-row
// requests to a model that does nothing.
func BenchmarkDo(b *testing.B) {
	exec := func(ctx context.Context, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
		return in, nil
	}
	bt, err := New(Config{Policy: Policy{MaxBatchSize: 64, Executions: 2}}, exec)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- bt.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		in := []*tensor.Tensor{{Name: "x", DType: tensor.FP32, Shape: []int64{1, 4}, Data: make([]float32, 4)}}
		for pb.Next() {
			if _, err := bt.Do(context.Background(), Request{Inputs: in}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
