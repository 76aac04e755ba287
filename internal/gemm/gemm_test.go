package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// naive is the reference: a triple loop over op(A) and op(B) accumulated in
// float64. It also returns, per element, alpha*sum|a||b| + |beta*c|, the
// scale of the rounding error a float32 sum of those terms may make.
func naive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := range m {
		for j := range n {
			var sum, abs float64
			for p := range k {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				sum += float64(av) * float64(bv)
				abs += math.Abs(float64(av) * float64(bv))
			}
			w := float64(alpha) * sum
			s := math.Abs(float64(alpha)) * abs
			if beta != 0 {
				w += float64(beta) * float64(c[i*ldc+j])
				s += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
			want[i*n+j], scale[i*n+j] = w, s
		}
	}
	return want, scale
}

// guard fills the padding of C, which Sgemm must leave untouched.
const guard = -7

type shape struct {
	name           string
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra elements per row beyond the width: lda, ldb, ldc > width
}

func (s shape) String() string {
	return fmt.Sprintf("%s/tA=%v,tB=%v,m=%d,n=%d,k=%d,alpha=%g,beta=%g,pad=%d", s.name, s.transA, s.transB, s.m, s.n, s.k, s.alpha, s.beta, s.pad)
}

// check runs cfg.Sgemm for each of cfgs on the same random data of shape s
// and compares each result with naive.
func check(t *testing.T, cfgs []Config, s shape, rng *rand.Rand) {
	t.Helper()
	ar, ac := s.m, s.k
	if s.transA {
		ar, ac = s.k, s.m
	}
	br, bc := s.k, s.n
	if s.transB {
		br, bc = s.n, s.k
	}
	lda, ldb, ldc := max(1, ac)+s.pad, max(1, bc)+s.pad, max(1, s.n)+s.pad
	a := randSlice(rng, max(0, (ar-1)*lda+ac))
	b := randSlice(rng, max(0, (br-1)*ldb+bc))
	c := randSlice(rng, max(0, (s.m-1)*ldc+s.n))
	if s.beta == 0 {
		for i := range c {
			c[i] = float32(math.NaN()) // beta == 0: C must not be read
		}
	}
	want, scale := naive(s.transA, s.transB, s.m, s.n, s.k, s.alpha, a, lda, b, ldb, s.beta, c, ldc)
	for i := range s.m {
		for j := s.n; j < ldc && i*ldc+j < len(c); j++ {
			c[i*ldc+j] = guard
		}
	}
	c0 := c
	for _, cfg := range cfgs {
		c := append([]float32(nil), c0...)
		cfg.Sgemm(s.transA, s.transB, s.m, s.n, s.k, s.alpha, a, lda, b, ldb, s.beta, c, ldc)
		compare(t, cfg, s, c, ldc, want, scale)
	}
}

