package onnx

import (
	"errors"
	"fmt"
	"math"
)

// The flat tree evaluator walks ONNX trees node by node in float64. It
// covers what internal/backend/tree cannot express: double inputs compared
// with double thresholds exactly, BRANCH_EQ, BRANCH_NEQ and BRANCH_MEMBER
// nodes, leaves shared by several nodes (TreeEnsemble), and the MIN and MAX
// aggregate functions. It is slower than tree.Ensemble, which is used
// whenever it can be.

// Aggregate functions.
type aggregate uint8

const (
	aggSum aggregate = iota
	aggAverage
	aggMin
	aggMax
)

// Node modes of the flat evaluator, in TreeEnsemble's numbering.
const (
	modeLEQ uint8 = iota
	modeLT
	modeGTE
	modeGT
	modeEQ
	modeNEQ
	modeMember
	modeLeaf
)

var modeByName = map[string]uint8{
	"BRANCH_LEQ": modeLEQ, "BRANCH_LT": modeLT, "BRANCH_GTE": modeGTE, "BRANCH_GT": modeGT,
	"BRANCH_EQ": modeEQ, "BRANCH_NEQ": modeNEQ, "BRANCH_MEMBER": modeMember, "LEAF": modeLeaf,
}

type flatNode struct {
	feature  int32
	mode     uint8
	missTrue bool
	thr      float64
	set      []float64 // BRANCH_MEMBER values
	t, f     int32     // child indices in the same flatTree
	w        []rawWeight
}

// flatTree is one tree, root at index 0.
type flatTree []flatNode

// flatten converts the forest for the flat evaluator. A node reached from
// several parents is shared, not copied; walks are bounded by the tree's
// size, so a cycle cannot loop forever (and is rejected here).
func (fo *forest) flatten() ([]flatTree, int, error) {
	nf := 0
	out := make([]flatTree, 0, len(fo.trees))
	for ti, rt := range fo.trees {
		index := map[int64]int32{}
		var ids []int64
		var visit func(id int64, depth int) error
		visit = func(id int64, depth int) error {
			if _, ok := index[id]; ok {
				return nil
			}
			if depth > len(rt.nodes) {
				return fmt.Errorf("%w: tree %d has a cycle", ErrAttr, ti)
			}
			n, ok := rt.nodes[id]
			if !ok {
				return fmt.Errorf("%w: tree %d: node %d is missing", ErrAttr, ti, id)
			}
			index[id] = int32(len(ids))
			ids = append(ids, id)
			if n.mode == "LEAF" {
				return nil
			}
			if err := visit(n.t, depth+1); err != nil {
				return err
			}
			return visit(n.f, depth+1)
		}
		if err := visit(rt.root, 0); err != nil {
			return nil, 0, err
		}
		ft := make(flatTree, len(ids))
		for i, id := range ids {
			n := rt.nodes[id]
			mode, ok := modeByName[n.mode]
			if !ok {
				return nil, 0, fmt.Errorf("%w: tree node mode %q", ErrAttr, n.mode)
			}
			fn := flatNode{mode: mode, missTrue: n.missingTrue, thr: n.value, set: n.set, w: n.weights}
			if mode != modeLeaf {
				if n.feature < 0 || n.feature >= 1<<30 {
					return nil, 0, fmt.Errorf("%w: tree %d: feature %d", ErrAttr, ti, n.feature)
				}
				fn.feature = int32(n.feature)
				nf = max(nf, int(n.feature)+1)
				fn.t, fn.f = index[n.t], index[n.f]
			}
			ft[i] = fn
		}
		// Reject cycles: a child must come later in depth-first order
		// unless it is shared (then it was visited earlier, from another
		// branch, and is not an ancestor). Check by walking with a bound.
		if err := ft.checkAcyclic(); err != nil {
			return nil, 0, fmt.Errorf("%w: tree %d: %w", ErrAttr, ti, err)
		}
		out = append(out, ft)
	}
	return out, nf, nil
}

// checkAcyclic reports an error when some node can reach itself.
func (ft flatTree) checkAcyclic() error {
	state := make([]uint8, len(ft)) // 0 new, 1 on the path, 2 done
	var visit func(i int32) error
	visit = func(i int32) error {
		switch state[i] {
		case 1:
			return errors.New("a cycle")
		case 2:
			return nil
		}
		state[i] = 1
		if ft[i].mode != modeLeaf {
			if err := visit(ft[i].t); err != nil {
				return err
			}
			if err := visit(ft[i].f); err != nil {
				return err
			}
		}
		state[i] = 2
		return nil
	}
	return visit(0)
}

// goesTrue evaluates a decision node on x.
func (n *flatNode) goesTrue(x float64) bool {
	if x != x {
		return n.missTrue
	}
	switch n.mode {
	case modeLEQ:
		return x <= n.thr
	case modeLT:
		return x < n.thr
	case modeGTE:
		return x >= n.thr
	case modeGT:
		return x > n.thr
	case modeEQ:
		return x == n.thr
	case modeNEQ:
		return x != n.thr
	case modeMember:
		for _, v := range n.set {
			if x == v {
				return true
			}
		}
	}
	return false
}

// flatSums evaluates the flat trees on x (n rows of c values) into sums
// (n rows of cols), aggregated with agg.
func flatSums(trees []flatTree, x *Value, n, c, cols int, agg aggregate, sums []float64) {
	if agg == aggMin || agg == aggMax {
		for i := range sums {
			sums[i] = math.NaN() // no tree has contributed yet
		}
	} else {
		clear(sums)
	}
	f64, _ := x.Tensor.Data.([]float64)
	for r := range n {
		row := sums[r*cols : r*cols+cols]
		for _, ft := range trees {
			i := int32(0)
			for ft[i].mode != modeLeaf {
				nd := &ft[i]
				var v float64
				if f64 != nil {
					v = f64[r*c+int(nd.feature)]
				} else {
					v = float64At(x.Tensor.Data, r*c+int(nd.feature))
				}
				if nd.goesTrue(v) {
					i = nd.t
				} else {
					i = nd.f
				}
			}
			for _, w := range ft[i].w {
				s := &row[w.col]
				switch {
				case agg == aggMin && (*s != *s || w.weight < *s):
					*s = w.weight
				case agg == aggMax && (*s != *s || w.weight > *s):
					*s = w.weight
				case agg == aggSum || agg == aggAverage:
					*s += w.weight
				}
			}
		}
		if agg == aggMin || agg == aggMax {
			for k, v := range row {
				if v != v {
					row[k] = 0
				}
			}
		}
	}
}
