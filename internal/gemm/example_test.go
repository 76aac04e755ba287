package gemm_test

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/gemm"
)

// C = A*B for a 2×3 A and a 3×2 B, row-major with tight strides.
func ExampleSgemm() {
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		7, 8,
		9, 10,
		11, 12,
	}
	c := make([]float32, 2*2)
	gemm.Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [58 64 139 154]
}

// MatMul of a stack of four 2×3 matrices by one shared 3×2 matrix: a B
// stride of 0 broadcasts B over the batch.
func ExampleSgemmBatch() {
	a := make([]float32, 4*2*3)
	for i := range a {
		a[i] = float32(i % 6)
	}
	b := []float32{1, 0, 0, 1, 1, 1}
	c := make([]float32, 4*2*2)
	gemm.SgemmBatch(false, false, 4, 2, 2, 3, 1, a, 3, 6, b, 2, 0, 0, c, 2, 4)
	fmt.Println(c[:4], c[12:])
	// Output: [2 3 8 9] [2 3 8 9]
}

// A Config with Parallelism 1 keeps a product on the calling goroutine,
// for callers that already run one product per core.
func ExampleConfig() {
	cfg := gemm.Config{Parallelism: 1}
	a := []float32{1, 2}
	b := []float32{3, 4}
	c := []float32{0}
	cfg.Sgemm(false, true, 1, 1, 2, 1, a, 2, b, 2, 0, c, 1)
	fmt.Println(c)
	// Output: [11]
}
