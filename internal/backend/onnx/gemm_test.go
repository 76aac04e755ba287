package onnx

import (
	"math"
	"math/rand"
	"testing"
)

// sgemmLoop is the textbook triple loop sgemm is checked against.
func sgemmLoop(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float64
				if transA {
					av = float64(a[p*lda+i])
				} else {
					av = float64(a[i*lda+p])
				}
				if transB {
					bv = float64(b[j*ldb+p])
				} else {
					bv = float64(b[p*ldb+j])
				}
				s += av * bv
			}
			v := float64(alpha) * s
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
			}
			c[i*ldc+j] = float32(v)
		}
	}
}

func TestSgemm(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tests := []struct {
		name           string
		m, n, k        int
		transA, transB bool
		alpha, beta    float32
	}{
		{"vector", 1, 7, 5, false, false, 1, 0},
		{"square", 33, 33, 33, false, false, 1, 0},
		{"transposed", 17, 9, 40, true, true, 0.5, 2},
		{"empty sum", 3, 4, 0, false, false, 1, 3},
		{"large", 130, 70, 200, false, true, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := make([]float32, tt.m*tt.k)
			b := make([]float32, tt.k*tt.n)
			c := make([]float32, tt.m*tt.n)
			for _, s := range [][]float32{a, b, c} {
				for i := range s {
					s[i] = rng.Float32()*2 - 1
				}
			}
			want := append([]float32(nil), c...)
			lda, ldb := tt.k, tt.n
			if tt.transA {
				lda = tt.m
			}
			if tt.transB {
				ldb = tt.k
			}
			sgemm(tt.transA, tt.transB, tt.m, tt.n, tt.k, tt.alpha, a, lda, b, ldb, tt.beta, c, tt.n)
			sgemmLoop(tt.transA, tt.transB, tt.m, tt.n, tt.k, tt.alpha, a, lda, b, ldb, tt.beta, want, tt.n)
			for i := range c {
				if math.Abs(float64(c[i]-want[i])) > 1e-4*math.Max(1, math.Abs(float64(want[i]))) {
					t.Fatalf("C[%d] = %v, want %v", i, c[i], want[i])
				}
			}
		})
	}
}
