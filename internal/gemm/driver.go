package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Cache blocking, in elements. One packed B micro-panel (kcBlock×nr) stays in
// L1 while the kernel sweeps it over mcBlock rows of packed A, which stay in
// L2; one packed B block (kcBlock×ncBlock) is shared by all goroutines. For
// the 6×16 AVX2 kernel that is 16 KiB of B, 144 KiB of A and at most 4 MiB of
// shared B, sized for 32-48 KiB L1d and 512 KiB-1 MiB L2 per core; for the
// 12×32 AVX-512 kernel, 32 KiB of B and the same A.
const (
	kcBlock = 256
	mcBlock = 144  // a multiple of every kernel's mr
	ncBlock = 4096 // a multiple of every kernel's nr
)

// product is one Sgemm call in flight, shared by its goroutines.
type product struct {
	kern           *kernel
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a, b, c        []float32
	lda, ldb, ldc  int

	buf    []float32 // backing store of ap, bp and tmp, kept across uses
	ap, bp []float32 // packed A (all rows, one kc block), packed B (one kc×nc block)
	tmp    []float32 // one mr×nr edge tile per goroutine
	bar    barrier
}

// productPool holds *product values with their packing buffers, so
// steady-state products of similar sizes allocate nothing.
var productPool = sync.Pool{New: func() any { return new(product) }}

// run computes the product with workers goroutines and returns p to
// productPool; p must not be used afterwards.
func (p *product) run(workers int) {
	mr, nr := p.kern.mr, p.kern.nr
	kc := min(p.k, kcBlock)
	nc := min(roundUp(p.n, nr), ncBlock)
	aLen, bLen := roundUp(p.m, mr)*kc, nc*kc
	if need := aLen + bLen + workers*mr*nr; cap(p.buf) < need {
		p.buf = make([]float32, need)
	}
	s := p.buf
	p.ap, p.bp, p.tmp = s[:aLen], s[aLen:aLen+bLen], s[aLen+bLen:]
	if workers == 1 {
		p.work(0, 1)
	} else {
		p.bar.n = int32(workers)
		p.bar.cond.L = &p.bar.mu
		var wg sync.WaitGroup
		wg.Add(workers - 1)
		for w := 1; w < workers; w++ {
			go func() {
				defer wg.Done()
				p.work(w, workers)
			}()
		}
		p.work(0, workers)
		wg.Wait()
	}
	p.ap, p.bp, p.tmp, p.a, p.b, p.c = nil, nil, nil, nil, nil, nil
	productPool.Put(p)
}

// work is goroutine w of workers: for each block of packed B it packs its
// share of A and B panels, waits for the others, computes its rectangle of
// tiles and waits again before the buffers are reused.
func (p *product) work(w, workers int) {
	mr, nr := p.kern.mr, p.kern.nr
	tmp := p.tmp[w*mr*nr : (w+1)*mr*nr]
	mPanels := ceilDiv(p.m, mr)
	for jc := 0; jc < p.n; jc += ncBlock {
		nb := min(ncBlock, p.n-jc)
		nPanels := ceilDiv(nb, nr)
		// Split the tile grid along the dimension that balances best; rows
		// on a tie, so each goroutine packs the A rows it then multiplies.
		byRows := imbalance(mPanels, workers) <= imbalance(nPanels, workers)
		i0, i1, j0, j1 := 0, mPanels, 0, nPanels
		if byRows {
			i0, i1 = share(mPanels, w, workers)
		} else {
			j0, j1 = share(nPanels, w, workers)
		}
		for pc := 0; pc < p.k; pc += kcBlock {
			kb := min(kcBlock, p.k-pc)
			lo, hi := share(mPanels, w, workers)
			for ip := lo; ip < hi; ip++ {
				p.packA(p.ap[ip*mr*kb:(ip+1)*mr*kb], ip*mr, pc, kb)
			}
			lo, hi = share(nPanels, w, workers)
			for jp := lo; jp < hi; jp++ {
				p.packB(p.bp[jp*nr*kb:(jp+1)*nr*kb], jc+jp*nr, pc, kb)
			}
			if workers > 1 {
				p.bar.wait()
			}
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			p.compute(i0, i1, j0, j1, jc, kb, beta, tmp)
			if workers > 1 && (pc+kcBlock < p.k || jc+ncBlock < p.n) {
				p.bar.wait() // the next block reuses the buffers
			}
		}
	}
}

