package onnx

import "github.com/shoal-ml/shoal/internal/gemm"

// sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, op(X) being X or its transpose: C is m×n with leading dimension
// ldc, op(A) m×k, op(B) k×n. It is the one place MatMul and Gemm call, so
// that the matrix kernel is a one-line choice: internal/gemm.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 { // an empty sum: C = beta*C, without touching A and B
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				if beta == 0 {
					row[j] = 0
				} else {
					row[j] *= beta
				}
			}
		}
		return
	}
	gemm.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmGeneric is sgemm for other element types (no alpha, beta: C = A*B).
func gemmGeneric[T number](m, n, k int, a []T, b []T, c []T) {
	for i := range m {
		row := c[i*n : i*n+n]
		clear(row)
		for p := range k {
			av := a[i*k+p]
			brow := b[p*n : p*n+n]
			for j, bv := range brow {
				row[j] += av * bv
			}
		}
	}
}
