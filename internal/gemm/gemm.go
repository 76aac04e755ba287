// Package gemm multiplies dense single-precision matrices: the kernel under
// shoal's ONNX Gemm, MatMul and Conv (via im2col) operators.
//
// Sgemm follows the BLAS sgemm contract for row-major matrices. It is a
// GotoBLAS/BLIS-style implementation: op(A) and op(B) are packed into
// contiguous panels sized for the L1 and L2 caches, and a register-blocked
// micro-kernel computes one small tile of C at a time. On amd64 the
// micro-kernel is Go assembly: 12×32 tiles with AVX-512F, 6×16 tiles with
// AVX2 and FMA, chosen once from CPUID. Elsewhere, or with the purego build
// tag, a pure-Go kernel computes the same result, much more slowly.
// Matrix-vector products (m or n of 1) skip packing. Large products are
// split across goroutines; small ones run on the calling goroutine.
//
// The package does not do float64, complex or integer products, does not
// check for aliasing between C and A or B (which gives undefined results),
// and does not reproduce results bit for bit across kernels: sums are
// accumulated in a different order. With one kernel, each row of C gets the
// same arithmetic whatever m and the parallelism (so a batch of rows gives
// each row what it gets alone), except a product of one row with transB,
// which takes dot products in another order.
package gemm

import (
	"fmt"
	"runtime"
)

// Config tunes Sgemm. The zero value is ready to use and is what the
// package-level Sgemm uses. A Config is a plain value: copying it is fine and
// one Config may be used from any number of goroutines at once.
type Config struct {
	// Parallelism is the most goroutines one product may use, the calling
	// goroutine included. Zero (or a negative value) means
	// runtime.GOMAXPROCS(0); 1 means the product runs on the calling
	// goroutine only. Products below an internal size threshold always run
	// on the calling goroutine.
	Parallelism int

	// kern overrides the micro-kernel; nil means the fastest one this CPU
	// supports. Tests use it to run the pure-Go kernel on amd64.
	kern *kernel
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, op(X) = X or X^T; A is m×k (k×m if transA) with row stride lda,
// B is k×n (n×k if transB) with row stride ldb, C is m×n with row stride ldc.
// beta == 0 means C is not read (may hold NaN). Safe for concurrent use; uses
// up to Config/GOMAXPROCS goroutines for large products and none for small
// ones.
//
// It panics if a dimension is negative, a row stride is smaller than the row
// it strides over, or a slice is too short for the matrix it holds: these are
// programmer errors. It is Config{}.Sgemm.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Config{}.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Sgemm is the package-level Sgemm with cfg's settings.
func (cfg Config) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("a", ar, ac, lda, len(a))
	checkMatrix("b", br, bc, ldb, len(b))
	checkMatrix("c", m, n, ldc, len(c))
	if m == 0 || n == 0 {
		return
	}
	if alpha == 0 || k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	kern := cfg.kern
	if kern == nil {
		kern = bestKernel
	}
	if (m == 1 || n == 1) && cfg.vector(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
		return
	}
	workers := cfg.workers(m, n, k)
	p := productPool.Get().(*product)
	p.kern, p.transA, p.transB = kern, transA, transB
	p.m, p.n, p.k = m, n, k
	p.alpha, p.beta = alpha, beta
	p.a, p.lda, p.b, p.ldb, p.c, p.ldc = a, lda, b, ldb, c, ldc
	p.run(workers)
}

// parallelFlops is the product size (m*n*k multiply-adds) from which Sgemm
// splits the work across goroutines: below it (about 50µs of one core with
// AVX2) waking and synchronising goroutines costs more than it saves, all
// the more on a loaded machine. Measured on a shared 2-core machine, where a
// 128³ product ran faster on one goroutine than on two.
const parallelFlops = 160 * 160 * 160

func (cfg Config) workers(m, n, k int) int {
	w := cfg.Parallelism
	if w <= 0 {
		w = maxProcs()
	}
	if w <= 1 || m*n*k < parallelFlops {
		return 1
	}
	return w
}

func maxProcs() int { return runtime.GOMAXPROCS(0) }

// checkMatrix panics unless a slice of length n can hold a rows×cols
// row-major matrix with row stride ld.
func checkMatrix(name string, rows, cols, ld, n int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("gemm: ld%s = %d, want >= max(1, %d)", name, ld, cols))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; n < need {
		panic(fmt.Sprintf("gemm: len(%s) = %d, want >= %d for a %d×%d matrix with ld%s = %d", name, n, need, rows, cols, name, ld))
	}
}

// scaleC sets C = beta*C, or C = 0 without reading C when beta == 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}