func compare(t *testing.T, cfg Config, s shape, c []float32, ldc int, want, scale []float64) {
	t.Helper()
	name := "best"
	if cfg.kern != nil {
		name = cfg.kern.name
	}
	bad := 0
	for i := range s.m {
		for j := range ldc {
			if i*ldc+j >= len(c) {
				break
			}
			got := c[i*ldc+j]
			if j >= s.n {
				if got != guard {
					t.Fatalf("%s/p=%d/%v: C[%d][%d] (padding) = %v, want untouched %v", name, cfg.Parallelism, s, i, j, got, float32(guard))
				}
				continue
			}
			w, sc := want[i*s.n+j], scale[i*s.n+j]
			tol := 2e-6*float64(s.k+2)*sc + 1e-30
			if d := math.Abs(float64(got) - w); !(d <= tol) {
				if bad++; bad <= 5 {
					t.Errorf("%s/p=%d/%v: C[%d][%d] = %v, want %v (tolerance %g)", name, cfg.Parallelism, s, i, j, got, w, tol)
				}
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s/p=%d/%v: %d wrong elements", name, cfg.Parallelism, s, bad)
	}
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

func TestSgemm(t *testing.T) {
	var shapes []shape
	for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
		for _, dims := range [][3]int{
			{1, 1, 1}, {1, 1, 7}, {1, 17, 1}, {5, 1, 3}, {2, 3, 4},
			{6, 16, 8}, {7, 17, 9}, {5, 15, 1}, {12, 32, 256}, {13, 33, 257},
			{31, 29, 300}, {64, 64, 64}, {100, 3, 50}, {3, 100, 50},
			{145, 40, 20}, {97, 131, 513}, {150, 4100, 3}, {1, 300, 300}, {300, 1, 300}, {1, 700, 500}, {800, 1, 400},
		} {
			for i, ab := range [][2]float32{{1, 0}, {-0.5, 2}, {1, 1}, {2, 0}, {0.25, -1}} {
				for _, pad := range []int{0, 3} {
					if testing.Short() && (i >= 2 || pad == 0 && i == 1) {
						continue // -short: beta 0 and not, tight and padded
					}
					shapes = append(shapes, shape{"grid", tr[0], tr[1], dims[0], dims[1], dims[2], ab[0], ab[1], pad})
				}
			}
		}
	}
	shapes = append(shapes,
		shape{"k=0 beta=0", false, false, 3, 4, 0, 1, 0, 1},
		shape{"k=0 beta=2", false, false, 3, 4, 0, 1, 2, 0},
		shape{"alpha=0", true, false, 5, 6, 7, 0, 0.5, 2},
		shape{"alpha=0 beta=0", false, true, 5, 6, 7, 0, 0, 0},
		shape{"m=0", false, false, 0, 6, 7, 1, 1, 0},
		shape{"n=0", false, false, 6, 0, 7, 1, 1, 0},
	)
	var cfgs []Config
	for _, kern := range kernels() {
		for _, par := range []int{1, 2, 3} {
			cfgs = append(cfgs, Config{Parallelism: par, kern: kern})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		check(t, cfgs, s, rng)
	}
}

// TestSgemmRandom is a property test: random shapes, transposes, strides
// and scalars, every kernel, serial and parallel, agree with naive.
func TestSgemmRandom(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	rng := rand.New(rand.NewPCG(3, 4))
	scalars := []float32{0, 1, -1, 0.5, 3}
	for range n {
		s := shape{
			name:   "random",
			transA: rng.IntN(2) == 0, transB: rng.IntN(2) == 0,
			m: 1 + rng.IntN(120), n: 1 + rng.IntN(120), k: 1 + rng.IntN(300),
			alpha: scalars[1+rng.IntN(len(scalars)-1)], beta: scalars[rng.IntN(len(scalars))],
			pad: rng.IntN(4),
		}
		var cfgs []Config
		for _, kern := range kernels() {
			cfgs = append(cfgs, Config{Parallelism: 1 + rng.IntN(3), kern: kern})
		}
		check(t, cfgs, s, rng)
	}
}

// TestKernelsAgree runs the assembly and pure-Go paths on the same inputs
// and compares them with each other, not only with naive: both must compute
// the same product up to float32 rounding.
func TestKernelsAgree(t *testing.T) {
	ks := kernels()
	if len(ks) < 2 {
		t.Skip("only the pure-Go kernel runs on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, dims := range [][3]int{{1, 1, 1}, {6, 16, 1}, {37, 53, 71}, {128, 128, 128}, {200, 300, 600}} {
		m, n, k := dims[0], dims[1], dims[2]
		a, b := randSlice(rng, m*k), randSlice(rng, k*n)
		c0 := randSlice(rng, m*n)
		var results [][]float32
		for _, kern := range ks {
			c := append([]float32(nil), c0...)
			Config{kern: kern}.Sgemm(false, false, m, n, k, 1.5, a, k, b, n, -0.5, c, n)
			results = append(results, c)
		}
		for i := 1; i < len(results); i++ {
			for j := range results[0] {
				x, y := results[0][j], results[i][j]
				if d := math.Abs(float64(x - y)); d > 1e-5*float64(k)+1e-5 {
					t.Fatalf("m=%d n=%d k=%d: C[%d] = %v with %s, %v with %s", m, n, k, j, x, ks[0].name, y, ks[i].name)
				}
			}
		}
	}
}

func TestSgemmPanics(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	for _, tc := range []struct {
		name string
		call func()
		want string
	}{
		{"short a", func() { Sgemm(false, false, 2, 2, 3, 1, a[:5], 3, b, 2, 0, c, 2) }, "len(a) = 5"},
		{"short b transposed", func() { Sgemm(false, true, 2, 2, 3, 1, a, 3, b[:4], 3, 0, c, 2) }, "len(b) = 4"},
		{"short c", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2) }, "len(c) = 3"},
		{"small lda", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) }, "lda = 2"},
		{"small ldc", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 1) }, "ldc = 1"},
		{"negative", func() { Sgemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) }, "negative dimension"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Errorf("panic = %v, want a message containing %q", r, tc.want)
				}
			}()
			tc.call()
		})
	}
}

// TestSgemmConcurrent runs products from many goroutines at once; with
// -race it checks that they share no state.
func TestSgemmConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const m, n, k = 70, 90, 110
	a, b := randSlice(rng, m*k), randSlice(rng, k*n)
	want := make([]float32, m*n)
	Config{Parallelism: 1}.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, want, n)
	done := make(chan []float32)
	for g := range 8 {
		go func() {
			c := make([]float32, m*n)
			Config{Parallelism: 1 + g%3}.Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
			done <- c
		}()
	}
	for range 8 {
		c := <-done
		for i := range c {
			if d := math.Abs(float64(c[i] - want[i])); d > 1e-4 {
				t.Fatalf("C[%d] = %v, want %v", i, c[i], want[i])
			}
		}
	}
}
