//go:build amd64 && !purego

package gemm

// avx2Kernel is the AVX2+FMA micro-kernel of sgemm_amd64.s: a 6×16 tile held
// in 12 YMM accumulators.
var avx2Kernel = &kernel{name: "avx2-6x16", mr: 6, nr: 16, fn: kernelAVX2, dot: dotAVX2, axpy: axpyAVX2}

// avx512Kernel is the AVX-512 micro-kernel of sgemm_amd64.s: a 12×32 tile
// held in 24 ZMM accumulators. Matrix-vector products use the AVX2 ones.
var avx512Kernel = &kernel{name: "avx512-12x32", mr: 12, nr: 32, fn: kernelAVX512, dot: dotAVX2, axpy: axpyAVX2}

//go:generate sh -c "python3 gen_sgemm_amd64.py > sgemm_amd64.s"

// bestKernel is the fastest kernel this CPU supports, decided once.
var bestKernel = kernels()[len(kernels())-1]

// kernels lists every kernel this CPU can run, slowest first, for tests and
// benchmarks.
func kernels() []*kernel {
	switch {
	case hasAVX512():
		return []*kernel{goKernel, avx2Kernel, avx512Kernel}
	case hasAVX2FMA():
		return []*kernel{goKernel, avx2Kernel}
	}
	return []*kernel{goKernel}
}

// hasAVX512 reports whether the CPU has AVX2, FMA and AVX-512F and the OS
// saves the opmask and ZMM registers.
func hasAVX512() bool {
	if !hasAVX2FMA() {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&0xe6 != 0xe6 { // XMM, YMM, opmask, ZMM0-15 upper halves, ZMM16-31
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx512f = 1 << 16
	return ebx7&avx512f != 0
}

// hasAVX2FMA reports whether the CPU has AVX2 and FMA and the OS saves the
// YMM registers across context switches.
func hasAVX2FMA() bool {
	maxID, _, _, _ := cpuid(0, 0)
	if maxID < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 { // XMM and YMM state
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	const avx2 = 1 << 5
	return ebx7&avx2 != 0
}

func kernelAVX2(k int, a, b, c []float32, ldc int, alpha, beta float32, load bool) {
	_ = a[6*k-1]
	_ = b[16*k-1]
	_ = c[5*ldc+15]
	sgemm6x16(k, &a[0], &b[0], &c[0], ldc, alpha, beta, load)
}

func kernelAVX512(k int, a, b, c []float32, ldc int, alpha, beta float32, load bool) {
	_ = a[12*k-1]
	_ = b[32*k-1]
	_ = c[11*ldc+31]
	sgemm12x32(k, &a[0], &b[0], &c[0], ldc, alpha, beta, load)
}

// sgemm12x32 is kernel.fn for avx512Kernel without bounds checks; k >= 1.
//
//go:noescape
func sgemm12x32(k int, a, b, c *float32, ldc int, alpha, beta float32, load bool)

// sgemm6x16 is kernel.fn for avx2Kernel without bounds checks; k >= 1.
//
//go:noescape
func sgemm6x16(k int, a, b, c *float32, ldc int, alpha, beta float32, load bool)

func dotAVX2(x, y []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	_ = y[len(x)-1]
	return sdot(len(x), &x[0], &y[0])
}

func axpyAVX2(alpha float32, x, y []float32) {
	if len(x) == 0 {
		return
	}
	_ = y[len(x)-1]
	saxpy(len(x), alpha, &x[0], &y[0])
}

//go:noescape
func sdot(n int, x, y *float32) float32

//go:noescape
func saxpy(n int, alpha float32, x, y *float32)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)
