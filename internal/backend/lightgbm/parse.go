package lightgbm

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-ml/shoal/internal/backend/tree"
)

// maxFeatures bounds max_feature_idx so that a crafted file cannot make a
// row buffer huge; it is far above any real model.
const maxFeatures = 1 << 24

// Parse reads a model in LightGBM's text format (Booster.save_model). It
// returns an error wrapping ErrFormat when data is not such a model, and
// ErrUnsupported when it is one this package cannot evaluate (an unknown
// objective).
func Parse(data []byte) (*Model, error) {
	lines := splitLines(data)
	i := 0
	for i < len(lines) && lines[i] == "" {
		i++
	}
	if i == len(lines) || lines[i] != "tree" {
		return nil, fmt.Errorf("%w: first line is not \"tree\"", ErrFormat)
	}
	i++

	// The header: key=value lines (average_output stands alone) up to the
	// first tree.
	header := map[string]string{}
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "Tree="); i++ {
		if lines[i] == "" {
			continue
		}
		if lines[i] == "end of trees" {
			break
		}
		k, v, _ := strings.Cut(lines[i], "=")
		header[k] = v
	}
	m := &Model{}
	var err error
	maxFeature, err := headerInt(header, "max_feature_idx", 0, maxFeatures-1)
	if err != nil {
		return nil, err
	}
	m.NumFeature = maxFeature + 1
	numClass, err := headerInt(header, "num_class", 1, 1<<20)
	if err != nil {
		return nil, err
	}
	perIter := numClass
	if _, ok := header["num_tree_per_iteration"]; ok {
		if perIter, err = headerInt(header, "num_tree_per_iteration", 1, 1<<20); err != nil {
			return nil, err
		}
	}
	_, m.AverageOutput = header["average_output"]
	if names, ok := header["feature_names"]; ok {
		m.FeatureNames = strings.Fields(names)
		if len(m.FeatureNames) != m.NumFeature {
			return nil, fmt.Errorf("%w: %d feature_names for max_feature_idx %d", ErrFormat, len(m.FeatureNames), maxFeature)
		}
	}
	if m.obj, err = parseObjective(header["objective"]); err != nil {
		return nil, err
	}
	m.Objective = m.obj.name
	if m.obj.numClass > 0 && m.obj.numClass != numClass && m.obj.name != "binary" {
		return nil, fmt.Errorf("%w: objective has num_class:%d, header num_class=%d", ErrFormat, m.obj.numClass, numClass)
	}
	if m.obj.classifier {
		m.NumClass = max(numClass, 2)
		if perIter != numClass {
			return nil, fmt.Errorf("%w: %d trees per iteration for %d classes", ErrFormat, perIter, numClass)
		}
	}
	m.groups = perIter

	// The trees: "Tree=N" and key=value lines up to a blank line, until
	// "end of trees".
	var trees []tree.Tree
	for i < len(lines) && strings.HasPrefix(lines[i], "Tree=") {
		id := lines[i]
		i++
		kv := map[string]string{}
		for ; i < len(lines) && lines[i] != ""; i++ {
			k, v, ok := strings.Cut(lines[i], "=")
			if !ok {
				return nil, fmt.Errorf("%w: %s: line %q is not key=value", ErrFormat, id, lines[i])
			}
			kv[k] = v
		}
		for i < len(lines) && lines[i] == "" {
			i++
		}
		t, err := parseTree(kv, m.NumFeature)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrFormat, id, err)
		}
		t.Group = len(trees) % perIter
		trees = append(trees, t)
	}
	if i == len(lines) || lines[i] != "end of trees" {
		return nil, fmt.Errorf("%w: no \"end of trees\" after %d trees", ErrFormat, len(trees))
	}
	if len(trees)%perIter != 0 {
		return nil, fmt.Errorf("%w: %d trees is not a whole number of iterations of %d", ErrFormat, len(trees), perIter)
	}
	m.iterations = len(trees) / perIter
	if m.ens, err = tree.New(trees, m.NumFeature, m.groups); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if m.sig, err = tree.Signature(defaultConfig, m.NumFeature, m.NumClass); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return m, nil
}

// splitLines splits data into lines without their "\n" or "\r\n".
func splitLines(data []byte) []string {
	s := string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")))
	return strings.Split(s, "\n")
}

func headerInt(h map[string]string, key string, lo, hi int) (int, error) {
	s, ok := h[key]
	if !ok {
		return 0, fmt.Errorf("%w: no %s", ErrFormat, key)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%w: %s=%q, want an integer in [%d, %d]", ErrFormat, key, s, lo, hi)
	}
	return v, nil
}

// The bits of decision_type (LightGBM's tree.h).
const (
	categoricalMask = 1
	defaultLeftMask = 2
)

