//go:build !amd64 || purego

package gemm

// bestKernel is the fastest kernel available: without the amd64 assembly,
// the portable one.
var bestKernel = goKernel

// kernels lists every kernel this CPU can run, for tests and benchmarks.
func kernels() []*kernel { return []*kernel{goKernel} }
