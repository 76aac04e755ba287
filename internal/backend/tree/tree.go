// Package tree evaluates ensembles of binary decision trees: the prediction
// core shared by the native XGBoost and LightGBM backends.
//
// A format parser describes each tree as a Tree of Nodes and Leaves; New
// checks the description (indices in range, no node reached twice, so no
// cycles) and flattens every tree into one contiguous node array of 16-byte
// nodes. Ensemble.Predict and Ensemble.PredictFloat32 then walk a batch of
// rows (row-major float32, [n, NumFeature]) through all trees, a block of
// rows at a time so that the nodes of a tree stay in cache, and add each
// tree's leaf value to its output group. They allocate nothing: the caller
// owns the output buffer and sets its initial value (a base margin, or 0).
//
// The package also holds the tensor conventions the tree backends share
// (Signature, Rows, Outputs): one FP32 input [-1, F], and either "label" and
// "probabilities" for classifiers or "predictions" for everything else.
//
// It knows nothing of file formats, objectives or link functions: those
// belong to the backends.
package tree

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalid is wrapped by New when the trees do not describe a valid
// ensemble (an index out of range, a node reached twice, ...).
var ErrInvalid = errors.New("tree: invalid ensemble")

// Missing says how a numerical split treats a missing value (NaN) and zero.
// The zero value is MissingNaN, XGBoost's behaviour.
type Missing uint8

const (
	// MissingNaN sends NaN the default way and compares every other value
	// with the threshold (XGBoost; LightGBM missing type NaN).
	MissingNaN Missing = iota
	// MissingZero reads NaN as 0 and sends zero (|x| <= float32(1e-35),
	// LightGBM's kZeroThreshold) the default way (LightGBM missing type Zero).
	MissingZero
	// MissingNone reads NaN as 0 and compares it with the threshold like any
	// value; the default direction is unused (LightGBM missing type None).
	MissingNone
)

// zeroThreshold is LightGBM's kZeroThreshold, the float 1e-35f: values
// within it are zero.
const zeroThreshold = float32(1e-35)

// Node is one internal (split) node of a Tree.
type Node struct {
	// Feature is the column the node tests, in [0, numFeature).
	Feature int
	// Threshold sends a row left when its value x <= Threshold, once
	// Missing has been applied. Use ThresholdLT for a strict x < t split
	// (XGBoost) and ThresholdLE for a float64 threshold (LightGBM).
	Threshold float32
	// Left and Right are the children: a node index in the same tree when
	// >= 0, or ^i (that is -1-i) for leaf i.
	Left, Right int32
	// DefaultLeft sends missing values left instead of right.
	DefaultLeft bool
	// Missing says which values are missing; see the constants.
	Missing Missing
	// Categories, when non-nil, makes this a categorical split in
	// LightGBM's form: x goes left when int(x) (truncated) is a member of
	// the bitset (bit c%32 of word c/32), and right otherwise, for NaN, for
	// x <= -1 and for x >= 2^31. Threshold, DefaultLeft and Missing are then
	// unused.
	Categories []uint32
}

// Tree is one decision tree. The zero value is a tree with no leaves, which
// New rejects.
type Tree struct {
	// Nodes are the internal nodes; Nodes[0] is the root. A tree with no
	// nodes is a single leaf, Leaves[0].
	Nodes []Node
	// Leaves are the leaf values.
	Leaves []float64
	// Linear, when non-nil, holds one entry per leaf and makes the leaves
	// linear models (LightGBM's linear_tree). Only Predict honours it.
	Linear []Linear
	// Group is the output group (class) the tree adds to, in [0, numGroup).
	Group int
}

// Linear is a linear leaf: its value is Const + sum(Coeffs[i] * x[Features[i]]),
// or the leaf's constant value from Tree.Leaves when one of those features
// is missing (NaN).
type Linear struct {
	Const    float64
	Features []int
	Coeffs   []float64
}

// ThresholdLT returns the Node.Threshold that sends x left exactly when
// x < t, for every float32 x that is not NaN.
func ThresholdLT(t float32) float32 {
	if math.IsNaN(float64(t)) || math.IsInf(float64(t), -1) {
		return float32(math.NaN()) // nothing is below
	}
	return math.Nextafter32(t, float32(math.Inf(-1)))
}

