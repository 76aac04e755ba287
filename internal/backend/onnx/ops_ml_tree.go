package onnx

import (
	"errors"
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/backend/tree"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// The tree ensemble operators (TreeEnsembleClassifier, TreeEnsembleRegressor
// and, since ai.onnx.ml opset 5, TreeEnsemble) are translated at load time
// into an internal/backend/tree Ensemble, the evaluator the XGBoost and
// LightGBM backends use:
//
//   - every ONNX tree becomes one tree.Tree per output column (class or
//     target) its leaves have weights for, with that column's weight (the
//     sum, if a leaf lists a column twice) as leaf value;
//   - BRANCH_LEQ and BRANCH_LT map to tree.ThresholdLE and a strict
//     threshold; BRANCH_GTE and BRANCH_GT are their negations with the
//     children swapped; a missing value (NaN) goes to the true branch when
//     nodes_missing_value_tracks_true says so, else to the false branch;
//   - rows are evaluated in float32 (double input is rounded to float32
//     first), sums are float64, then AVERAGE divides by the number of ONNX
//     trees and base_values are added.
//
// Trees that tree.Ensemble cannot express (BRANCH_EQ, BRANCH_NEQ,
// BRANCH_MEMBER, shared leaves, MIN and MAX aggregates) and double inputs
// use the flat evaluator of ops_ml_treeflat.go instead.

// rawNode is one node of an ONNX tree, in the operators' common form.
type rawNode struct {
	feature     int64
	mode        string // BRANCH_LEQ, ..., LEAF
	value       float64
	t, f        int64 // children ids
	missingTrue bool
	set         []float64 // BRANCH_MEMBER values
	weights     []rawWeight
}

type rawWeight struct {
	col    int
	weight float64
}

// rawTree is one ONNX tree: its nodes by id and its root id.
type rawTree struct {
	nodes map[int64]*rawNode
	order []int64 // ids in first-seen order
	root  int64
}

// forest is the parsed common form of every tree ensemble operator.
type forest struct {
	trees []*rawTree
	cols  int // output columns (classes or targets)
}

// treeModel is the evaluator every tree operator builds.
type treeModel struct {
	ens    *tree.Ensemble // nil when the trees need the flat evaluator
	flat   []flatTree
	agg    aggregate
	nf     int // features the ensemble reads
	cols   int
	divide float64 // 1, or the number of trees for AVERAGE
	base   []float64
	post   postTransform
	// classifier only
	labels      classLabels
	binary      bool // two labels, one column with weights
	allPositive bool
	hasScore    []bool
}

// branchNode translates a raw decision node into a tree.Node, with
// children already mapped.
func branchNode(n *rawNode, trueChild, falseChild int32) (tree.Node, error) {
	nd := tree.Node{Feature: int(n.feature)}
	var strictLess, trueLeft bool
	switch n.mode {
	case "BRANCH_LEQ":
		trueLeft = true
	case "BRANCH_LT":
		strictLess, trueLeft = true, true
	case "BRANCH_GTE": // x >= t: not (x < t)
		strictLess = true
	case "BRANCH_GT": // x > t: not (x <= t)
	default:
		return nd, fmt.Errorf("%w: tree node mode %s", ErrUnsupported, n.mode)
	}
	if strictLess {
		nd.Threshold = thresholdBelow(n.value)
	} else {
		nd.Threshold = tree.ThresholdLE(n.value)
	}
	if trueLeft {
		nd.Left, nd.Right = trueChild, falseChild
	} else {
		nd.Left, nd.Right = falseChild, trueChild
	}
	nd.DefaultLeft = n.missingTrue == trueLeft
	return nd, nil
}

// thresholdBelow returns the threshold that sends a float32 x left exactly
// when float64(x) < t.
func thresholdBelow(t float64) float32 {
	if math.IsNaN(t) || math.IsInf(t, -1) {
		return float32(math.NaN())
	}
	f := float32(t)
	if float64(f) >= t {
		f = math.Nextafter32(f, float32(math.Inf(-1)))
	}
	return f
}

// build converts the forest into an Ensemble.
func (fo *forest) build() (*tree.Ensemble, int, error) {
	var trees []tree.Tree
	nf := 0
	for ti, rt := range fo.trees {
		// Number internal nodes and leaves in a depth-first walk from the
		// root, so that unreachable nodes are ignored.
		nodeIdx, leafIdx := map[int64]int32{}, map[int64]int32{}
		var nodes []*rawNode
		var leaves []*rawNode
		stack := []int64{rt.root}
		for len(stack) > 0 {
			id := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			n, ok := rt.nodes[id]
			if !ok {
				return nil, 0, fmt.Errorf("%w: tree %d: node %d is missing", ErrAttr, ti, id)
			}
			if _, seen := nodeIdx[id]; seen {
				return nil, 0, fmt.Errorf("%w: tree %d: node %d reached twice", ErrAttr, ti, id)
			}
			if _, seen := leafIdx[id]; seen {
				return nil, 0, fmt.Errorf("%w: tree %d: leaf %d reached twice", ErrAttr, ti, id)
			}
			if n.mode == "LEAF" {
				leafIdx[id] = int32(len(leaves))
				leaves = append(leaves, n)
				continue
			}
			if n.feature < 0 || n.feature >= 1<<26 {
				return nil, 0, fmt.Errorf("%w: tree %d: feature %d", ErrAttr, ti, n.feature)
			}
			nf = max(nf, int(n.feature)+1)
			nodeIdx[id] = int32(len(nodes))
			nodes = append(nodes, n)
			if len(nodes)+len(leaves) > len(rt.nodes) {
				return nil, 0, fmt.Errorf("%w: tree %d has a cycle", ErrAttr, ti)
			}
			stack = append(stack, n.f, n.t)
		}
		child := func(id int64) int32 {
			if i, ok := nodeIdx[id]; ok {
				return i
			}
			return ^leafIdx[id]
		}
		tn := make([]tree.Node, len(nodes))
		for i, n := range nodes {
			var err error
			if tn[i], err = branchNode(n, child(n.t), child(n.f)); err != nil {
				return nil, 0, err
			}
		}
		// One tree.Tree per column with weights.
		for col := range fo.cols {
			used := false
			vals := make([]float64, len(leaves))
			for li, l := range leaves {
				for _, w := range l.weights {
					if w.col == col {
						vals[li] += w.weight
						used = true
					}
				}
			}
			if used {
				trees = append(trees, tree.Tree{Nodes: tn, Leaves: vals, Group: col})
			}
		}
	}
	ens, err := tree.New(trees, nf, max(fo.cols, 1))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrAttr, err)
	}
	return ens, nf, nil
}

