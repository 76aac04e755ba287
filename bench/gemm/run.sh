#!/usr/bin/env bash
# bench/gemm/run.sh: the benchmark of the internal/gemm issue, reported in
# docs/gemm.md. Run from anywhere as `bash bench/gemm/run.sh`.
#
# It compares single-precision square matrix products C = A*B for n in
# SIZES, timed in the same invocation by
#
#   numpy   float32 `a @ b` in /usr/bin/python3 (Debian python3-numpy, which
#           calls OpenBLAS), with OpenBLAS's default thread count
#   shoal   BenchmarkSgemm of internal/gemm, gemm.Sgemm with the zero Config
#           (GOMAXPROCS goroutines, the best kernel: AVX-512 where present)
#   shoal AVX2  BenchmarkSgemmKernel/avx2-6x16, the same with the AVX2
#           kernel forced: the like-for-like comparison when OpenBLAS runs
#           its AVX2 (Haswell) kernels
#
# both counting 2*n^3 floating-point operations per product. To spread the
# noise of a shared machine over both, it alternates them for ROUNDS rounds;
# in each round numpy takes REPS samples per size (each sample a loop of at
# least 50 ms) and Go runs the benchmark REPS times (-benchtime BENCHTIME).
# It prints the machine, which OpenBLAS kernel numpy ran (threadpoolctl when
# installed, else numpy.show_config()), the load average before and after,
# and a markdown table of the medians with shoal/numpy ratios. The
# environment is left as it is: OPENBLAS_CORETYPE and OPENBLAS_NUM_THREADS,
# if set, apply to numpy, and GOMAXPROCS to Go.
#
# Environment: SIZES ("128 256 512 1024"), ROUNDS (3), REPS (5),
# BENCHTIME (0.2s), PYTHON (/usr/bin/python3; needs numpy:
# `apt-get install -y python3-numpy`).
set -euo pipefail

cd "$(dirname "$0")/../.."
SIZES=${SIZES:-"128 256 512 1024"}
ROUNDS=${ROUNDS:-3}
REPS=${REPS:-5}
BENCHTIME=${BENCHTIME:-0.2s}
PYTHON=${PYTHON:-/usr/bin/python3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/gemm.test" ./internal/gemm

echo "## machine"
echo
echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) logical CPUs"
echo "- SIMD flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|fma|avx512f|avx512vl)$' | tr '\n' ' ')"
echo "- $(go version); GOMAXPROCS=${GOMAXPROCS:-unset}"
echo "- environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset} OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
"$PYTHON" - <<'PY'
import numpy
try:
    import threadpoolctl
    for p in threadpoolctl.threadpool_info():
        if p.get("user_api") == "blas":
            print(f"- numpy {numpy.__version__}: {p.get('internal_api')} {p.get('version')}, "
                  f"kernel {p.get('architecture')}, {p.get('num_threads')} threads, {p.get('filepath')}")
except ImportError:
    print(f"- numpy {numpy.__version__} (threadpoolctl not installed; numpy.show_config() follows)")
    numpy.show_config()
PY
echo "- load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

numpy_round() {
	SIZES="$SIZES" REPS="$REPS" "$PYTHON" - <<'PY'
import os, time, numpy as np
rng = np.random.default_rng(1)
for n in map(int, os.environ["SIZES"].split()):
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    a @ b
    t0 = time.perf_counter(); a @ b; once = time.perf_counter() - t0
    loops = max(1, int(0.05 / max(once, 1e-6)))
    for _ in range(int(os.environ["REPS"])):
        t0 = time.perf_counter()
        for _ in range(loops):
            a @ b
        dt = (time.perf_counter() - t0) / loops
        print(f"numpy {n} {2 * n**3 / dt / 1e9:.2f}")
PY
}

go_round() {
	local re
	re=$(echo "$SIZES" | sed 's/ \+/|/g')
	for bench in "^BenchmarkSgemm\$/^n=($re)\$" "^BenchmarkSgemmKernel\$/^avx2-6x16\$/^n=($re)\$"; do
		"$tmp/gemm.test" -test.run '^$' -test.bench "$bench" \
			-test.benchtime "$BENCHTIME" -test.count "$REPS"
	done |
		awk '/^BenchmarkSgemm/ {
			who = ($1 ~ /avx2/) ? "shoal-avx2" : "shoal"
			n = $1; sub(/.*n=/, "", n); sub(/-.*/, "", n)
			for (i = 1; i < NF; i++) if ($(i+1) == "GFLOP/s") print who, n, $i
		}'
}

for r in $(seq "$ROUNDS"); do
	numpy_round >>"$tmp/samples"
	go_round >>"$tmp/samples"
done
echo "- load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- samples per cell: $((ROUNDS * REPS)) (ROUNDS=$ROUNDS × REPS=$REPS), Go -benchtime $BENCHTIME"
echo

"$PYTHON" - "$tmp/samples" <<'PY'
import statistics, sys
samples = {}
for line in open(sys.argv[1]):
    who, n, g = line.split()
    samples.setdefault((who, int(n)), []).append(float(g))
sizes = sorted({n for _, n in samples})
def cell(xs):
    return f"{statistics.median(xs):.1f} ({min(xs):.0f}-{max(xs):.0f})" if xs else "-"
print("| n | numpy GFLOP/s | shoal GFLOP/s | shoal/numpy | shoal AVX2 GFLOP/s | AVX2/numpy |")
print("|---:|---:|---:|---:|---:|---:|")
med = lambda xs: statistics.median(xs) if xs else float("nan")
for n in sizes:
    np_, sh, av = (samples.get((w, n), []) for w in ("numpy", "shoal", "shoal-avx2"))
    print(f"| {n} | {cell(np_)} | {cell(sh)} | {med(sh) / med(np_):.2f} | {cell(av)} | {med(av) / med(np_):.2f} |")
print()
print("Cells: median (min-max) GFLOP/s, 2n^3 flops per product; ratios of medians.")
PY
