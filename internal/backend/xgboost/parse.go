package xgboost

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/shoal-ml/shoal/internal/backend/tree"
)

// The JSON document Booster.save_model writes, reduced to what prediction
// needs.
type jsonModel struct {
	Learner *struct {
		LearnerModelParam struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		GradientBooster jsonBooster `json:"gradient_booster"`
		FeatureNames    []string    `json:"feature_names"`
	} `json:"learner"`
	Version []int `json:"version"`
}

// jsonBooster is a gradient_booster object: gbtree and gblinear keep their
// parameters in "model", dart wraps a gbtree in "gbtree".
type jsonBooster struct {
	Name       string          `json:"name"`
	Model      json.RawMessage `json:"model"`
	GBTree     *jsonBooster    `json:"gbtree"`
	WeightDrop []float32       `json:"weight_drop"`
}

type jsonTrees struct {
	TreeInfo []int      `json:"tree_info"`
	Trees    []jsonTree `json:"trees"`
}

type jsonLinear struct {
	Weights []float32 `json:"weights"`
}

type jsonTree struct {
	LeftChildren    []int32   `json:"left_children"`
	RightChildren   []int32   `json:"right_children"`
	SplitIndices    []int64   `json:"split_indices"`
	SplitConditions []float32 `json:"split_conditions"`
	DefaultLeft     flags     `json:"default_left"`
	SplitType       []int     `json:"split_type"`
	BaseWeights     []float32 `json:"base_weights"`
	TreeParam       struct {
		NumNodes string `json:"num_nodes"`
	} `json:"tree_param"`
}

// flags reads an array of 0/1 numbers (XGBoost 1.x) or booleans.
type flags []bool

func (f *flags) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*f = make([]bool, len(raw))
	for i, r := range raw {
		switch s := string(bytes.TrimSpace(r)); s {
		case "0", "false":
		case "1", "true":
			(*f)[i] = true
		default:
			return fmt.Errorf("default_left[%d] = %s, want 0 or 1", i, s)
		}
	}
	return nil
}

// maxFeatures bounds num_feature so that a crafted file cannot make a row
// buffer huge; it is far above any real model.
const maxFeatures = 1 << 24

// Parse reads a model in XGBoost's JSON format. It returns an error
// wrapping ErrFormat when data is not such a model, and ErrUnsupported when
// it is one this package cannot evaluate (categorical splits, several
// targets, an unknown objective or booster).
func Parse(data []byte) (*Model, error) {
	var doc jsonModel
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if doc.Learner == nil {
		return nil, fmt.Errorf("%w: no learner object", ErrFormat)
	}
	l := doc.Learner
	p := l.LearnerModelParam
	m := &Model{Objective: l.Objective.Name, FeatureNames: l.FeatureNames}
	var err error
	if m.NumFeature, err = atoi("num_feature", p.NumFeature, 1, maxFeatures); err != nil {
		return nil, err
	}
	numClass, err := atoi("num_class", p.NumClass, 0, 1<<20)
	if err != nil {
		return nil, err
	}
	if p.NumTarget != "" {
		if t, err := atoi("num_target", p.NumTarget, 0, 1<<20); err != nil {
			return nil, err
		} else if t > 1 {
			return nil, fmt.Errorf("%w: %d targets", ErrUnsupported, t)
		}
	}
	if len(l.FeatureNames) != 0 && len(l.FeatureNames) != m.NumFeature {
		return nil, fmt.Errorf("%w: %d feature names for %d features", ErrFormat, len(l.FeatureNames), m.NumFeature)
	}
	obj, ok := objectives[m.Objective]
	if !ok {
		return nil, fmt.Errorf("%w: objective %q", ErrUnsupported, m.Objective)
	}
	m.obj = obj
	m.groups = 1
	if obj.multi {
		if numClass < 2 {
			return nil, fmt.Errorf("%w: %s with num_class %d", ErrFormat, m.Objective, numClass)
		}
		m.groups = numClass
		m.NumClass = numClass
	} else if obj.classifier {
		m.NumClass = 2
	}
	base, err := parseBaseScore(p.BaseScore)
	if err != nil {
		return nil, err
	}
	if m.base, err = obj.baseMargin(base); err != nil {
		return nil, err
	}

	gb := &l.GradientBooster
	m.Booster = gb.Name
	switch gb.Name {
	case "gbtree":
		m.ens, err = parseTrees(gb.Model, nil, m.NumFeature, m.groups)
	case "dart":
		if gb.GBTree == nil || gb.GBTree.Name != "gbtree" {
			return nil, fmt.Errorf("%w: dart booster without its gbtree", ErrFormat)
		}
		if gb.WeightDrop == nil {
			gb.WeightDrop = []float32{} // present but empty: one weight per tree still required
		}
		m.ens, err = parseTrees(gb.GBTree.Model, gb.WeightDrop, m.NumFeature, m.groups)
	case "gblinear":
		m.linear, err = parseLinear(gb.Model, m.NumFeature, m.groups)
	default:
		return nil, fmt.Errorf("%w: booster %q", ErrUnsupported, gb.Name)
	}
	if err != nil {
		return nil, err
	}
	m.sig, err = tree.Signature(defaultConfig, m.NumFeature, m.NumClass)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return m, nil
}

// parseBaseScore reads base_score: "5E-1" in 1.x, "[5E-1]" in 2.x.
func parseBaseScore(s string) (float32, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if s == "" {
		return 0.5, nil
	}
	v, err := strconv.ParseFloat(s, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: base_score %q", ErrFormat, s)
	}
	return float32(v), nil
}