// compute multiplies the packed panels for tile rows [i0,i1) and tile
// columns [j0,j1) of the current block into C.
func (p *product) compute(i0, i1, j0, j1, jc, kb int, beta float32, tmp []float32) {
	kern := p.kern
	mr, nr := kern.mr, kern.nr
	mcPanels := mcBlock / mr
	load := beta != 0
	for ib := i0; ib < i1; ib += mcPanels {
		ie := min(ib+mcPanels, i1)
		for jp := j0; jp < j1; jp++ {
			bpan := p.bp[jp*nr*kb : (jp+1)*nr*kb]
			cj := jc + jp*nr
			cols := min(nr, p.n-cj)
			for ip := ib; ip < ie; ip++ {
				apan := p.ap[ip*mr*kb : (ip+1)*mr*kb]
				ci := ip * mr
				rows := min(mr, p.m-ci)
				if rows == mr && cols == nr {
					kern.fn(kb, apan, bpan, p.c[ci*p.ldc+cj:], p.ldc, p.alpha, beta, load)
					continue
				}
				// An edge tile goes through tmp, with C's values when the
				// kernel reads them, so that it gets the arithmetic of a
				// full tile: a row of C does not depend on where m ends.
				if load {
					for i := range rows {
						copy(tmp[i*nr:i*nr+cols], p.c[(ci+i)*p.ldc+cj:(ci+i)*p.ldc+cj+cols])
					}
				}
				kern.fn(kb, apan, bpan, tmp, nr, p.alpha, beta, load)
				for i := range rows {
					copy(p.c[(ci+i)*p.ldc+cj:(ci+i)*p.ldc+cj+cols], tmp[i*nr:i*nr+cols])
				}
			}
		}
	}
}

// packA packs rows [i0, i0+mr) and columns [pc, pc+kb) of op(A) into dst as
// dst[p*mr+i], zero-filling rows past m.
func (p *product) packA(dst []float32, i0, pc, kb int) {
	mr := p.kern.mr
	rows := min(mr, p.m-i0)
	dst = dst[:mr*kb]
	if p.transA { // op(A)[i][q] = a[q*lda+i]: rows of A are columns of op(A)
		for q := range kb {
			src := p.a[(pc+q)*p.lda+i0 : (pc+q)*p.lda+i0+rows]
			d := dst[q*mr : q*mr+mr]
			copy(d, src)
			clear(d[rows:])
		}
		return
	}
	if rows == 6 && mr == 6 {
		r0 := p.a[(i0+0)*p.lda+pc : (i0+0)*p.lda+pc+kb]
		r1 := p.a[(i0+1)*p.lda+pc : (i0+1)*p.lda+pc+kb]
		r2 := p.a[(i0+2)*p.lda+pc : (i0+2)*p.lda+pc+kb]
		r3 := p.a[(i0+3)*p.lda+pc : (i0+3)*p.lda+pc+kb]
		r4 := p.a[(i0+4)*p.lda+pc : (i0+4)*p.lda+pc+kb]
		r5 := p.a[(i0+5)*p.lda+pc : (i0+5)*p.lda+pc+kb]
		for q := range kb {
			d := dst[q*6 : q*6+6]
			d[0], d[1], d[2], d[3], d[4], d[5] = r0[q], r1[q], r2[q], r3[q], r4[q], r5[q]
		}
		return
	}
	if rows == 12 && mr == 12 {
		p.packA12(dst, i0, pc, kb)
		return
	}
	for i := range mr {
		if i >= rows {
			for q := range kb {
				dst[q*mr+i] = 0
			}
			continue
		}
		src := p.a[(i0+i)*p.lda+pc : (i0+i)*p.lda+pc+kb]
		for q, v := range src {
			dst[q*mr+i] = v
		}
	}
}

