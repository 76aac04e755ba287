package tree

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

var (
	nan  = float32(math.NaN())
	inf  = float32(math.Inf(1))
	ninf = float32(math.Inf(-1))
	negz = float32(math.Copysign(0, -1))
)

func TestThresholdLT(t *testing.T) {
	ts := []float32{0, negz, 1, -1, 0.3, 1e-45, -1e-45, math.MaxFloat32, -math.MaxFloat32, inf, ninf, nan, 2.45, 1.6500001}
	xs := []float32{0, negz, 1, -1, 0.3, 1e-45, -1e-45, 2e-45, math.MaxFloat32, -math.MaxFloat32, inf, ninf,
		2.45, math.Nextafter32(2.45, 0), math.Nextafter32(2.45, 3), 1.65, 1.6500001}
	for _, tv := range ts {
		th := ThresholdLT(tv)
		for _, x := range xs {
			if got, want := x <= th, x < tv; got != want {
				t.Errorf("ThresholdLT(%v) = %v: %v <= %v is %v, want %v (x < t)", tv, th, x, th, got, want)
			}
		}
	}
}

func TestThresholdLE(t *testing.T) {
	ts := []float64{0, 1, -1, 0.30000000000000004, 0.1, 2.4500000000000006, 1.0000000180025095e-35,
		-1.0000000180025095e-35, 1e300, -1e300, math.Inf(1), math.Inf(-1), math.NaN(), 3.4028235677973366e+38}
	xs := []float32{0, 1, -1, 0.3, 0.1, 2.45, math.Nextafter32(2.45, 3), 1e-35, -1e-35, math.Nextafter32(1e-35, 0),
		math.MaxFloat32, -math.MaxFloat32, inf, ninf, math.Nextafter32(0.1, 1)}
	for _, tv := range ts {
		th := ThresholdLE(tv)
		for _, x := range xs {
			if got, want := x <= th, float64(x) <= tv; got != want {
				t.Errorf("ThresholdLE(%v) = %v: %v <= %v is %v, want %v (float64(x) <= t)", tv, th, x, th, got, want)
			}
		}
	}
}

// stump is a one-split tree on feature 0 with leaves 10 (left) and 20.
func stump(n Node) Tree {
	n.Left, n.Right = ^int32(0), ^int32(1)
	return Tree{Nodes: []Node{n}, Leaves: []float64{10, 20}}
}

// TestDecision checks each kind of split on the values that matter to it.
func TestDecision(t *testing.T) {
	cats := []uint32{1<<0 | 1<<3, 1 << (33 - 32)} // categories 0, 3 and 33
	tests := []struct {
		name string
		node Node
		x    float32
		want float64
	}{
		{"le below", Node{Threshold: 1}, 0.5, 10},
		{"le equal", Node{Threshold: 1}, 1, 10},
		{"le above", Node{Threshold: 1}, 1.5, 20},
		{"le +inf", Node{Threshold: 1}, inf, 20},
		{"le -inf", Node{Threshold: 1}, ninf, 10},
		{"lt equal", Node{Threshold: ThresholdLT(1)}, 1, 20},
		{"nan default right", Node{Threshold: 1}, nan, 20},
		{"nan default left", Node{Threshold: 1, DefaultLeft: true}, nan, 10},
		{"zero: nan is zero, default left", Node{Threshold: -5, Missing: MissingZero, DefaultLeft: true}, nan, 10},
		{"zero: tiny is zero, default right", Node{Threshold: 5, Missing: MissingZero}, 1e-36, 20},
		{"zero: -9.9e-36 is zero", Node{Threshold: 5, Missing: MissingZero}, -9.9e-36, 20},
		{"zero: float32(1e-35) is zero", Node{Threshold: 5, Missing: MissingZero}, 1e-35, 20},
		{"zero: 1.1e-35 is not", Node{Threshold: 5, Missing: MissingZero}, 1.1e-35, 10},
		{"zero: other compares", Node{Threshold: 5, Missing: MissingZero}, 1, 10},
		{"none: nan is 0 <= 1", Node{Threshold: 1, Missing: MissingNone, DefaultLeft: false}, nan, 10},
		{"none: nan is 0 > -1", Node{Threshold: -1, Missing: MissingNone, DefaultLeft: true}, nan, 20},
		{"cat 0", Node{Categories: cats}, 0, 10},
		{"cat 3", Node{Categories: cats}, 3, 10},
		{"cat 3.7 truncates", Node{Categories: cats}, 3.7, 10},
		{"cat -0.5 truncates to 0", Node{Categories: cats}, -0.5, 10},
		{"cat 1", Node{Categories: cats}, 1, 20},
		{"cat 33", Node{Categories: cats}, 33, 10},
		{"cat 64 beyond bitset", Node{Categories: cats}, 64, 20},
		{"cat -1", Node{Categories: cats}, -1, 20},
		{"cat nan", Node{Categories: cats, DefaultLeft: true}, nan, 20},
		{"cat huge", Node{Categories: cats}, 1e10, 20},
		{"cat empty", Node{Categories: []uint32{}}, 0, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := New([]Tree{stump(tt.node)}, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			out := []float64{0}
			e.Predict([]float32{tt.x}, out)
			if out[0] != tt.want {
				t.Errorf("Predict(%v) = %v, want %v", tt.x, out[0], tt.want)
			}
			out32 := []float32{0}
			e.PredictFloat32([]float32{tt.x}, out32)
			if float64(out32[0]) != tt.want {
				t.Errorf("PredictFloat32(%v) = %v, want %v", tt.x, out32[0], tt.want)
			}
		})
	}
}

