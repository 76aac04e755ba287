package tree

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// The default tensor names of a tree model.
const (
	InputName         = "input"
	LabelName         = "label"
	ProbabilitiesName = "probabilities"
	PredictionsName   = "predictions"
)

// Signature returns the signature of a tree model that reads numFeature
// values per row and, when classes > 0, classifies into that many classes:
//
//	inputs:  "input" FP32 [-1, numFeature]
//	outputs: "label" INT64 [-1], "probabilities" FP32 [-1, classes]   (classes > 0)
//	         "predictions" FP32 [-1]                                    (classes == 0)
//
// cfg.Inputs and cfg.Outputs, when set, rename these tensors in order; they
// must have the same count, and a DType or Shape they give must not
// contradict the model (an input may ask for any numeric DType, which Infer
// accepts anyway). cfg.Labels, when set, must name exactly classes classes.
func Signature(cfg backend.Config, numFeature, classes int) (backend.Signature, error) {
	sig := backend.Signature{
		Inputs: []backend.TensorSpec{{Name: InputName, DType: tensor.FP32, Shape: []int64{-1, int64(numFeature)}}},
	}
	if classes > 0 {
		sig.Outputs = []backend.TensorSpec{
			{Name: LabelName, DType: tensor.Int64, Shape: []int64{-1}},
			{Name: ProbabilitiesName, DType: tensor.FP32, Shape: []int64{-1, int64(classes)}},
		}
	} else {
		sig.Outputs = []backend.TensorSpec{{Name: PredictionsName, DType: tensor.FP32, Shape: []int64{-1}}}
	}
	if len(cfg.Labels) > 0 && len(cfg.Labels) != classes {
		if classes == 0 {
			return backend.Signature{}, fmt.Errorf("%d labels given for a model that is not a classifier", len(cfg.Labels))
		}
		return backend.Signature{}, fmt.Errorf("%d labels given for %d classes", len(cfg.Labels), classes)
	}
	if err := override(sig.Inputs, cfg.Inputs, "input", true); err != nil {
		return backend.Signature{}, err
	}
	if err := override(sig.Outputs, cfg.Outputs, "output", false); err != nil {
		return backend.Signature{}, err
	}
	return sig, nil
}

// override applies the user's specs to the model's, in order.
func override(model, user []backend.TensorSpec, what string, anyNumeric bool) error {
	if len(user) == 0 {
		return nil
	}
	if len(user) != len(model) {
		names := make([]string, len(model))
		for i, s := range model {
			names[i] = s.Name
		}
		return fmt.Errorf("%d %ss configured, the model has %d %v", len(user), what, len(model), names)
	}
	for i, u := range user {
		m := &model[i]
		switch {
		case u.DType == tensor.Invalid, u.DType == m.DType:
		case anyNumeric && u.DType != tensor.Bytes && u.DType.Size() > 0:
			m.DType = u.DType
		default:
			return fmt.Errorf("%s %d (%s): configured as %s, the model has %s", what, i, m.Name, u.DType, m.DType)
		}
		if u.Shape != nil && !compatible(u.Shape, m.Shape) {
			return fmt.Errorf("%s %d (%s): configured shape %v, the model has %v", what, i, m.Name, u.Shape, m.Shape)
		}
		if u.Name != "" {
			m.Name = u.Name
		}
	}
	return nil
}

// compatible reports whether shapes a and b have the same rank and agree
// wherever neither is dynamic (-1).
func compatible(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && a[i] != -1 && b[i] != -1 {
			return false
		}
	}
	return true
}

// Rows returns the rows of the input of sig found in inputs, as row-major
// float32 values, and how many rows there are. The input may hold any
// numeric DType; its shape is [n, F] or, for a single row, [F], where F is
// the last dimension of sig's input. The result aliases the input's data
// when it is FP32: callers must not modify it. Rows returns an error
// wrapping backend.ErrInvalidInput when the input is missing, not numeric
// or of the wrong width.
func Rows(sig backend.Signature, inputs []*tensor.Tensor) (rows []float32, n int, err error) {
	spec := sig.Inputs[0]
	width := int(spec.Shape[len(spec.Shape)-1])
	in, ok := backend.FindInput(inputs, spec.Name)
	if !ok {
		return nil, 0, fmt.Errorf("%w: no input named %q", backend.ErrInvalidInput, spec.Name)
	}
	if err := in.Validate(); err != nil {
		return nil, 0, fmt.Errorf("%w: input %q: %w", backend.ErrInvalidInput, spec.Name, err)
	}
	switch len(in.Shape) {
	case 1:
		if in.Shape[0] != int64(width) {
			return nil, 0, fmt.Errorf("%w: input %q: want %d features, got %d", backend.ErrInvalidInput, spec.Name, width, in.Shape[0])
		}
		n = 1
	case 2:
		if in.Shape[1] != int64(width) {
			return nil, 0, fmt.Errorf("%w: input %q: want %d features per row, got %d", backend.ErrInvalidInput, spec.Name, width, in.Shape[1])
		}
		n = int(in.Shape[0])
	default:
		return nil, 0, fmt.Errorf("%w: input %q: want shape [n, %d] or [%d], got %v", backend.ErrInvalidInput, spec.Name, width, width, in.Shape)
	}
	rows, err = in.Float32s()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: input %q: %w", backend.ErrInvalidInput, spec.Name, err)
	}
	return rows, n, nil
}

// Classified returns a classifier's outputs named as in sig: labels as
// "label" [n] and probs (n rows of K values) as "probabilities" [n, K].
// The tensors take ownership of labels and probs.
func Classified(sig backend.Signature, labels []int64, probs []float32) []*tensor.Tensor {
	n := len(labels)
	k := 0
	if n > 0 {
		k = len(probs) / n
	} else if s := sig.Outputs[1].Shape; len(s) == 2 {
		k = int(s[1])
	}
	return []*tensor.Tensor{
		{Name: sig.Outputs[0].Name, DType: tensor.Int64, Shape: []int64{int64(n)}, Data: labels},
		{Name: sig.Outputs[1].Name, DType: tensor.FP32, Shape: []int64{int64(n), int64(k)}, Data: probs},
	}
}

// Predicted returns a regressor's output named as in sig: preds as
// "predictions" [n]. The tensor takes ownership of preds.
func Predicted(sig backend.Signature, preds []float32) []*tensor.Tensor {
	return []*tensor.Tensor{
		{Name: sig.Outputs[0].Name, DType: tensor.FP32, Shape: []int64{int64(len(preds))}, Data: preds},
	}
}

// Argmax writes to labels[r] the index of the first largest of the k values
// of row r of probs. NaN is never the largest unless all are NaN (then 0).
func Argmax(probs []float32, k int, labels []int64) {
	for r := range labels {
		row := probs[r*k : r*k+k]
		best := 0
		for j := 1; j < k; j++ {
			if row[j] > row[best] || (row[best] != row[best] && row[j] == row[j]) {
				best = j
			}
		}
		labels[r] = int64(best)
	}
}