// parseForest reads the attributes shared by TreeEnsembleClassifier and
// TreeEnsembleRegressor (ai.onnx.ml opsets 1 to 4). prefix is "class" or
// "target".
func parseForest(n *Node, prefix string, cols int) (*forest, error) {
	a := n.Attrs
	treeIDs := a.Ints("nodes_treeids")
	nodeIDs := a.Ints("nodes_nodeids")
	feats := a.Ints("nodes_featureids")
	values := floatsOrTensor(a, "nodes_values")
	modes := a.Strings("nodes_modes")
	tIDs := a.Ints("nodes_truenodeids")
	fIDs := a.Ints("nodes_falsenodeids")
	miss := a.Ints("nodes_missing_value_tracks_true")
	wTree := a.Ints(prefix + "_treeids")
	wNode := a.Ints(prefix + "_nodeids")
	wCol := a.Ints(prefix + "_ids")
	wVal := floatsOrTensor(a, prefix+"_weights")
	if err := a.Err(); err != nil {
		return nil, err
	}
	nn := len(nodeIDs)
	if len(treeIDs) != nn || len(feats) != nn || len(modes) != nn || len(tIDs) != nn || len(fIDs) != nn ||
		(values != nil && len(values) != nn) || (miss != nil && len(miss) != nn) {
		return nil, fmt.Errorf("%w: tree node attributes of different lengths", ErrAttr)
	}
	if len(wTree) != len(wNode) || len(wNode) != len(wCol) || len(wCol) != len(wVal) {
		return nil, fmt.Errorf("%w: %s weight attributes of different lengths", ErrAttr, prefix)
	}
	fo := &forest{cols: cols}
	byID := map[int64]*rawTree{}
	for i := range nn {
		rt, ok := byID[treeIDs[i]]
		if !ok {
			rt = &rawTree{nodes: map[int64]*rawNode{}}
			byID[treeIDs[i]] = rt
			fo.trees = append(fo.trees, rt)
		}
		if _, dup := rt.nodes[nodeIDs[i]]; dup {
			return nil, fmt.Errorf("%w: tree %d: node %d defined twice", ErrAttr, treeIDs[i], nodeIDs[i])
		}
		rn := &rawNode{feature: feats[i], mode: modes[i], t: tIDs[i], f: fIDs[i]}
		if values != nil {
			rn.value = values[i]
		}
		if miss != nil {
			rn.missingTrue = miss[i] != 0
		}
		rt.nodes[nodeIDs[i]] = rn
		rt.order = append(rt.order, nodeIDs[i])
	}
	for _, rt := range fo.trees {
		rt.root = rootOf(rt)
	}
	for i := range wTree {
		rt, ok := byID[wTree[i]]
		if !ok {
			return nil, fmt.Errorf("%w: weight for unknown tree %d", ErrAttr, wTree[i])
		}
		rn, ok := rt.nodes[wNode[i]]
		if !ok || rn.mode != "LEAF" {
			return nil, fmt.Errorf("%w: weight for tree %d node %d, not a leaf", ErrAttr, wTree[i], wNode[i])
		}
		if wCol[i] < 0 || wCol[i] >= int64(cols) {
			return nil, fmt.Errorf("%w: %s id %d out of range [0, %d)", ErrAttr, prefix, wCol[i], cols)
		}
		rn.weights = append(rn.weights, rawWeight{col: int(wCol[i]), weight: wVal[i]})
	}
	return fo, nil
}