// packB packs rows [pc, pc+kb) and columns [j0, j0+nr) of op(B) into dst as
// dst[q*nr+j], zero-filling columns past n.
func (p *product) packB(dst []float32, j0, pc, kb int) {
	nr := p.kern.nr
	cols := min(nr, p.n-j0)
	dst = dst[:nr*kb]
	if !p.transB {
		for q := range kb {
			src := p.b[(pc+q)*p.ldb+j0 : (pc+q)*p.ldb+j0+cols]
			d := dst[q*nr : q*nr+nr]
			copy(d, src)
			clear(d[cols:])
		}
		return
	}
	// op(B)[q][j] = b[j*ldb+q]: rows of B are columns of op(B).
	if nr == 16 && cols == 16 {
		p.packB16T(dst, j0, pc, kb)
		return
	}
	for j := range nr {
		if j >= cols {
			for q := range kb {
				dst[q*nr+j] = 0
			}
			continue
		}
		src := p.b[(j0+j)*p.ldb+pc : (j0+j)*p.ldb+pc+kb]
		for q, v := range src {
			dst[q*nr+j] = v
		}
	}
}

// share is the half-open range of n items that goroutine w of workers owns.
func share(n, w, workers int) (lo, hi int) {
	return n * w / workers, n * (w + 1) / workers
}

// imbalance is how many items the busiest of workers gets, relative to n:
// the time splitting n items takes, in units of one item, scaled by n.
func imbalance(n, workers int) float64 {
	return float64(ceilDiv(n, workers)*workers) / float64(n)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }

// barrier blocks goroutines until all n have called wait; reusable. A
// waiter spins briefly before it sleeps: the goroutines of one product reach
// the barrier within microseconds of each other, and waking a sleeping
// goroutine costs about as long as a small product.
type barrier struct {
	n       int32
	in      atomic.Int32
	release atomic.Uint32

	mu   sync.Mutex
	cond sync.Cond
}

// barrierSpins bounds the spinning of barrier.wait, about 10-20µs.
const barrierSpins = 2000

func (b *barrier) wait() {
	gen := b.release.Load()
	if b.in.Add(1) == b.n {
		b.in.Store(0)
		b.mu.Lock()
		b.release.Add(1)
		b.cond.Broadcast()
		b.mu.Unlock()
		return
	}
	for i := 0; i < barrierSpins; i++ {
		if b.release.Load() != gen {
			return
		}
		if i%64 == 63 {
			runtime.Gosched()
		}
	}
	b.mu.Lock()
	for b.release.Load() == gen {
		b.cond.Wait()
	}
	b.mu.Unlock()
}

// packB16T is packB for a full 16-column panel of a transposed B: it reads
// 16 rows of B side by side so that each packed row is written once.
func (p *product) packB16T(dst []float32, j0, pc, kb int) {
	var rows [16][]float32
	for j := range rows {
		rows[j] = p.b[(j0+j)*p.ldb+pc : (j0+j)*p.ldb+pc+kb]
	}
	for q := range kb {
		d := dst[q*16 : q*16+16]
		d[0], d[1], d[2], d[3] = rows[0][q], rows[1][q], rows[2][q], rows[3][q]
		d[4], d[5], d[6], d[7] = rows[4][q], rows[5][q], rows[6][q], rows[7][q]
		d[8], d[9], d[10], d[11] = rows[8][q], rows[9][q], rows[10][q], rows[11][q]
		d[12], d[13], d[14], d[15] = rows[12][q], rows[13][q], rows[14][q], rows[15][q]
	}
}

// packA12 is packA for a full 12-row panel of an untransposed A: it reads
// 12 rows of A side by side so that each packed column is written once.
func (p *product) packA12(dst []float32, i0, pc, kb int) {
	var rows [12][]float32
	for i := range rows {
		rows[i] = p.a[(i0+i)*p.lda+pc : (i0+i)*p.lda+pc+kb]
	}
	for q := range kb {
		d := dst[q*12 : q*12+12]
		d[0], d[1], d[2], d[3] = rows[0][q], rows[1][q], rows[2][q], rows[3][q]
		d[4], d[5], d[6], d[7] = rows[4][q], rows[5][q], rows[6][q], rows[7][q]
		d[8], d[9], d[10], d[11] = rows[8][q], rows[9][q], rows[10][q], rows[11][q]
	}
}
