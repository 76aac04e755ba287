// Package lightgbm is the native backend for LightGBM models saved in the
// text format (Booster.save_model("model.txt")). It evaluates the model in
// Go with the tree evaluator of internal/backend/tree, the way LightGBM 3
// and 4 predict: raw scores summed in float64 in tree order, numerical
// splits x <= threshold with the missing-value handling of decision_type
// (default direction; missing type None, Zero or NaN), categorical splits
// through cat_threshold bitsets, linear trees, averaging for random-forest
// models (average_output), then the objective's output conversion.
//
// Objectives: binary, multiclass (softmax), multiclassova, regression
// (l2, l1, huber, fair, quantile, mape, with or without reg_sqrt),
// poisson, gamma and tweedie (exp), cross_entropy (sigmoid),
// cross_entropy_lambda, lambdarank and rank_xendcg (raw scores), and
// custom objectives (raw scores).
//
// The tensors follow tree.Signature: one input "input" FP32 [-1, F] (any
// numeric type accepted, [n, F] or one row [F]); classifiers (binary,
// multiclass, multiclassova) answer "label" INT64 [-1] and "probabilities"
// FP32 [-1, K] (binary: [1-p, p], label 1 when p >= 0.5; multiclassova:
// each class's own sigmoid, as LightGBM returns them, unnormalised); every
// other objective answers "predictions" FP32 [-1], what Booster.predict
// returns.
//
// No LightGBM library was available where this package was written (Debian
// bookworm does not package it), so its test fixtures are model files
// written by hand in the real text format with outputs checked by hand; see
// testdata/README.md. It does not read LightGBM's binary or JSON dumps, and
// it does not train.
package lightgbm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/tree"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Errors returned by Parse and Load.
var (
	// ErrFormat means the file is not a well-formed LightGBM text model.
	ErrFormat = errors.New("lightgbm: invalid model")
	// ErrUnsupported means the model uses a feature this package does not
	// evaluate.
	ErrUnsupported = errors.New("lightgbm: unsupported model")
)

// DefaultArtifact is the file Load reads from cfg.Dir when cfg.Artifact is
// empty.
const DefaultArtifact = "model.txt"

// defaultConfig names nothing: the default signature.
var defaultConfig backend.Config

// zeroThreshold is LightGBM's kZeroThreshold (the float 1e-35f): input
// values within it are read as zero.
const zeroThreshold = float32(1e-35)

// Model is a parsed LightGBM model. It implements backend.Model, is
// immutable after Parse or Load, and is safe for concurrent use.
type Model struct {
	// Objective is the objective's name, e.g. "binary" or "regression";
	// "custom" when the file names none.
	Objective string
	// NumFeature is the number of values in a row (max_feature_idx + 1).
	NumFeature int
	// NumClass is the number of classes of a classifier (2 for binary),
	// 0 for any other objective.
	NumClass int
	// AverageOutput is true for random-forest models, whose raw score is
	// the mean of the trees' outputs rather than their sum.
	AverageOutput bool
	// FeatureNames are the feature names saved with the model.
	FeatureNames []string

	obj        objective
	groups     int // trees per iteration: outputs per row
	iterations int
	ens        *tree.Ensemble
	sig        backend.Signature
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
		return nil, fmt.Errorf("lightgbm: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Base(path), err)
	}
	if m.sig, err = tree.Signature(cfg, m.NumFeature, m.NumClass); err != nil {
		return nil, fmt.Errorf("lightgbm: %s: %w", filepath.Base(path), err)
	}
	return m, nil
}

// Signature returns the model's tensors; see the package comment.
func (m *Model) Signature() backend.Signature { return m.sig }

// OutputGroups returns the number of raw scores per row: the number of
// trees per iteration (the class count for multiclass models, else 1).
func (m *Model) OutputGroups() int { return m.groups }

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
	pred := make([]float64, n*m.groups)
	for lo := 0; lo < n; lo += inferChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi := min(lo+inferChunk, n)
		m.Predict(rows[lo*m.NumFeature:hi*m.NumFeature], pred[lo*m.groups:hi*m.groups])
	}
	if !m.obj.classifier {
		return tree.Predicted(m.sig, toFloat32(pred)), nil
	}
	labels := make([]int64, n)
	if m.Objective == "binary" {
		probs := make([]float32, 2*n)
		for r, p := range pred {
			probs[2*r], probs[2*r+1] = float32(1-p), float32(p)
			if p >= 0.5 {
				labels[r] = 1
			}
		}
		return tree.Classified(m.sig, labels, probs), nil
	}
	probs := toFloat32(pred)
	tree.Argmax(probs, m.groups, labels)
	return tree.Classified(m.sig, labels, probs), nil
}

// Batching declares that requests may be concatenated and split on the
// row dimension: every row is predicted alone, with the same arithmetic
// whatever the other rows (see backend.Batcher).
func (m *Model) Batching() backend.Batching {
	return backend.Batching{Concat: true, Split: true}
}

func toFloat32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// PredictRaw writes the raw scores of rows (row-major, NumFeature values
// each) to out, OutputGroups values per row, as Booster.predict with
// raw_score=True: the sum (or, for AverageOutput, the mean) of the trees'
// outputs. It panics unless len(rows) is NumFeature times
// len(out)/OutputGroups. It allocates only when a row holds a nonzero value
// within 1e-35 of zero, which LightGBM reads as 0.
func (m *Model) PredictRaw(rows []float32, out []float64) {
	if len(out)%m.groups != 0 || len(rows) != len(out)/m.groups*m.NumFeature {
		panic(fmt.Sprintf("lightgbm: PredictRaw with %d values for %d scores", len(rows), len(out)))
	}
	clear(out)
	m.ens.Predict(flushTiny(rows), out)
	if m.AverageOutput && m.iterations > 0 {
		for i := range out {
			out[i] /= float64(m.iterations)
		}
	}
}

// Predict writes to out what Booster.predict returns for rows: the raw
// scores through the objective's conversion, OutputGroups values per row
// (probabilities for classifiers). It panics as PredictRaw does.
func (m *Model) Predict(rows []float32, out []float64) {
	m.PredictRaw(rows, out)
	for r := 0; r+m.groups <= len(out); r += m.groups {
		m.obj.convert(out[r : r+m.groups])
	}
}

// flushTiny returns rows with the values LightGBM's predictor drops as zero
// (0 < |x| <= kZeroThreshold) replaced by 0, copying only when there are any.
func flushTiny(rows []float32) []float32 {
	for i, x := range rows {
		if x != 0 && x >= -zeroThreshold && x <= zeroThreshold {
			c := append([]float32(nil), rows...)
			for j := i; j < len(c); j++ {
				if c[j] >= -zeroThreshold && c[j] <= zeroThreshold {
					c[j] = 0
				}
			}
			return c
		}
	}
	return rows
}