// rootOf returns the id of the node no other node points to (the first in
// file order when several are).
func rootOf(rt *rawTree) int64 {
	child := map[int64]bool{}
	for _, n := range rt.nodes {
		if n.mode != "LEAF" {
			child[n.t], child[n.f] = true, true
		}
	}
	for _, id := range rt.order {
		if !child[id] {
			return id
		}
	}
	return rt.order[0]
}

// floatsOrTensor reads NAME (FLOATS) or NAME_as_tensor (a tensor) as
// float64s.
func floatsOrTensor(a *Attrs, name string) []float64 {
	if t := a.Tensor(name + "_as_tensor"); t != nil {
		out := make([]float64, t.Len())
		for i := range out {
			out[i] = float64At(t.Tensor.Data, i)
		}
		return out
	}
	f := a.Floats(name)
	if f == nil {
		return nil
	}
	out := make([]float64, len(f))
	for i, v := range f {
		out[i] = float64(v)
	}
	return out
}

func newTreeEnsembleRegressor(n *Node) (Kernel, error) {
	cols := int(n.Attrs.Int("n_targets", 1))
	if cols < 1 || cols > 1<<20 {
		return nil, fmt.Errorf("%w: n_targets %d", ErrAttr, cols)
	}
	fo, err := parseForest(n, "target", cols)
	if err != nil {
		return nil, err
	}
	m := &treeModel{cols: cols, divide: 1}
	switch agg := n.Attrs.String("aggregate_function", "SUM"); agg {
	case "SUM":
	case "AVERAGE":
		m.agg, m.divide = aggAverage, float64(max(len(fo.trees), 1))
	case "MIN":
		m.agg = aggMin
	case "MAX":
		m.agg = aggMax
	default:
		return nil, fmt.Errorf("%w: aggregate_function %s", ErrAttr, agg)
	}
	if m.post, err = parsePost(n.Attrs.String("post_transform", "NONE")); err != nil {
		return nil, err
	}
	m.base = floatsOrTensor(n.Attrs, "base_values")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if m.base != nil && len(m.base) != cols {
		return nil, fmt.Errorf("%w: %d base_values for %d targets", ErrAttr, len(m.base), cols)
	}
	if err := m.build(fo); err != nil {
		return nil, err
	}
	return m.regress(tensor.FP32), nil
}

