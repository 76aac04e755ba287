package gemm

// kernel is a register-blocked micro-kernel and the tile it computes.
//
// fn computes the mr×nr tile C = alpha*Ap*Bp (+ beta*C when load is set)
// from k ≥ 1 columns of a packed A panel (a[p*mr+i] = op(A)[i][p]) and k rows
// of a packed B panel (b[p*nr+j] = op(B)[p][j]); C has row stride ldc. When
// load is false C is only written, never read.
//
// dot and axpy are the vector operations of matrix-vector products (m == 1
// or n == 1), which skip packing: dot returns sum x[i]*y[i]; axpy sets
// y[i] += alpha*x[i]; x and y have the same length.
type kernel struct {
	name   string
	mr, nr int
	fn     func(k int, a, b, c []float32, ldc int, alpha, beta float32, load bool)
	dot    func(x, y []float32) float32
	axpy   func(alpha float32, x, y []float32)
}

// goKernel is the portable micro-kernel: a 4×4 tile, whose 16 accumulators
// fit in the floating-point registers of arm64 and nearly fit amd64's.
var goKernel = &kernel{name: "go4x4", mr: 4, nr: 4, fn: kernelGo4x4, dot: dotGo, axpy: axpyGo}

func dotGo(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+3 < len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}

func axpyGo(alpha float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += alpha * v
	}
}

func kernelGo4x4(k int, a, b, c []float32, ldc int, alpha, beta float32, load bool) {
	a = a[:4*k]
	b = b[:4*k]
	_ = c[3*ldc+3]
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	for p := 0; p+3 < len(a) && p+3 < len(b); p += 4 {
		a0, a1, a2, a3 := a[p], a[p+1], a[p+2], a[p+3]
		b0, b1, b2, b3 := b[p], b[p+1], b[p+2], b[p+3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	store4(c[0*ldc:0*ldc+4], c00, c01, c02, c03, alpha, beta, load)
	store4(c[1*ldc:1*ldc+4], c10, c11, c12, c13, alpha, beta, load)
	store4(c[2*ldc:2*ldc+4], c20, c21, c22, c23, alpha, beta, load)
	store4(c[3*ldc:3*ldc+4], c30, c31, c32, c33, alpha, beta, load)
}

func store4(row []float32, x0, x1, x2, x3, alpha, beta float32, load bool) {
	row = row[:4]
	if load {
		row[0] = alpha*x0 + beta*row[0]
		row[1] = alpha*x1 + beta*row[1]
		row[2] = alpha*x2 + beta*row[2]
		row[3] = alpha*x3 + beta*row[3]
		return
	}
	row[0] = alpha * x0
	row[1] = alpha * x1
	row[2] = alpha * x2
	row[3] = alpha * x3
}
