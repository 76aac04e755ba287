package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkSgemm times square single-precision products C = A*B with the
// default Config (all of GOMAXPROCS) and reports GFLOP/s, counting 2*n^3
// floating-point operations per product. bench/gemm/run.sh compares it with
// numpy; the goal (issue: at least half of numpy with OpenBLAS on the same
// machine) lives there and in docs/gemm.md, not in a test.
func BenchmarkSgemm(b *testing.B) {
	for _, n := range []int{64, 128, 256, 512, 1024} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			benchSgemm(b, Config{}, false, false, n, n, n)
		})
	}
}

// BenchmarkSgemmKernel is BenchmarkSgemm with each assembly kernel the CPU
// supports forced, so that bench/gemm/run.sh can also compare the AVX2
// kernel alone with an OpenBLAS limited to AVX2 (its Haswell kernels).
func BenchmarkSgemmKernel(b *testing.B) {
	for _, kern := range kernels()[1:] {
		for _, n := range []int{64, 128, 256, 512, 1024} {
			b.Run(fmt.Sprintf("%s/n=%d", kern.name, n), func(b *testing.B) {
				benchSgemm(b, Config{kern: kern}, false, false, n, n, n)
			})
		}
	}
}

// BenchmarkSgemmVariants covers the paths BenchmarkSgemm does not: one
// goroutine, transposed operands, the pure-Go kernel and the skinny shapes
// of Conv via im2col and of small MatMuls.
func BenchmarkSgemmVariants(b *testing.B) {
	for _, bc := range []struct {
		name           string
		cfg            Config
		transA, transB bool
		m, n, k        int
	}{
		{"serial/n=256", Config{Parallelism: 1}, false, false, 256, 256, 256},
		{"serial/n=512", Config{Parallelism: 1}, false, false, 512, 512, 512},
		{"transA/n=512", Config{}, true, false, 512, 512, 512},
		{"transB/n=512", Config{}, false, true, 512, 512, 512},
		{"go4x4/n=256", Config{kern: goKernel}, false, false, 256, 256, 256},
		{"conv/m=64,n=3136,k=576", Config{}, false, false, 64, 3136, 576},
		{"matvec/m=1,n=1000,k=2048", Config{}, false, true, 1, 1000, 2048},
		{"small/n=16", Config{}, false, false, 16, 16, 16},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchSgemm(b, bc.cfg, bc.transA, bc.transB, bc.m, bc.n, bc.k)
		})
	}
	for _, kern := range kernels()[1:] { // the pure-Go one is above
		b.Run(fmt.Sprintf("%s/serial/n=512", kern.name), func(b *testing.B) {
			benchSgemm(b, Config{Parallelism: 1, kern: kern}, false, false, 512, 512, 512)
		})
	}
}

func benchSgemm(b *testing.B, cfg Config, transA, transB bool, m, n, k int) {
	rng := rand.New(rand.NewPCG(1, 1))
	a, bm, c := randSlice(rng, m*k), randSlice(rng, k*n), make([]float32, m*n)
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	cfg.Sgemm(transA, transB, m, n, k, 1, a, lda, bm, ldb, 0, c, n) // warm the pool
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		cfg.Sgemm(transA, transB, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
	}
	b.ReportMetric(2*float64(m)*float64(n)*float64(k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
