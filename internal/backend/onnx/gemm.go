package onnx

// sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, op(X) being X or its transpose: C is m×n with leading dimension
// ldc, op(A) m×k, op(B) k×n. It is the one place MatMul and Gemm call, so
// that switching to the internal/gemm kernels is a one-line change.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
		} else if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
		for p := range k {
			var av float32
			if transA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			av *= alpha
			if av == 0 {
				continue
			}
			if !transB {
				brow := b[p*ldb : p*ldb+n]
				for j, bv := range brow {
					row[j] += av * bv
				}
			} else {
				for j := range row {
					row[j] += av * b[j*ldb+p]
				}
			}
		}
	}
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