// parseTree converts one tree's key=value lines. LightGBM lists internal
// nodes (num_leaves-1 of them) and leaves separately; a child < 0 is leaf
// ^child, which is also tree.Node's convention.
func parseTree(kv map[string]string, numFeature int) (tree.Tree, error) {
	var t tree.Tree
	numLeaves, err := intField(kv, "num_leaves", 1, 1<<30)
	if err != nil {
		return t, err
	}
	numCat, err := intField(kv, "num_cat", 0, 1<<30)
	if err != nil {
		return t, err
	}
	if t.Leaves, err = floats(kv, "leaf_value", numLeaves); err != nil {
		return t, err
	}
	linear := false
	if s, ok := kv["is_linear"]; ok {
		linear = s == "1"
		if s != "0" && s != "1" {
			return t, fmt.Errorf("is_linear=%q", s)
		}
	}
	if linear {
		if t.Linear, err = parseLinear(kv, numLeaves); err != nil {
			return t, err
		}
	}
	if numLeaves == 1 {
		return t, nil
	}
	n := numLeaves - 1
	features, err := ints(kv, "split_feature", n, true)
	if err != nil {
		return t, err
	}
	thresholds, err := floats(kv, "threshold", n)
	if err != nil {
		return t, err
	}
	left, err := ints(kv, "left_child", n, true)
	if err != nil {
		return t, err
	}
	right, err := ints(kv, "right_child", n, true)
	if err != nil {
		return t, err
	}
	decision, err := ints(kv, "decision_type", n, false)
	if err != nil {
		return t, err
	}
	var bounds, bits []int
	if numCat > 0 {
		if bounds, err = ints(kv, "cat_boundaries", numCat+1, true); err != nil {
			return t, err
		}
		if bounds[0] != 0 {
			return t, fmt.Errorf("cat_boundaries starts at %d, not 0", bounds[0])
		}
		for j := 1; j < len(bounds); j++ {
			if bounds[j] < bounds[j-1] {
				return t, fmt.Errorf("cat_boundaries decrease at %d", j)
			}
		}
		if bits, err = ints(kv, "cat_threshold", bounds[numCat], true); err != nil {
			return t, err
		}
	}
	t.Nodes = make([]tree.Node, n)
	for j := range t.Nodes {
		nd := &t.Nodes[j]
		nd.Feature, nd.Left, nd.Right = features[j], int32(left[j]), int32(right[j])
		if features[j] < 0 || features[j] >= numFeature {
			return t, fmt.Errorf("node %d: split_feature %d beyond max_feature_idx %d", j, features[j], numFeature-1)
		}
		dt := 0
		if decision != nil {
			dt = decision[j]
		}
		if dt < 0 || dt > 127 {
			return t, fmt.Errorf("node %d: decision_type %d", j, dt)
		}
		if dt&categoricalMask != 0 {
			c := thresholds[j]
			if !(c >= 0 && c < float64(numCat)) {
				return t, fmt.Errorf("node %d: categorical threshold %v outside [0, num_cat=%d)", j, c, numCat)
			}
			k := int(c)
			words := bits[bounds[k]:bounds[k+1]]
			nd.Categories = make([]uint32, len(words))
			for w, v := range words {
				if v < 0 || v > 1<<32-1 {
					return t, fmt.Errorf("node %d: cat_threshold word %d out of range", j, v)
				}
				nd.Categories[w] = uint32(v)
			}
			continue
		}
		nd.Threshold = tree.ThresholdLE(thresholds[j])
		nd.DefaultLeft = dt&defaultLeftMask != 0
		switch (dt >> 2) & 3 {
		case 0:
			nd.Missing = tree.MissingNone
		case 1:
			nd.Missing = tree.MissingZero
		case 2:
			nd.Missing = tree.MissingNaN
		default:
			return t, fmt.Errorf("node %d: missing type 3 in decision_type %d", j, dt)
		}
	}
	return t, nil
}

// parseLinear reads the linear models of a linear tree's leaves.
func parseLinear(kv map[string]string, numLeaves int) ([]tree.Linear, error) {
	consts, err := floats(kv, "leaf_const", numLeaves)
	if err != nil {
		return nil, err
	}
	counts, err := ints(kv, "num_features", numLeaves, true)
	if err != nil {
		return nil, err
	}
	total := 0
	for _, c := range counts {
		if c < 0 || c > 1<<20 {
			return nil, fmt.Errorf("num_features %d", c)
		}
		total += c
	}
	feats, err := ints(kv, "leaf_features", total, total > 0)
	if err != nil {
		return nil, err
	}
	coeffs, err := floats(kv, "leaf_coeff", total)
	if err != nil && total > 0 {
		return nil, err
	}
	lin := make([]tree.Linear, numLeaves)
	off := 0
	for i, c := range counts {
		lin[i] = tree.Linear{Const: consts[i], Features: feats[off : off+c], Coeffs: coeffs[off : off+c]}
		off += c
	}
	return lin, nil
}

func intField(kv map[string]string, key string, lo, hi int) (int, error) {
	s, ok := kv[key]
	if !ok {
		return 0, fmt.Errorf("no %s", key)
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%s=%q, want an integer in [%d, %d]", key, s, lo, hi)
	}
	return v, nil
}

// ints reads exactly n space-separated integers. A missing key is an error
// when required, and nil otherwise.
func ints(kv map[string]string, key string, n int, required bool) ([]int, error) {
	s, ok := kv[key]
	if !ok {
		if required {
			return nil, fmt.Errorf("no %s", key)
		}
		return nil, nil
	}
	f := strings.Fields(s)
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	out := make([]int, n)
	for i, w := range f {
		v, err := strconv.ParseInt(w, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] = %q: not an integer", key, i, w)
		}
		out[i] = int(v)
	}
	return out, nil
}

// floats reads exactly n space-separated numbers; the key is required.
func floats(kv map[string]string, key string, n int) ([]float64, error) {
	s, ok := kv[key]
	if !ok {
		return nil, fmt.Errorf("no %s", key)
	}
	f := strings.Fields(s)
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	out := make([]float64, n)
	for i, w := range f {
		v, err := strconv.ParseFloat(w, 64)
		if err != nil {
			return nil, fmt.Errorf("%s[%d] = %q: not a number", key, i, w)
		}
		out[i] = v
	}
	return out, nil
}