func newTreeEnsembleClassifier(n *Node) (Kernel, error) {
	labels, err := readLabels(n)
	if err != nil {
		return nil, err
	}
	cols := labels.len()
	if cols == 0 {
		return nil, fmt.Errorf("%w: TreeEnsembleClassifier without class labels", ErrAttr)
	}
	fo, err := parseForest(n, "class", cols)
	if err != nil {
		return nil, err
	}
	m := &treeModel{cols: cols, divide: 1, labels: labels, allPositive: true, hasScore: make([]bool, cols)}
	if m.post, err = parsePost(n.Attrs.String("post_transform", "NONE")); err != nil {
		return nil, err
	}
	m.base = floatsOrTensor(n.Attrs, "base_values")
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if m.base != nil && len(m.base) != cols && !(cols == 2 && len(m.base) == 1) {
		return nil, fmt.Errorf("%w: %d base_values for %d classes", ErrAttr, len(m.base), cols)
	}
	used := 0
	for _, rt := range fo.trees {
		for _, rn := range rt.nodes {
			for _, w := range rn.weights {
				if !m.hasScore[w.col] {
					used++
				}
				m.hasScore[w.col] = true
				m.allPositive = m.allPositive && w.weight >= 0
			}
		}
	}
	m.binary = cols == 2 && used == 1
	if err := m.build(fo); err != nil {
		return nil, err
	}
	return m.classify, nil
}

// build prepares both evaluators: the flat one always (double inputs use
// it), tree.Ensemble when the trees and the aggregate allow.
func (m *treeModel) build(fo *forest) error {
	var err error
	var nf int
	if m.flat, nf, err = fo.flatten(); err != nil {
		return err
	}
	m.nf = nf
	if m.agg == aggMin || m.agg == aggMax {
		return nil
	}
	ens, enf, err := fo.build()
	switch {
	case err == nil:
		m.ens, m.nf = ens, enf
	case errors.Is(err, ErrUnsupported), errors.Is(err, tree.ErrInvalid), errors.Is(err, ErrAttr):
		// Shared nodes or modes tree.Ensemble lacks: the flat evaluator
		// (which has validated the trees) does it all.
	default:
		return err
	}
	return nil
}

// sums evaluates the ensemble on in[0] into tmp.Float64s: nr rows of
// m.cols aggregated sums with base values added.
func (m *treeModel) sums(tmp *Scratch, x *Value) (sums []float64, nr int, err error) {
	if m.ens == nil || x.Tensor.DType == tensor.FP64 {
		if err := checkType("X", x, mlNumeric...); err != nil {
			return nil, 0, err
		}
		nr, c := 1, x.Len()
		if len(x.Tensor.Shape) > 1 {
			nr = int(x.Tensor.Shape[0])
			c = x.Len() / max(nr, 1)
		}
		if c < m.nf {
			return nil, 0, badInput("tree ensemble of %d features, want at least %d", c, m.nf)
		}
		sums = tmp.Float64s(nr * m.cols)
		flatSums(m.flat, x, nr, c, m.cols, m.agg, sums)
		if m.divide != 1 {
			for i := range sums {
				sums[i] /= m.divide
			}
		}
		return sums, nr, nil
	}
	rows, nr, c, err := mlRows(tmp, x)
	if err != nil {
		return nil, 0, err
	}
	if c < m.nf {
		return nil, 0, badInput("tree ensemble of %d features, want at least %d", c, m.nf)
	}
	if c > m.nf {
		// The ensemble reads nf columns: compact the rows (in place when
		// they are already scratch memory).
		dst := rows
		if _, isInput := x.Tensor.Data.([]float32); isInput {
			dst = tmp.Float32s(nr * m.nf)
		}
		for r := range nr {
			copy(dst[r*m.nf:r*m.nf+m.nf], rows[r*c:r*c+m.nf])
		}
		rows = dst[:nr*m.nf]
	}
	sums = tmp.Float64s(nr * m.cols)
	clear(sums)
	m.ens.Predict(rows, sums)
	if m.divide != 1 {
		for i := range sums {
			sums[i] /= m.divide
		}
	}
	return sums, nr, nil
}