func atoi(name, s string, lo, hi int) (int, error) {
	if s == "" && lo == 0 {
		return 0, nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%w: %s = %q, want an integer in [%d, %d]", ErrFormat, name, s, lo, hi)
	}
	return v, nil
}

// parseTrees reads a gbtree model; weights, when non-nil, are dart's
// weight_drop, one per tree, folded into the leaf values.
func parseTrees(raw json.RawMessage, weights []float32, numFeature, groups int) (*tree.Ensemble, error) {
	var jt jsonTrees
	if err := json.Unmarshal(raw, &jt); err != nil {
		return nil, fmt.Errorf("%w: gbtree model: %w", ErrFormat, err)
	}
	if len(jt.TreeInfo) != len(jt.Trees) {
		return nil, fmt.Errorf("%w: %d trees but %d tree_info entries", ErrFormat, len(jt.Trees), len(jt.TreeInfo))
	}
	if weights != nil && len(weights) != len(jt.Trees) {
		return nil, fmt.Errorf("%w: %d trees but %d weight_drop entries", ErrFormat, len(jt.Trees), len(weights))
	}
	trees := make([]tree.Tree, len(jt.Trees))
	for i := range jt.Trees {
		w := float32(1)
		if weights != nil {
			w = weights[i]
		}
		t, err := convertTree(&jt.Trees[i], w)
		if err != nil {
			return nil, fmt.Errorf("%w: tree %d: %w", ErrFormat, i, err)
		}
		t.Group = jt.TreeInfo[i]
		trees[i] = t
	}
	ens, err := tree.New(trees, numFeature, groups)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return ens, nil
}

// convertTree turns XGBoost's node arrays, where leaves are nodes whose
// left child is -1 and whose split_conditions entry is the leaf value, into
// a tree.Tree, numbering nodes and leaves in depth-first order. It rejects
// child indices out of range and nodes reached twice.
func convertTree(jt *jsonTree, w float32) (tree.Tree, error) {
	n := len(jt.LeftChildren)
	if n == 0 {
		return tree.Tree{}, fmt.Errorf("no nodes")
	}
	if s := jt.TreeParam.NumNodes; s != "" && s != strconv.Itoa(n) {
		return tree.Tree{}, fmt.Errorf("num_nodes %s but %d left_children", s, n)
	}
	for _, a := range []struct {
		name string
		n    int
	}{
		{"right_children", len(jt.RightChildren)}, {"split_indices", len(jt.SplitIndices)},
		{"split_conditions", len(jt.SplitConditions)}, {"default_left", len(jt.DefaultLeft)},
	} {
		if a.n != n {
			return tree.Tree{}, fmt.Errorf("%d %s for %d nodes", a.n, a.name, n)
		}
	}
	if jt.SplitType != nil && len(jt.SplitType) != n {
		return tree.Tree{}, fmt.Errorf("%d split_type for %d nodes", len(jt.SplitType), n)
	}
	var t tree.Tree
	seen := make([]bool, n)
	// visit appends node i (and below) and returns its reference in t.
	var visit func(i int32) (int32, error)
	visit = func(i int32) (int32, error) {
		if i < 0 || int(i) >= n {
			return 0, fmt.Errorf("child %d out of range [0, %d)", i, n)
		}
		if seen[i] {
			return 0, fmt.Errorf("node %d reached twice (a cycle or shared subtree)", i)
		}
		seen[i] = true
		if jt.LeftChildren[i] == -1 {
			// Dart scales a tree's output in float32: fold it in exactly.
			v := jt.SplitConditions[i]
			if w != 1 {
				v *= w
			}
			t.Leaves = append(t.Leaves, float64(v))
			return ^int32(len(t.Leaves) - 1), nil
		}
		if jt.SplitType != nil && jt.SplitType[i] != 0 {
			return 0, fmt.Errorf("%w: node %d: categorical split", ErrUnsupported, i)
		}
		f := jt.SplitIndices[i]
		if f < 0 || f >= maxFeatures {
			return 0, fmt.Errorf("node %d: split index %d out of range", i, f)
		}
		me := int32(len(t.Nodes))
		t.Nodes = append(t.Nodes, tree.Node{
			Feature:     int(f),
			Threshold:   tree.ThresholdLT(jt.SplitConditions[i]),
			DefaultLeft: jt.DefaultLeft[i],
		})
		left, err := visit(jt.LeftChildren[i])
		if err != nil {
			return 0, err
		}
		right, err := visit(jt.RightChildren[i])
		if err != nil {
			return 0, err
		}
		t.Nodes[me].Left, t.Nodes[me].Right = left, right
		return me, nil
	}
	if _, err := visit(0); err != nil {
		return tree.Tree{}, err
	}
	return t, nil
}

// parseLinear reads a gblinear model: (numFeature+1)*groups weights, the
// last groups of them the biases.
func parseLinear(raw json.RawMessage, numFeature, groups int) ([]float32, error) {
	var jl jsonLinear
	if err := json.Unmarshal(raw, &jl); err != nil {
		return nil, fmt.Errorf("%w: gblinear model: %w", ErrFormat, err)
	}
	if want := (numFeature + 1) * groups; len(jl.Weights) != want {
		return nil, fmt.Errorf("%w: gblinear has %d weights, want (%d features + 1) * %d groups = %d",
			ErrFormat, len(jl.Weights), numFeature, groups, want)
	}
	return jl.Weights, nil
}