// ThresholdLE returns the Node.Threshold that sends x left exactly when
// float64(x) <= t, for every float32 x that is not NaN: the largest float32
// not above t.
func ThresholdLE(t float64) float32 {
	if math.IsNaN(t) {
		return float32(math.NaN())
	}
	f := float32(t)
	if float64(f) > t {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

// The bits of node.feature above the feature index.
const (
	featureBits     = 27
	featureMask     = 1<<featureBits - 1
	bitDefaultLeft  = 1 << 31
	bitCategorical  = 1 << 30
	bitMissingZero  = 1 << 29
	bitMissingNone  = 1 << 28
	slowPathBits    = bitCategorical | bitMissingZero | bitMissingNone
	maxNodes        = math.MaxInt32
	maxCategoricals = 1 << 23 // indices stored as float32 bits stay denormal
)

// node is the flattened form of Node: 16 bytes, four to a cache line.
type node struct {
	feature uint32   // feature index | bit* flags
	thr     float32  // threshold; for a categorical node, math.Float32frombits(index into cats)
	child   [2]int32 // left, right; >= 0: node index in Ensemble.nodes; < 0: ^index in Ensemble.leaves
}

// catSet is a categorical split's bitset, words [off, off+n) of Ensemble.bits.
type catSet struct{ off, n int32 }

// linLeaf is a linear leaf, terms [off, off+n) of Ensemble.linFeat/linCoef.
type linLeaf struct {
	c      float64
	off, n int32
}

// Ensemble is a validated, flattened set of trees. It is immutable after
// New and safe for concurrent use by many goroutines.
type Ensemble struct {
	nodes    []node
	leaves   []float64
	leaves32 []float32
	roots    []int32 // node index, or ^leaf index for a single-leaf tree
	groups   []int32
	cats     []catSet
	bits     []uint32
	lin      []linLeaf // per leaf, nil when no tree has linear leaves
	linFeat  []int32
	linCoef  []float64

	numFeature, numGroup int
}

// New validates trees and flattens them into an Ensemble that reads rows of
// numFeature values and writes numGroup outputs per row. It returns an
// error wrapping ErrInvalid when a child, leaf, feature or group index is
// out of range, when a node is reached twice or not at all from its root
// (a cycle or a shared subtree), or when numGroup < 1.
func New(trees []Tree, numFeature, numGroup int) (*Ensemble, error) {
	if numGroup < 1 {
		return nil, fmt.Errorf("%w: %d output groups", ErrInvalid, numGroup)
	}
	if numFeature < 0 || numFeature > featureMask+1 {
		return nil, fmt.Errorf("%w: %d features (at most %d)", ErrInvalid, numFeature, featureMask+1)
	}
	e := &Ensemble{numFeature: numFeature, numGroup: numGroup}
	var nNodes, nLeaves int
	linear := false
	for _, t := range trees {
		nNodes += len(t.Nodes)
		nLeaves += len(t.Leaves)
		linear = linear || t.Linear != nil
	}
	if nNodes > maxNodes || nLeaves > maxNodes {
		return nil, fmt.Errorf("%w: %d nodes and %d leaves", ErrInvalid, nNodes, nLeaves)
	}
	e.nodes = make([]node, 0, nNodes)
	e.leaves = make([]float64, 0, nLeaves)
	e.leaves32 = make([]float32, 0, nLeaves)
	e.roots = make([]int32, 0, len(trees))
	e.groups = make([]int32, 0, len(trees))
	if linear {
		e.lin = make([]linLeaf, 0, nLeaves)
	}
	for i := range trees {
		if err := e.add(&trees[i]); err != nil {
			return nil, fmt.Errorf("%w: tree %d: %w", ErrInvalid, i, err)
		}
	}
	return e, nil
}

// add checks t and appends it to e.
func (e *Ensemble) add(t *Tree) error {
	if t.Group < 0 || t.Group >= e.numGroup {
		return fmt.Errorf("group %d out of range [0, %d)", t.Group, e.numGroup)
	}
	if len(t.Leaves) == 0 {
		return errors.New("no leaves")
	}
	if len(t.Nodes) == 0 && len(t.Leaves) != 1 {
		return fmt.Errorf("no nodes but %d leaves", len(t.Leaves))
	}
	if t.Linear != nil && len(t.Linear) != len(t.Leaves) {
		return fmt.Errorf("%d linear leaves for %d leaves", len(t.Linear), len(t.Leaves))
	}
	if err := checkShape(t); err != nil {
		return err
	}
	nodeBase, leafBase := int32(len(e.nodes)), int32(len(e.leaves))
	if len(t.Nodes) == 0 {
		e.roots = append(e.roots, ^leafBase)
	} else {
		e.roots = append(e.roots, nodeBase)
	}
	e.groups = append(e.groups, int32(t.Group))
	for i := range t.Nodes {
		n := &t.Nodes[i]
		if n.Feature < 0 || n.Feature >= e.numFeature {
			return fmt.Errorf("node %d: feature %d out of range [0, %d)", i, n.Feature, e.numFeature)
		}
		fl := node{feature: uint32(n.Feature), thr: n.Threshold}
		if n.DefaultLeft {
			fl.feature |= bitDefaultLeft
		}
		switch {
		case n.Categories != nil:
			if len(e.cats) >= maxCategoricals {
				return fmt.Errorf("node %d: more than %d categorical splits", i, maxCategoricals)
			}
			fl.feature |= bitCategorical
			fl.thr = math.Float32frombits(uint32(len(e.cats)))
			e.cats = append(e.cats, catSet{off: int32(len(e.bits)), n: int32(len(n.Categories))})
			e.bits = append(e.bits, n.Categories...)
		case n.Missing == MissingNaN:
		case n.Missing == MissingZero:
			fl.feature |= bitMissingZero
		case n.Missing == MissingNone:
			fl.feature |= bitMissingNone
		default:
			return fmt.Errorf("node %d: unknown missing type %d", i, n.Missing)
		}
		fl.child = [2]int32{relocate(n.Left, nodeBase, leafBase), relocate(n.Right, nodeBase, leafBase)}
		e.nodes = append(e.nodes, fl)
	}
	for i, v := range t.Leaves {
		e.leaves = append(e.leaves, v)
		e.leaves32 = append(e.leaves32, float32(v))
		if e.lin == nil {
			continue
		}
		if t.Linear == nil {
			e.lin = append(e.lin, linLeaf{c: v})
			continue
		}
		l := &t.Linear[i]
		if len(l.Features) != len(l.Coeffs) {
			return fmt.Errorf("leaf %d: %d linear features but %d coefficients", i, len(l.Features), len(l.Coeffs))
		}
		ll := linLeaf{c: l.Const, off: int32(len(e.linFeat)), n: int32(len(l.Features))}
		for _, f := range l.Features {
			if f < 0 || f >= e.numFeature {
				return fmt.Errorf("leaf %d: linear feature %d out of range [0, %d)", i, f, e.numFeature)
			}
			e.linFeat = append(e.linFeat, int32(f))
		}
		e.linCoef = append(e.linCoef, l.Coeffs...)
		e.lin = append(e.lin, ll)
	}
	return nil
}

// relocate turns a child reference local to one tree into an ensemble one.
func relocate(c, nodeBase, leafBase int32) int32 {
	if c >= 0 {
		return c + nodeBase
	}
	return ^(^c + leafBase)
}

// checkShape verifies that t's children form a tree rooted at node 0 that
// reaches every node and every leaf exactly once.
func checkShape(t *Tree) error {
	if len(t.Nodes) == 0 {
		return nil
	}
	nodeSeen := make([]bool, len(t.Nodes))
	leafSeen := make([]bool, len(t.Leaves))
	stack := []int32{0}
	nodeSeen[0] = true
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range [2]int32{t.Nodes[n].Left, t.Nodes[n].Right} {
			switch {
			case c >= int32(len(t.Nodes)):
				return fmt.Errorf("node %d: child %d out of range [0, %d)", n, c, len(t.Nodes))
			case c >= 0:
				if nodeSeen[c] {
					return fmt.Errorf("node %d: child %d reached twice (a cycle or shared subtree)", n, c)
				}
				nodeSeen[c] = true
				stack = append(stack, c)
			case ^c >= int32(len(t.Leaves)):
				return fmt.Errorf("node %d: leaf %d out of range [0, %d)", n, ^c, len(t.Leaves))
			default:
				if leafSeen[^c] {
					return fmt.Errorf("node %d: leaf %d reached twice", n, ^c)
				}
				leafSeen[^c] = true
			}
		}
	}
	for i, ok := range nodeSeen {
		if !ok {
			return fmt.Errorf("node %d unreachable from the root", i)
		}
	}
	for i, ok := range leafSeen {
		if !ok {
			return fmt.Errorf("leaf %d unreachable from the root", i)
		}
	}
	return nil
}

// NumFeature returns the number of values each row must have.
func (e *Ensemble) NumFeature() int { return e.numFeature }

// NumGroup returns the number of outputs per row.
func (e *Ensemble) NumGroup() int { return e.numGroup }

// NumTrees returns the number of trees.
func (e *Ensemble) NumTrees() int { return len(e.roots) }
