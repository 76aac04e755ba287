// Package xgboost is the native backend for XGBoost models saved in JSON
// (Booster.save_model("model.json"), as XGBoost 1.7 writes it): boosters
// gbtree, dart and gblinear, and the common objectives. It evaluates the
// model in Go, with the tree evaluator of internal/backend/tree, and matches
// XGBoost 1.7.4's Booster.predict to float32 rounding: margins start from
// base_score through the objective's inverse link and accumulate in
// float32 in tree order, missing values are NaN.
//
// The tensors follow tree.Signature: one input "input" FP32 [-1, F] (any
// numeric type accepted, [n, F] or one row [F]); classifiers (binary:*,
// multi:*) answer "label" INT64 [-1] and "probabilities" FP32 [-1, K]
// (K = 2 for binary, as [1-p, p]); every other objective answers
// "predictions" FP32 [-1], what Booster.predict returns.
//
// It does not read the binary or UBJSON formats, categorical splits,
// multi-target models, or the survival:aft and binary:hinge objectives;
// Parse rejects them with ErrUnsupported. It does not train.
package xgboost

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/tree"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Errors returned by Parse and Load.
var (
	// ErrFormat means the file is not a well-formed XGBoost JSON model.
	ErrFormat = errors.New("xgboost: invalid model")
	// ErrUnsupported means the model uses a feature this package does not
	// evaluate.
	ErrUnsupported = errors.New("xgboost: unsupported model")
)

// DefaultArtifact is the file Load reads from cfg.Dir when cfg.Artifact is
// empty.
const DefaultArtifact = "model.json"

// defaultConfig names nothing: the default signature.
var defaultConfig backend.Config

// Model is a parsed XGBoost model. It implements backend.Model, is
// immutable after Parse or Load, and is safe for concurrent use.
type Model struct {
	// Booster is "gbtree", "dart" or "gblinear".
	Booster string
	// Objective is the learning objective, e.g. "binary:logistic".
	Objective string
	// NumFeature is the number of values in a row.
	NumFeature int
	// NumClass is the number of classes of a classifier (2 for binary:*),
	// 0 for any other objective.
	NumClass int
	// FeatureNames are the feature names saved with the model, if any.
	FeatureNames []string

	obj    objective
	groups int     // output groups: num_class for multi:*, else 1
	base   float32 // base margin
	ens    *tree.Ensemble
	linear []float32 // gblinear weights, feature-major, biases last
	sig    backend.Signature
}

// Load reads and parses cfg.Artifact (or DefaultArtifact in cfg.Dir when
// Artifact is empty). cfg.Inputs and cfg.Outputs may rename the tensors and
// cfg.Labels must match the class count; see tree.Signature. It is a
// backend.Loader.
func Load(ctx context.Context, cfg backend.Config) (backend.Model, error) {
	path := cfg.Artifact
	if path == "" {
		path = filepath.Join(cfg.Dir, DefaultArtifact)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("xgboost: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Base(path), err)
	}
	if m.sig, err = tree.Signature(cfg, m.NumFeature, m.NumClass); err != nil {
		return nil, fmt.Errorf("xgboost: %s: %w", filepath.Base(path), err)
	}
	return m, nil
}

// Signature returns the model's tensors; see the package comment.
func (m *Model) Signature() backend.Signature { return m.sig }

// inferChunk is how many rows Infer evaluates between checks of ctx.
const inferChunk = 4096

// Infer evaluates the model on the rows of its one input. It returns an
// error wrapping backend.ErrInvalidInput when the input is missing, not
// numeric, or its width is not NumFeature, and ctx's error when ctx is done
// before it finishes.
func (m *Model) Infer(ctx context.Context, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	rows, n, err := tree.Rows(m.sig, inputs)
	if err != nil {
		return nil, err
	}
	margins := make([]float32, n*m.groups)
	for lo := 0; lo < n; lo += inferChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+inferChunk, n)
		m.PredictMargin(rows[lo*m.NumFeature:hi*m.NumFeature], margins[lo*m.groups:hi*m.groups])
	}
	if !m.obj.classifier {
		m.transform(margins)
		return tree.Predicted(m.sig, margins), nil
	}
	labels := make([]int64, n)
	if m.obj.multi {
		tree.Argmax(margins, m.groups, labels)
		for r := range n {
			softmaxRow(margins[r*m.groups : r*m.groups+m.groups])
		}
		return tree.Classified(m.sig, labels, margins), nil
	}
	probs := make([]float32, 2*n)
	for r, v := range margins {
		p := sigmoid(v)
		probs[2*r], probs[2*r+1] = 1-p, p
		if p >= 0.5 {
			labels[r] = 1
		}
	}
	return tree.Classified(m.sig, labels, probs), nil
}

