package gemm

import (
	"fmt"
	"sync"
)

// SgemmBatch computes batch independent products
// C_i = alpha*op(A_i)*op(B_i) + beta*C_i for i < batch, where A_i starts at
// a[i*strideA], B_i at b[i*strideB] and C_i at c[i*strideC], each laid out
// as for Sgemm. A stride of 0 for A or B reuses one matrix for every product,
// as MatMul broadcasting does; C_i must not overlap, so strideC must be at
// least (m-1)*ldc+n when batch > 1. Small products run in parallel across
// the batch, large ones one after another, each split as Sgemm splits it.
// Safe for concurrent use. It panics on the programmer errors Sgemm panics
// on, on negative strides and on overlapping C_i. It is
// Config{}.SgemmBatch.
func SgemmBatch(transA, transB bool, batch, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int) {
	Config{}.SgemmBatch(transA, transB, batch, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC)
}

// SgemmBatch is the package-level SgemmBatch with cfg's settings.
func (cfg Config) SgemmBatch(transA, transB bool, batch, m, n, k int, alpha float32, a []float32, lda, strideA int, b []float32, ldb, strideB int, beta float32, c []float32, ldc, strideC int) {
	if batch < 0 || strideA < 0 || strideB < 0 || strideC < 0 {
		panic(fmt.Sprintf("gemm: negative batch or stride: batch=%d strideA=%d strideB=%d strideC=%d", batch, strideA, strideB, strideC))
	}
	if batch == 0 {
		return
	}
	if batch > 1 && m > 0 && n > 0 && strideC < (m-1)*ldc+n {
		panic(fmt.Sprintf("gemm: strideC = %d, want >= %d so that the %d×%d C matrices do not overlap", strideC, (m-1)*ldc+n, m, n))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	// Check the last product here, so a short slice panics with a message
	// rather than a slice-bounds error.
	last := batch - 1
	checkBatch("a", last*strideA, ar, ac, lda, len(a))
	checkBatch("b", last*strideB, br, bc, ldb, len(b))
	checkBatch("c", last*strideC, m, n, ldc, len(c))
	one := func(i int, cfg Config) {
		cfg.Sgemm(transA, transB, m, n, k, alpha, a[i*strideA:], lda, b[i*strideB:], ldb, beta, c[i*strideC:], ldc)
	}
	workers := cfg.Parallelism
	if workers <= 0 {
		workers = maxProcs()
	}
	workers = min(workers, batch)
	if workers <= 1 || cfg.workers(m, n, k) > 1 || batch*m*n*k < parallelFlops {
		for i := range batch {
			one(i, cfg)
		}
		return
	}
	serial := cfg
	serial.Parallelism = 1
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := share(batch, w, workers)
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				one(i, serial)
			}
		})
	}
	wg.Wait()
}

// checkBatch panics unless a slice of length n holds a rows×cols matrix
// with row stride ld starting at off.
func checkBatch(name string, off, rows, cols, ld, n int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: ld%s = %d, want >= max(1, %d)", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := off + (rows-1)*ld + cols; n < need {
		panic(fmt.Sprintf("gemm: len(%s) = %d, want >= %d for the last %d×%d matrix of the batch at offset %d with ld%s = %d", name, n, need, rows, cols, off, name, ld))
	}
}