func TestNewInvalid(t *testing.T) {
	leaf := Tree{Leaves: []float64{1}}
	tests := []struct {
		name       string
		trees      []Tree
		nf, groups int
	}{
		{"no groups", []Tree{leaf}, 1, 0},
		{"group out of range", []Tree{{Leaves: []float64{1}, Group: 1}}, 1, 1},
		{"negative group", []Tree{{Leaves: []float64{1}, Group: -1}}, 1, 1},
		{"no leaves", []Tree{{}}, 1, 1},
		{"two leaves no nodes", []Tree{{Leaves: []float64{1, 2}}}, 1, 1},
		{"feature out of range", []Tree{stump(Node{Feature: 1})}, 1, 1},
		{"negative feature", []Tree{stump(Node{Feature: -1})}, 1, 1},
		{"child out of range", []Tree{{Nodes: []Node{{Left: 1, Right: ^int32(0)}}, Leaves: []float64{1}}}, 1, 1},
		{"leaf out of range", []Tree{{Nodes: []Node{{Left: ^int32(0), Right: ^int32(5)}}, Leaves: []float64{1, 2}}}, 1, 1},
		{"self cycle", []Tree{{Nodes: []Node{{Left: 0, Right: ^int32(0)}}, Leaves: []float64{1}}}, 1, 1},
		{"cycle", []Tree{{Nodes: []Node{{Left: 1, Right: ^int32(0)}, {Left: 0, Right: ^int32(1)}}, Leaves: []float64{1, 2}}}, 1, 1},
		{"shared leaf", []Tree{{Nodes: []Node{{Left: ^int32(0), Right: ^int32(0)}}, Leaves: []float64{1, 2}}}, 1, 1},
		{"unreachable leaf", []Tree{{Nodes: []Node{{Left: ^int32(0), Right: ^int32(1)}}, Leaves: []float64{1, 2, 3}}}, 1, 1},
		{"unreachable node", []Tree{{Nodes: []Node{{Left: ^int32(0), Right: ^int32(1)}, {Left: ^int32(2), Right: ^int32(3)}}, Leaves: []float64{1, 2, 3, 4}}}, 1, 1},
		{"bad missing", []Tree{stump(Node{Missing: 9})}, 1, 1},
		{"linear count", []Tree{{Leaves: []float64{1}, Linear: []Linear{{}, {}}}}, 1, 1},
		{"linear feature", []Tree{{Leaves: []float64{1}, Linear: []Linear{{Features: []int{3}, Coeffs: []float64{1}}}}}, 1, 1},
		{"linear coeffs", []Tree{{Leaves: []float64{1}, Linear: []Linear{{Features: []int{0}}}}}, 1, 1},
		{"negative features", []Tree{leaf}, -1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.trees, tt.nf, tt.groups)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("New = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestPredictGroups checks output groups, accumulation onto the caller's
// initial values, single-leaf trees and linear leaves.
func TestPredictGroups(t *testing.T) {
	trees := []Tree{
		stump(Node{Feature: 1, Threshold: 0}), // group 0: 10 or 20
		{Leaves: []float64{0.5}, Group: 1},    // group 1: 0.5
		{Leaves: []float64{100}, Group: 0},    // group 0: +100
		{Nodes: []Node{{Feature: 0, Threshold: 0, Left: ^int32(0), Right: ^int32(1)}}, // group 1, linear
			Leaves: []float64{-1, -2},
			Linear: []Linear{{Const: 1, Features: []int{1}, Coeffs: []float64{2}}, {Const: 3}},
			Group:  1},
	}
	e, err := New(trees, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if e.NumTrees() != 4 || e.NumGroup() != 2 || e.NumFeature() != 2 {
		t.Fatalf("NumTrees, NumGroup, NumFeature = %d, %d, %d, want 4, 2, 2", e.NumTrees(), e.NumGroup(), e.NumFeature())
	}
	rows := []float32{
		-1, -1, // stump left, linear leaf 0: 1 + 2*-1
		-1, nan, // stump right (NaN default right), linear leaf 0 with NaN: constant -1
		1, 1, // stump right, linear leaf 1: 3
	}
	out := []float64{1000, 0, 0, 0, 0, 0}
	e.Predict(rows, out)
	want := []float64{1110, 0.5 - 1, 120, 0.5 - 1, 120, 0.5 + 3}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("Predict out[%d] = %v, want %v", i, out[i], want[i])
		}
	}
	out32 := make([]float32, 6)
	e.PredictFloat32(rows, out32)
	want32 := []float32{110, 0.5 - 1, 120, 0.5 - 1, 120, 0.5 - 2} // linear leaves read as constants
	for i := range want32 {
		if out32[i] != want32[i] {
			t.Errorf("PredictFloat32 out[%d] = %v, want %v", i, out32[i], want32[i])
		}
	}
}

func TestPredictPanicsOnLength(t *testing.T) {
	e, err := New([]Tree{stump(Node{})}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Predict with 2 values for 1 output did not panic")
		}
	}()
	e.Predict([]float32{1, 2}, make([]float64, 1))
}

// reference walks Tree t the obvious way, to check the flattened form.
func reference(t *Tree, row []float32) float64 {
	if len(t.Nodes) == 0 {
		return t.Leaves[0]
	}
	n := int32(0)
	for n >= 0 {
		nd := &t.Nodes[n]
		x := row[nd.Feature]
		var left bool
		switch {
		case nd.Categories != nil:
			c := math.Trunc(float64(x))
			left = !math.IsNaN(c) && c >= 0 && c < 1<<31 && int(c)/32 < len(nd.Categories) &&
				nd.Categories[int(c)/32]>>(int(c)%32)&1 == 1
		case math.IsNaN(float64(x)) && nd.Missing == MissingNaN:
			left = nd.DefaultLeft
		default:
			if math.IsNaN(float64(x)) {
				x = 0
			}
			if nd.Missing == MissingZero && math.Abs(float64(x)) <= float64(float32(1e-35)) {
				left = nd.DefaultLeft
			} else {
				left = x <= nd.Threshold
			}
		}
		if left {
			n = nd.Left
		} else {
			n = nd.Right
		}
	}
	return t.Leaves[^n]
}

// randomTree returns a random full tree of the given depth over nf
// features, with every kind of split when mixed is true.
func randomTree(r *rand.Rand, depth, nf int, mixed bool) Tree {
	var t Tree
	var grow func(d int) int32
	grow = func(d int) int32 {
		if d == depth || (d > 1 && r.IntN(8) == 0) {
			t.Leaves = append(t.Leaves, r.NormFloat64())
			return ^int32(len(t.Leaves) - 1)
		}
		me := int32(len(t.Nodes))
		n := Node{Feature: r.IntN(nf), Threshold: float32(r.NormFloat64()), DefaultLeft: r.IntN(2) == 0}
		if mixed {
			switch r.IntN(4) {
			case 1:
				n.Missing = MissingZero
			case 2:
				n.Missing = MissingNone
			case 3:
				n.Categories = []uint32{r.Uint32(), r.Uint32()}
			}
		}
		t.Nodes = append(t.Nodes, n)
		l := grow(d + 1)
		rt := grow(d + 1)
		t.Nodes[me].Left, t.Nodes[me].Right = l, rt
		return me
	}
	grow(0)
	return t
}

func randomRows(r *rand.Rand, n, nf int) []float32 {
	rows := make([]float32, n*nf)
	for i := range rows {
		switch r.IntN(10) {
		case 0:
			rows[i] = nan
		case 1:
			rows[i] = 0
		case 2:
			rows[i] = float32(r.IntN(70) - 3) // categories, some beyond the bitsets
		default:
			rows[i] = float32(r.NormFloat64())
		}
	}
	return rows
}

// TestPredictMatchesReference compares the flattened evaluator with the
// direct walk on random ensembles, batches crossing the block size.
func TestPredictMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const nf, groups, n = 7, 3, 150
	var trees []Tree
	for i := range 30 {
		tr := randomTree(r, 1+r.IntN(6), nf, true)
		tr.Group = i % groups
		trees = append(trees, tr)
	}
	e, err := New(trees, nf, groups)
	if err != nil {
		t.Fatal(err)
	}
	rows := randomRows(r, n, nf)
	out := make([]float64, n*groups)
	e.Predict(rows, out)
	out32 := make([]float32, n*groups)
	e.PredictFloat32(rows, out32)
	for i := range n {
		row := rows[i*nf : i*nf+nf]
		want := make([]float64, groups)
		want32 := make([]float32, groups)
		for _, tr := range trees {
			v := reference(&tr, row)
			want[tr.Group] += v
			want32[tr.Group] += float32(v)
		}
		for g := range groups {
			if out[i*groups+g] != want[g] {
				t.Errorf("row %d group %d: Predict = %v, want %v", i, g, out[i*groups+g], want[g])
			}
			if out32[i*groups+g] != want32[g] {
				t.Errorf("row %d group %d: PredictFloat32 = %v, want %v", i, g, out32[i*groups+g], want32[g])
			}
		}
	}
}

func TestPredictAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	e := benchEnsemble(r, 20, 6, 16)
	rows := randomRows(r, 64, 16)
	out := make([]float32, 64)
	if a := testing.AllocsPerRun(10, func() { e.PredictFloat32(rows, out) }); a != 0 {
		t.Errorf("PredictFloat32 allocates %v times per run, want 0", a)
	}
}

func benchEnsemble(r *rand.Rand, trees, depth, nf int) *Ensemble {
	ts := make([]Tree, trees)
	for i := range ts {
		ts[i] = randomTree(r, depth, nf, false)
	}
	e, err := New(ts, nf, 1)
	if err != nil {
		panic(err)
	}
	return e
}

// BenchmarkPredict evaluates 100 trees of depth 6 over 32 features, in
// float32 (XGBoost) and float64 (LightGBM), at batch sizes 1 and 64. Each
// iteration takes the next batch from a pool of random rows, so that paths
// vary as they do in service and the branch predictor cannot learn them.
func BenchmarkPredict(b *testing.B) {
	const trees, depth, nf, pool = 100, 6, 32, 4096
	r := rand.New(rand.NewPCG(5, 6))
	e := benchEnsemble(r, trees, depth, nf)
	rows := randomRows(r, pool, nf)
	for _, batch := range []int{1, 64} {
		b.Run("float32/batch="+strconv.Itoa(batch), func(b *testing.B) {
			out := make([]float32, batch)
			b.ReportAllocs()
			lo := 0
			for b.Loop() {
				clear(out)
				e.PredictFloat32(rows[lo*nf:(lo+batch)*nf], out)
				lo = (lo + batch) % pool
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch), "ns/row")
		})
		b.Run("float64/batch="+strconv.Itoa(batch), func(b *testing.B) {
			out := make([]float64, batch)
			b.ReportAllocs()
			lo := 0
			for b.Loop() {
				clear(out)
				e.Predict(rows[lo*nf:(lo+batch)*nf], out)
				lo = (lo + batch) % pool
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(batch), "ns/row")
		})
	}
}