// regress returns the kernel of a regressor with outputs of type dt.
func (m *treeModel) regress(dt tensor.DType) Kernel {
	return func(tmp *Scratch, in, out []*Value) error {
		sums, nr, err := m.sums(tmp, in[0])
		if err != nil {
			return err
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(nr), int64(m.cols)
		if err := out[0].Resize(dt, shape); err != nil {
			return err
		}
		for r := range nr {
			row := sums[r*m.cols : r*m.cols+m.cols]
			for k := range row {
				if m.base != nil {
					row[k] += m.base[k]
				}
			}
			m.post.apply(row)
			for k, v := range row {
				setFloat(out[0], r*m.cols+k, v)
			}
		}
		return nil
	}
}

// classify is the kernel of TreeEnsembleClassifier: labels and scores, with
// onnxruntime's conventions for binary models.
func (m *treeModel) classify(tmp *Scratch, in, out []*Value) error {
	sums, nr, err := m.sums(tmp, in[0])
	if err != nil {
		return err
	}
	if err := m.labels.resize(tmp, out[0], nr); err != nil {
		return err
	}
	shape := tmp.Shape(2)
	shape[0], shape[1] = int64(nr), int64(m.cols)
	if err := out[1].Resize(tensor.FP32, shape); err != nil {
		return err
	}
	z := out[1].Float32s()
	for r := range nr {
		row := sums[r*m.cols : r*m.cols+m.cols]
		if !m.binary {
			for k := range row {
				if m.base != nil && len(m.base) == m.cols {
					row[k] += m.base[k]
				}
			}
			best := -1
			for k, v := range row {
				if (m.hasScore[k] || m.base != nil) && (best < 0 || v > row[best]) {
					best = k
				}
			}
			m.labels.set(out[0], r, max(best, 0))
			m.post.apply(row)
			writeScores(z, r*m.cols, row)
			continue
		}
		// Binary: one column carries the score.
		col := 0
		if m.hasScore[1] {
			col = 1
		}
		v := row[col]
		if m.base != nil {
			v += m.base[len(m.base)-1]
		}
		thr := 0.0
		if m.allPositive {
			thr = 0.5
		}
		if v > thr {
			m.labels.set(out[0], r, 1)
		} else {
			m.labels.set(out[0], r, 0)
		}
		switch {
		case m.post == postProbit:
			row[0], row[1] = probit(v), 0
		case m.allPositive:
			row[0], row[1] = 1-v, v
		case m.post == postLogistic:
			row[0], row[1] = logistic(-v), logistic(v)
		default:
			row[0], row[1] = -v, v
		}
		writeScores(z, r*m.cols, row)
	}
	return nil
}

// newTreeEnsemble implements TreeEnsemble (ai.onnx.ml opset 5), whose
// nodes and leaves are indexed arrays and whose enums are integers.
func newTreeEnsemble(n *Node) (Kernel, error) {
	a := n.Attrs
	roots := a.Ints("tree_roots")
	feats := a.Ints("nodes_featureids")
	tIDs := a.Ints("nodes_truenodeids")
	fIDs := a.Ints("nodes_falsenodeids")
	tLeaf := a.Ints("nodes_trueleafs")
	fLeaf := a.Ints("nodes_falseleafs")
	miss := a.Ints("nodes_missing_value_tracks_true")
	leafTarget := a.Ints("leaf_targetids")
	leafW := a.Tensor("leaf_weights")
	modes := a.Tensor("nodes_modes")
	splits := a.Tensor("nodes_splits")
	cols := int(a.Int("n_targets", 1))
	agg := a.Int("aggregate_function", 1)
	post := a.Int("post_transform", 0)
	members := a.Tensor("membership_values")
	if err := a.Err(); err != nil {
		return nil, err
	}
	nn := len(feats)
	if modes == nil || splits == nil || leafW == nil || modes.Len() != nn || splits.Len() != nn ||
		len(tIDs) != nn || len(fIDs) != nn || len(tLeaf) != nn || len(fLeaf) != nn ||
		(miss != nil && len(miss) != nn) || leafW.Len() != len(leafTarget) {
		return nil, fmt.Errorf("%w: TreeEnsemble node or leaf attributes of different lengths", ErrAttr)
	}
	if cols < 1 || cols > 1<<20 {
		return nil, fmt.Errorf("%w: n_targets %d", ErrAttr, cols)
	}
	modeNames := []string{"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER"}
	nl := int64(len(leafTarget))
	// Node i keeps id i; leaf j gets id nn+j.
	fo := &forest{cols: cols}
	all := make(map[int64]*rawNode, nn+int(nl))
	memberPos := 0
	for i := range nn {
		mode := int(float64At(modes.Tensor.Data, i))
		if mode < 0 || mode >= len(modeNames) {
			return nil, fmt.Errorf("%w: node mode %d", ErrAttr, mode)
		}
		rn := &rawNode{feature: feats[i], mode: modeNames[mode], value: float64At(splits.Tensor.Data, i), t: tIDs[i], f: fIDs[i]}
		if splits.Tensor.DType == tensor.FP16 {
			rn.value = float64(tensor.Float16ToFloat32(splits.Tensor.Data.([]uint16)[i]))
		}
		if tLeaf[i] != 0 {
			rn.t += int64(nn)
		}
		if fLeaf[i] != 0 {
			rn.f += int64(nn)
		}
		if (tLeaf[i] != 0 && (tIDs[i] < 0 || tIDs[i] >= nl)) || (tLeaf[i] == 0 && (tIDs[i] < 0 || tIDs[i] >= int64(nn))) ||
			(fLeaf[i] != 0 && (fIDs[i] < 0 || fIDs[i] >= nl)) || (fLeaf[i] == 0 && (fIDs[i] < 0 || fIDs[i] >= int64(nn))) {
			return nil, fmt.Errorf("%w: node %d: child out of range", ErrAttr, i)
		}
		if miss != nil {
			rn.missingTrue = miss[i] != 0
		}
		if rn.mode == "BRANCH_MEMBER" {
			// This node's set: the next NaN-delimited run of membership_values.
			if members == nil {
				return nil, fmt.Errorf("%w: BRANCH_MEMBER without membership_values", ErrAttr)
			}
			for ; memberPos < members.Len(); memberPos++ {
				v := float64At(members.Tensor.Data, memberPos)
				if members.Tensor.DType == tensor.FP16 {
					v = float64(tensor.Float16ToFloat32(members.Tensor.Data.([]uint16)[memberPos]))
				}
				if v != v {
					memberPos++
					break
				}
				rn.set = append(rn.set, v)
			}
		}
		all[int64(i)] = rn
	}
	for j := range nl {
		t := leafTarget[j]
		if t < 0 || t >= int64(cols) {
			return nil, fmt.Errorf("%w: leaf %d: target %d out of range", ErrAttr, j, t)
		}
		w := float64At(leafW.Tensor.Data, int(j))
		if leafW.Tensor.DType == tensor.FP16 {
			w = float64(tensor.Float16ToFloat32(leafW.Tensor.Data.([]uint16)[j]))
		}
		all[int64(nn)+j] = &rawNode{mode: "LEAF", weights: []rawWeight{{col: int(t), weight: w}}}
	}
	for _, r := range roots {
		if r < 0 || r >= int64(nn) {
			return nil, fmt.Errorf("%w: tree root %d out of range", ErrAttr, r)
		}
		fo.trees = append(fo.trees, &rawTree{nodes: all, root: r})
	}
	m := &treeModel{cols: cols, divide: 1}
	switch agg {
	case 1:
	case 0:
		m.agg, m.divide = aggAverage, float64(max(len(roots), 1))
	case 2:
		m.agg = aggMin
	case 3:
		m.agg = aggMax
	default:
		return nil, fmt.Errorf("%w: aggregate_function %d", ErrAttr, agg)
	}
	if post < 0 || post > 4 {
		return nil, fmt.Errorf("%w: post_transform %d", ErrAttr, post)
	}
	m.post = postTransform(post)
	if err := m.build(fo); err != nil {
		return nil, err
	}
	dt := splits.Tensor.DType
	reg := m.regress(dt)
	return func(tmp *Scratch, in, out []*Value) error {
		if in[0].Kind != KindTensor || in[0].Tensor.DType != dt {
			return badInput("TreeEnsemble of %v, want %v", in[0], dt)
		}
		return reg(tmp, in, out)
	}, nil
}
