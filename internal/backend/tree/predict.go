package tree

import (
	"fmt"
	"math"
)

// blockRows is how many rows walk one tree before the next tree: enough to
// amortise loading a tree's nodes, few enough that the rows stay in L1/L2.
const blockRows = 64

// Predict adds, for every row r of rows (row-major, NumFeature values each)
// and every tree t, t's leaf value for r to out[r*NumGroup+t.Group], summing
// in float64 in tree order (LightGBM's arithmetic). The number of rows is
// len(out)/NumGroup. Linear leaves are evaluated. Predict allocates nothing
// and is safe to call concurrently with distinct out buffers.
//
// It panics if len(out) is not a multiple of NumGroup or len(rows) is not
// NumFeature times the number of rows: callers check widths first.
func (e *Ensemble) Predict(rows []float32, out []float64) {
	n := e.checkLen(len(rows), len(out))
	G, F := e.numGroup, e.numFeature
	for lo := 0; lo < n; lo += blockRows {
		hi := min(lo+blockRows, n)
		for t, root := range e.roots {
			g := int(e.groups[t])
			for r := lo; r < hi; r++ {
				row := rows[r*F : r*F+F]
				l := e.leaf(root, row)
				v := e.leaves[l]
				if e.lin != nil {
					v = e.linear(l, row)
				}
				out[r*G+g] += v
			}
		}
	}
}

// PredictFloat32 is Predict summing in float32, each tree's leaf value
// rounded to float32 and added in tree order, exactly as XGBoost's CPU
// predictor does. Linear leaves are not evaluated (their constant values
// are used): no float32 format has them.
func (e *Ensemble) PredictFloat32(rows []float32, out []float32) {
	n := e.checkLen(len(rows), len(out))
	G, F := e.numGroup, e.numFeature
	for lo := 0; lo < n; lo += blockRows {
		hi := min(lo+blockRows, n)
		for t, root := range e.roots {
			g := int(e.groups[t])
			for r := lo; r < hi; r++ {
				out[r*G+g] += e.leaves32[e.leaf(root, rows[r*F:r*F+F])]
			}
		}
	}
}

func (e *Ensemble) checkLen(nRows, nOut int) int {
	if nOut%e.numGroup != 0 || nRows != nOut/e.numGroup*e.numFeature {
		panic(fmt.Sprintf("tree: Predict with %d values for %d outputs of %d groups and %d features", nRows, nOut, e.numGroup, e.numFeature))
	}
	return nOut / e.numGroup
}

// leaf walks row down the tree rooted at root and returns the index in
// e.leaves of the leaf it reaches.
func (e *Ensemble) leaf(root int32, row []float32) int32 {
	n := root
	nodes := e.nodes
	for n >= 0 {
		nd := &nodes[n]
		x := row[nd.feature&featureMask]
		if nd.feature&slowPathBits == 0 {
			// Numerical split, NaN missing: XGBoost's and LightGBM's usual
			// case, written so that the compiler can pick the child without a
			// branch (random paths would mispredict half the time).
			var right uint32
			if !(x <= nd.thr) {
				right = 1
			}
			if x != x {
				right = ^nd.feature >> 31 // 0 when default left
			}
			n = nd.child[right]
			continue
		}
		n = e.slowNext(nd, x)
	}
	return ^n
}

// slowNext is the decision of a categorical node or one whose missing type
// is Zero or None.
func (e *Ensemble) slowNext(nd *node, x float32) int32 {
	if nd.feature&bitCategorical != 0 {
		// LightGBM: NaN and negative integers go right; int(x) truncates.
		if !(x > -1) || x >= 1<<31 {
			return nd.child[1]
		}
		c := uint32(int32(x))
		s := e.cats[math.Float32bits(nd.thr)]
		if w := int32(c / 32); w < s.n && e.bits[s.off+w]>>(c%32)&1 != 0 {
			return nd.child[0]
		}
		return nd.child[1]
	}
	if x != x {
		x = 0
	}
	if nd.feature&bitMissingZero != 0 && x >= -zeroThreshold && x <= zeroThreshold {
		if nd.feature&bitDefaultLeft != 0 {
			return nd.child[0]
		}
		return nd.child[1]
	}
	if x <= nd.thr {
		return nd.child[0]
	}
	return nd.child[1]
}

// linear returns the value of leaf l for row: its linear model, or its
// constant when a feature the model uses is missing.
func (e *Ensemble) linear(l int32, row []float32) float64 {
	ll := e.lin[l]
	v := ll.c
	for i := ll.off; i < ll.off+ll.n; i++ {
		x := row[e.linFeat[i]]
		if x != x {
			return e.leaves[l]
		}
		v += float64(e.linCoef[i] * float64(x)) // rounded product: no fused multiply-add
	}
	return v
}
