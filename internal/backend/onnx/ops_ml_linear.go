package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// newLinearClassifier implements LinearClassifier: scores = X·Wᵀ + b, the
// label of the best score, then post_transform on the scores. With one
// set of coefficients and two labels (a binary model), the label is the
// second one when the raw score is above 0, and the scores are expanded to
// two columns [1-s, s] after the transform, as onnxruntime does.
func newLinearClassifier(n *Node) (Kernel, error) {
	coef := n.Attrs.Floats("coefficients")
	icpt := n.Attrs.Floats("intercepts")
	post, err := parsePost(n.Attrs.String("post_transform", "NONE"))
	if err != nil {
		return nil, err
	}
	labels, err := readLabels(n)
	if err != nil {
		return nil, err
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	nt := len(icpt)
	if nt == 0 {
		if labels.len() == 0 || len(coef)%labels.len() != 0 {
			return nil, fmt.Errorf("%w: LinearClassifier without intercepts", ErrAttr)
		}
		nt = labels.len()
		if labels.len() == 2 && len(coef)%2 != 0 {
			nt = 1
		}
		icpt = make([]float32, nt)
	}
	if len(coef)%nt != 0 {
		return nil, fmt.Errorf("%w: LinearClassifier: %d coefficients for %d classes", ErrAttr, len(coef), nt)
	}
	binary := nt == 1 && labels.len() == 2
	if labels.len() == 0 || (nt != labels.len() && !binary) {
		return nil, fmt.Errorf("%w: LinearClassifier: %d labels for %d score columns", ErrUnsupported, labels.len(), nt)
	}
	nf := len(coef) / nt
	cols := nt
	if binary {
		cols = 2
	}
	return func(tmp *Scratch, in, out []*Value) error {
		rows, nr, c, err := mlRows(tmp, in[0])
		if err != nil {
			return err
		}
		if c != nf {
			return badInput("LinearClassifier of %d features, want %d", c, nf)
		}
		if err := labels.resize(tmp, out[0], nr); err != nil {
			return err
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(nr), int64(cols)
		if err := out[1].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		z := out[1].Float32s()
		scores := tmp.Float64s(cols)
		for r := range nr {
			x := rows[r*c : r*c+c]
			for k := range nt {
				s := float64(icpt[k])
				w := coef[k*nf : k*nf+nf]
				for j, v := range x {
					s += float64(w[j]) * float64(v)
				}
				scores[k] = s
			}
			if binary {
				if scores[0] > 0 {
					labels.set(out[0], r, 1)
				} else {
					labels.set(out[0], r, 0)
				}
				post.apply(scores[:1])
				scores[1] = scores[0]
				scores[0] = 1 - scores[1]
			} else {
				best := 0
				for k := 1; k < nt; k++ {
					if scores[k] > scores[best] {
						best = k
					}
				}
				labels.set(out[0], r, best)
				post.apply(scores)
			}
			writeScores(z, r*cols, scores)
		}
		return nil
	}, nil
}

// newLinearRegressor implements LinearRegressor: Y = X·Wᵀ + b, [N, targets].
func newLinearRegressor(n *Node) (Kernel, error) {
	coef := n.Attrs.Floats("coefficients")
	icpt := n.Attrs.Floats("intercepts")
	nt := int(n.Attrs.Int("targets", 1))
	post, err := parsePost(n.Attrs.String("post_transform", "NONE"))
	if err != nil {
		return nil, err
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if nt < 1 || len(coef)%nt != 0 || (icpt != nil && len(icpt) != nt) {
		return nil, fmt.Errorf("%w: LinearRegressor: %d coefficients, %d intercepts for %d targets", ErrAttr, len(coef), len(icpt), nt)
	}
	nf := len(coef) / nt
	return func(tmp *Scratch, in, out []*Value) error {
		rows, nr, c, err := mlRows(tmp, in[0])
		if err != nil {
			return err
		}
		if c != nf {
			return badInput("LinearRegressor of %d features, want %d", c, nf)
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(nr), int64(nt)
		if err := out[0].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		y := out[0].Float32s()
		scores := tmp.Float64s(nt)
		for r := range nr {
			x := rows[r*c : r*c+c]
			for k := range nt {
				var s float64
				if icpt != nil {
					s = float64(icpt[k])
				}
				w := coef[k*nf : k*nf+nf]
				for j, v := range x {
					s += float64(w[j]) * float64(v)
				}
				scores[k] = s
			}
			post.apply(scores)
			writeScores(y, r*nt, scores)
		}
		return nil
	}, nil
}
