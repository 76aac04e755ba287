package gemm

import "sync"

// vectorFlops is the size (n*k) from which a matrix-vector product is split
// across goroutines; it is memory-bound, so only large ones gain.
const vectorFlops = 1 << 18

// vector computes the products whose op(A) is one row (m == 1) or whose
// op(B) is one column (n == 1) with dot products and axpys, without packing,
// where the vectors are contiguous. It reports false, having done nothing,
// for the shapes it does not handle.
func (cfg Config) vector(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	switch {
	case m == 1 && (!transA || k == 1 || lda == 1):
		// x = op(A) row 0, contiguous; c[0][j] over j.
		x := a[:k]
		if transB { // op(B) column j is row j of B: a dot product each
			cfg.split(n, n*k, func(lo, hi int) {
				for j := lo; j < hi; j++ {
					d := alpha * kern.dot(x, b[j*ldb:j*ldb+k])
					if beta != 0 {
						d += beta * c[j]
					}
					c[j] = d
				}
			})
			return true
		}
		// op(B) rows are rows of B: c[0][:] += alpha*x[p]*B[p][:].
		cfg.split(n, n*k, func(lo, hi int) {
			scaleC(1, hi-lo, beta, c[lo:hi], hi-lo)
			for p, v := range x {
				kern.axpy(alpha*v, b[p*ldb+lo:p*ldb+hi], c[lo:hi])
			}
		})
		return true
	case n == 1 && !transA && (transB || k == 1 || ldb == 1):
		// y = op(B) column 0, contiguous; c[i][0] = A row i · y.
		y := b[:k]
		cfg.split(m, m*k, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				d := alpha * kern.dot(a[i*lda:i*lda+k], y)
				if beta != 0 {
					d += beta * c[i*ldc]
				}
				c[i*ldc] = d
			}
		})
		return true
	}
	return false
}

// split runs f over [0, n) on the calling goroutine, or in contiguous
// shares on up to cfg's parallelism goroutines when size is large enough.
func (cfg Config) split(n, size int, f func(lo, hi int)) {
	w := cfg.Parallelism
	if w <= 0 {
		w = maxProcs()
	}
	if size < vectorFlops {
		w = 1
	}
	w = min(w, n/64+1) // keep shares large enough to be worth a goroutine
	if w <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 1; i < w; i++ {
		lo, hi := share(n, i, w)
		wg.Go(func() { f(lo, hi) })
	}
	lo, hi := share(n, 0, w)
	f(lo, hi)
	wg.Wait()
}
