package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSgemmBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, tc := range []struct {
		name                   string
		transA, transB         bool
		batch, m, n, k         int
		broadcastA, broadcastB bool
	}{
		{"small", false, false, 7, 5, 6, 7, false, false},
		{"small transposed", true, true, 9, 8, 3, 11, false, false},
		{"broadcast B", false, true, 12, 20, 30, 40, false, true},
		{"broadcast A", true, false, 4, 33, 17, 9, true, false},
		{"large", false, false, 3, 130, 120, 110, false, false},
		{"one", false, false, 1, 3, 4, 5, false, false},
	} {
		for _, par := range []int{0, 1, 3} {
			t.Run(fmt.Sprintf("%s/p=%d", tc.name, par), func(t *testing.T) {
				ar, ac, br, bc := tc.m, tc.k, tc.k, tc.n
				if tc.transA {
					ar, ac = ac, ar
				}
				if tc.transB {
					br, bc = bc, br
				}
				lda, ldb, ldc := ac+1, bc+2, tc.n+3
				strideA, strideB, strideC := ar*lda, br*ldb, tc.m*ldc
				if tc.broadcastA {
					strideA = 0
				}
				if tc.broadcastB {
					strideB = 0
				}
				a := randSlice(rng, (tc.batch-1)*strideA+ar*lda)
				b := randSlice(rng, (tc.batch-1)*strideB+br*ldb)
				c := randSlice(rng, tc.batch*strideC)
				want := append([]float32(nil), c...)
				for i := range tc.batch {
					Config{Parallelism: 1}.Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, 0.5, a[i*strideA:], lda, b[i*strideB:], ldb, 2, want[i*strideC:], ldc)
				}
				Config{Parallelism: par}.SgemmBatch(tc.transA, tc.transB, tc.batch, tc.m, tc.n, tc.k, 0.5, a, lda, strideA, b, ldb, strideB, 2, c, ldc, strideC)
				for i := range c {
					if d := math.Abs(float64(c[i] - want[i])); d > 1e-4 {
						t.Fatalf("SgemmBatch: c[%d] = %v, want %v", i, c[i], want[i])
					}
				}
			})
		}
	}
}

func TestSgemmBatchPanics(t *testing.T) {
	a, b, c := make([]float32, 12), make([]float32, 12), make([]float32, 8)
	for _, tc := range []struct {
		name string
		call func()
		want string
	}{
		{"short a", func() { SgemmBatch(false, false, 2, 2, 2, 3, 1, a[:11], 3, 6, b, 2, 6, 0, c, 2, 4) }, "len(a) = 11"},
		{"short c", func() { SgemmBatch(false, false, 2, 2, 2, 3, 1, a, 3, 6, b, 2, 6, 0, c[:7], 2, 4) }, "len(c) = 7"},
		{"overlapping c", func() { SgemmBatch(false, false, 2, 2, 2, 3, 1, a, 3, 6, b, 2, 6, 0, c, 2, 3) }, "strideC = 3"},
		{"negative stride", func() { SgemmBatch(false, false, 2, 2, 2, 3, 1, a, 3, -6, b, 2, 6, 0, c, 2, 4) }, "negative batch or stride"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Errorf("panic = %v, want a message containing %q", r, tc.want)
				}
			}()
			tc.call()
		})
	}
}
