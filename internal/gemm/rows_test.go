package gemm

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowsIndependentOfM checks what dynamic batching relies on: with a given
// kernel, row i of C = alpha*A*op(B) + beta*C is the same bits whether the
// product has that one row, a few or many (edge tiles, full tiles, several
// goroutines for 256x300, k past one cache block), for every alpha and beta. The one
// documented exception, m == 1 with transB, is not covered.
func TestRowsIndependentOfM(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, kern := range kernels() {
		for _, dims := range [][2]int{{1, 1}, {1, 300}, {10, 64}, {17, 5}, {40, 600}, {256, 300}} {
			n, k := dims[0], dims[1]
			for _, transB := range []bool{false, true} {
				for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.7, 0.3}} {
					alpha, beta := ab[0], ab[1]
					const rows = 64
					a := randSlice(rng, rows*k)
					b := randSlice(rng, k*n)
					c0 := randSlice(rng, rows*n)
					ldb := n
					if transB {
						ldb = k
					}
					full := append([]float32(nil), c0...)
					Config{kern: kern, Parallelism: 2}.Sgemm(false, transB, rows, n, k, alpha, a, k, b, ldb, beta, full, n)
					for _, m := range []int{1, 2, 7, 13, 33} {
						if m == 1 && transB && n > 1 {
							continue // the documented exception
						}
						for _, i0 := range []int{0, rows - m} {
							part := append([]float32(nil), c0[i0*n:(i0+m)*n]...)
							Config{kern: kern, Parallelism: 1}.Sgemm(false, transB, m, n, k, alpha, a[i0*k:], k, b, ldb, beta, part, n)
							for j, got := range part {
								if want := full[i0*n+j]; math.Float32bits(got) != math.Float32bits(want) {
									t.Fatalf("%s n=%d k=%d transB=%v alpha=%g beta=%g: row %d of a %d-row product = %v, of the %d-row product %v",
										kern.name, n, k, transB, alpha, beta, i0+j/n, m, got, rows, want)
								}
							}
						}
					}
				}
			}
		}
	}
}