// Batching declares that requests may be concatenated and split on the
// row dimension: every row is predicted alone, with the same arithmetic
// whatever the other rows (see backend.Batcher).
func (m *Model) Batching() backend.Batching {
	return backend.Batching{Concat: true, Split: true}
}

// OutputGroups returns the number of margins per row: NumClass for multi:*
// objectives, 1 otherwise.
func (m *Model) OutputGroups() int { return m.groups }

// PredictMargin writes the raw margins of rows (row-major, NumFeature
// values each) to out, OutputGroups values per row, as Booster.predict with
// output_margin=True. It allocates nothing. It panics unless len(rows) is
// NumFeature times len(out)/OutputGroups.
func (m *Model) PredictMargin(rows []float32, out []float32) {
	if len(out)%m.groups != 0 || len(rows) != len(out)/m.groups*m.NumFeature {
		panic(fmt.Sprintf("xgboost: PredictMargin with %d values for %d margins", len(rows), len(out)))
	}
	for i := range out {
		out[i] = m.base
	}
	if m.ens != nil {
		m.ens.PredictFloat32(rows, out)
		return
	}
	m.predictLinear(rows, out)
}

// Predict returns what Booster.predict returns for rows (row-major,
// NumFeature values each), flattened: for multi:softprob OutputGroups
// probabilities per row, for multi:softmax the class index of each row, for
// every other objective the transformed prediction of each row.
func (m *Model) Predict(rows []float32) []float32 {
	n := 0
	if m.NumFeature > 0 {
		n = len(rows) / m.NumFeature
	}
	out := make([]float32, n*m.groups)
	m.PredictMargin(rows[:n*m.NumFeature], out)
	if m.obj.link != softmax {
		m.transform(out)
		return out
	}
	labels := make([]int64, n)
	tree.Argmax(out, m.groups, labels)
	out = out[:n]
	for i, l := range labels {
		out[i] = float32(l)
	}
	return out
}

// transform applies the objective's link to margins in place; for softprob
// row by row. It does nothing for softmax (see Predict).
func (m *Model) transform(v []float32) {
	switch m.obj.link {
	case logistic:
		for i, x := range v {
			v[i] = sigmoid(x)
		}
	case exponential:
		for i, x := range v {
			v[i] = float32(math.Exp(float64(x)))
		}
	case softprob:
		for r := 0; r+m.groups <= len(v); r += m.groups {
			softmaxRow(v[r : r+m.groups])
		}
	}
}

// predictLinear is gblinear's prediction: base margin + bias + the sum of
// weight*value over the present (not NaN) features, in float32.
func (m *Model) predictLinear(rows []float32, out []float32) {
	F, G := m.NumFeature, m.groups
	bias := m.linear[F*G:]
	for r := 0; r < len(out)/G; r++ {
		row := rows[r*F : r*F+F]
		for g := range G {
			sum := bias[g] + out[r*G+g]
			for f, x := range row {
				if x == x {
					sum += float32(x * m.linear[f*G+g]) // no fused multiply-add, like XGBoost
				}
			}
			out[r*G+g] = sum
		}
	}
}
