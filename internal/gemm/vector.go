package gemm

import "sync"

// vectorFlops is the size (n*k) from which a matrix-vector product is split
// across goroutines; it is memory-bound, so only large ones gain.
const vectorFlops = 1 << 18

// vector computes the products whose op(A) is one row (m == 1) or whose
// op(B) is one column (n == 1) with dot products and axpys, without packing,
// where the vectors are contiguous. It reports false, having done nothing,
// for the shapes it does not handle.
//
// Except for m == 1 with transB, each element gets the arithmetic it would
// get in the same row of a product of more rows: the n == 1 case is chosen
// whatever m, and the m == 1 case accumulates each kcBlock of k the way the
// micro-kernels do (see rowProduct). So a row of C does not change with the
// rows beside it, which dynamic batching relies on.
func (cfg Config) vector(kern *kernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	switch {
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
	case m == 1 && transB && (!transA || k == 1 || lda == 1):
		// op(B) column j is row j of B: a dot product each. Faster than
		// the packed order, which would need B transposed.
		x := a[:k]
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
	case m == 1 && (!transA || k == 1 || lda == 1):
		// op(B) rows are rows of B.
		p := productPool.Get().(*product)
		if cap(p.buf) < n {
			p.buf = make([]float32, n)
		}
		t := p.buf[:n]
		cfg.split(n, n*k, func(lo, hi int) {
			rowProduct(kern, k, alpha, a[:k], b[lo:], ldb, beta, c[lo:hi], t[lo:hi])
		})
		productPool.Put(p)
		return true
	}
	return false
}

// rowProduct sets c = alpha*x*B + beta*c for one row x of k values and the
// len(c) columns of B (row stride ldb) with the arithmetic of the
// micro-kernels: for each block of kcBlock rows of B, a sum from zero,
// one fused multiply-add per row in order (t, the scratch, holds the sums),
// then c = alpha*sum + beta*c as the kernel stores it, beta being 1 after
// the first block.
func rowProduct(kern *kernel, k int, alpha float32, x, b []float32, ldb int, beta float32, c, t []float32) {
	n := len(c)
	for pc := 0; pc < k; pc += kcBlock {
		kb := min(kcBlock, k-pc)
		clear(t)
		for q := pc; q < pc+kb; q++ {
			kern.axpy(x[q], b[q*ldb:q*ldb+n], t)
		}
		for j := range t {
			t[j] *= alpha
		}
		if pc > 0 {
			beta = 1
		}
		if beta != 0 {
			kern.axpy(beta, c, t) // t += beta*c, fused as the kernels do
		}
		copy(c, t)
	}
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
