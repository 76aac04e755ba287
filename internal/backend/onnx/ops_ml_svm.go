package onnx

import (
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// svmKernel is a support vector machine's kernel function.
type svmKernel struct {
	typ                  string // LINEAR, POLY, RBF, SIGMOID
	gamma, coef0, degree float64
}

func parseKernel(n *Node) (svmKernel, error) {
	k := svmKernel{typ: n.Attrs.String("kernel_type", "LINEAR")}
	p := n.Attrs.Floats("kernel_params")
	if len(p) > 0 {
		k.gamma = float64(p[0])
	}
	if len(p) > 1 {
		k.coef0 = float64(p[1])
	}
	if len(p) > 2 {
		k.degree = float64(p[2])
	}
	switch k.typ {
	case "LINEAR", "POLY", "RBF", "SIGMOID":
		return k, nil
	}
	return k, fmt.Errorf("%w: kernel_type %q", ErrAttr, k.typ)
}

// eval computes K(x, v).
func (k svmKernel) eval(x []float32, v []float32) float64 {
	var s float64
	if k.typ == "RBF" {
		for i, a := range x {
			d := float64(a) - float64(v[i])
			s += d * d
		}
		return math.Exp(-k.gamma * s)
	}
	for i, a := range x {
		s += float64(a) * float64(v[i])
	}
	switch k.typ {
	case "POLY":
		return math.Pow(k.gamma*s+k.coef0, k.degree)
	case "SIGMOID":
		return math.Tanh(k.gamma*s + k.coef0)
	}
	return s
}

// newSVMClassifier implements SVMClassifier the way libsvm (and so
// scikit-learn and onnxruntime) does: one-vs-one decision values, votes
// for the label, and with prob_a/prob_b the pairwise-coupled
// probabilities (libsvm's multiclass_probability) as scores and their
// argmax as label. Without support vectors it is a linear model, one row
// of coefficients per class.
func newSVMClassifier(n *Node) (Kernel, error) {
	kern, err := parseKernel(n)
	if err != nil {
		return nil, err
	}
	labels, err := readLabels(n)
	if err != nil {
		return nil, err
	}
	coef := n.Attrs.Floats("coefficients")
	rho := n.Attrs.Floats("rho")
	probA := n.Attrs.Floats("prob_a")
	probB := n.Attrs.Floats("prob_b")
	sv := n.Attrs.Floats("support_vectors")
	perClass := n.Attrs.Ints("vectors_per_class")
	post, err := parsePost(n.Attrs.String("post_transform", "NONE"))
	if err != nil {
		return nil, err
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	nc := labels.len()
	if nc == 0 {
		return nil, fmt.Errorf("%w: SVMClassifier without class labels", ErrAttr)
	}
	nv := 0
	starts := make([]int, len(perClass))
	for i, c := range perClass {
		if c < 0 {
			return nil, fmt.Errorf("%w: vectors_per_class %v", ErrAttr, perClass)
		}
		starts[i] = nv
		nv += int(c)
	}
	if nv == 0 { // linear
		if len(coef)%nc != 0 || len(rho) < nc {
			return nil, fmt.Errorf("%w: linear SVMClassifier: %d coefficients, %d rho for %d classes", ErrAttr, len(coef), len(rho), nc)
		}
		nf := len(coef) / nc
		return func(tmp *Scratch, in, out []*Value) error {
			rows, nr, c, err := mlRows(tmp, in[0])
			if err != nil {
				return err
			}
			if c != nf {
				return badInput("SVMClassifier of %d features, want %d", c, nf)
			}
			if err := svmOutputs(tmp, labels, out, nr, nc); err != nil {
				return err
			}
			z := out[1].Float32s()
			scores := tmp.Float64s(nc)
			for r := range nr {
				x := rows[r*c : r*c+c]
				best := 0
				for k := range nc {
					scores[k] = svmKernel{typ: "LINEAR"}.eval(x, coef[k*nf:k*nf+nf]) + float64(rho[k])
					if scores[k] > scores[best] {
						best = k
					}
				}
				labels.set(out[0], r, best)
				post.apply(scores)
				writeScores(z, r*nc, scores)
			}
			return nil
		}, nil
	}
	if len(perClass) != nc || len(sv)%nv != 0 {
		return nil, fmt.Errorf("%w: SVMClassifier: %d classes, %d vectors_per_class, %d support vector values", ErrAttr, nc, len(perClass), len(sv))
	}
	nf := len(sv) / nv
	pairs := nc * (nc - 1) / 2
	if len(coef) != (nc-1)*nv || len(rho) != pairs {
		return nil, fmt.Errorf("%w: SVMClassifier: %d coefficients and %d rho, want %d and %d", ErrAttr, len(coef), len(rho), (nc-1)*nv, pairs)
	}
	proba := len(probA) > 0
	if proba && (len(probA) != pairs || len(probB) != pairs) {
		return nil, fmt.Errorf("%w: SVMClassifier: %d prob_a and %d prob_b for %d pairs", ErrAttr, len(probA), len(probB), pairs)
	}
	cols := pairs
	if proba {
		cols = nc
	} else if nc == 2 {
		cols = 2
	}
	return func(tmp *Scratch, in, out []*Value) error {
		rows, nr, c, err := mlRows(tmp, in[0])
		if err != nil {
			return err
		}
		if c != nf {
			return badInput("SVMClassifier of %d features, want %d", c, nf)
		}
		if err := svmOutputs(tmp, labels, out, nr, cols); err != nil {
			return err
		}
		z := out[1].Float32s()
		// Scratch: kernels [nv], decisions [pairs], votes [nc],
		// pairwise probabilities [nc*nc], Q [nc*nc], Qp [nc], p [nc].
		buf := tmp.Float64s(nv + pairs + nc + 2*nc*nc + 2*nc)
		kv, dec, votes := buf[:nv], buf[nv:nv+pairs], buf[nv+pairs:nv+pairs+nc]
		rest := buf[nv+pairs+nc:]
		for r := range nr {
			x := rows[r*c : r*c+c]
			for i := range nv {
				kv[i] = kern.eval(x, sv[i*nf:i*nf+nf])
			}
			clear(votes)
			p := 0
			for i := range nc {
				for j := i + 1; j < nc; j++ {
					s := float64(rho[p])
					si, sj := starts[i], starts[j]
					for m := range int(perClass[i]) {
						s += float64(coef[(j-1)*nv+si+m]) * kv[si+m]
					}
					for m := range int(perClass[j]) {
						s += float64(coef[i*nv+sj+m]) * kv[sj+m]
					}
					dec[p] = s
					if s > 0 {
						votes[i]++
					} else {
						votes[j]++
					}
					p++
				}
			}
			if proba {
				probs := coupleProbabilities(nc, dec, probA, probB, rest)
				best := 0
				for k := range nc {
					if probs[k] > probs[best] {
						best = k
					}
				}
				labels.set(out[0], r, best)
				post.apply(probs)
				writeScores(z, r*cols, probs)
				continue
			}
			best := 0
			for k := range nc {
				if votes[k] > votes[best] {
					best = k
				}
			}
			labels.set(out[0], r, best)
			if nc == 2 {
				z[r*cols], z[r*cols+1] = float32(-dec[0]), float32(dec[0])
				continue
			}
			post.apply(dec)
			writeScores(z, r*cols, dec)
		}
		return nil
	}, nil
}

// svmOutputs sizes a classifier's label and score outputs.
func svmOutputs(tmp *Scratch, labels classLabels, out []*Value, nr, cols int) error {
	if err := labels.resize(tmp, out[0], nr); err != nil {
		return err
	}
	shape := tmp.Shape(2)
	shape[0], shape[1] = int64(nr), int64(cols)
	return out[1].Resize(tensor.FP32, shape)
}

// sigmoidPredict is libsvm's Platt scaling of a decision value.
func sigmoidPredict(dec, a, b float64) float64 {
	f := dec*a + b
	if f >= 0 {
		return math.Exp(-f) / (1 + math.Exp(-f))
	}
	return 1 / (1 + math.Exp(f))
}

// coupleProbabilities computes class probabilities from pairwise decision
// values as libsvm's svm_predict_probability does; buf holds 2k²+2k
// float64s of scratch. It returns a slice of buf with k probabilities.
func coupleProbabilities(k int, dec []float64, probA, probB []float32, buf []float64) []float64 {
	const minProb = 1e-7
	r, q := buf[:k*k], buf[k*k:2*k*k]
	qp, p := buf[2*k*k:2*k*k+k], buf[2*k*k+k:2*k*k+2*k]
	idx := 0
	for i := range k {
		for j := i + 1; j < k; j++ {
			v := math.Min(math.Max(sigmoidPredict(dec[idx], float64(probA[idx]), float64(probB[idx])), minProb), 1-minProb)
			r[i*k+j], r[j*k+i] = v, 1-v
			idx++
		}
	}
	if k == 2 {
		p[0], p[1] = r[0*k+1], r[1*k+0]
		return p
	}
	// libsvm's multiclass_probability (Wu, Lin and Weng, method 2).
	for t := range k {
		p[t] = 1 / float64(k)
		q[t*k+t] = 0
		for j := range t {
			q[t*k+t] += r[j*k+t] * r[j*k+t]
			q[t*k+j] = q[j*k+t]
		}
		for j := t + 1; j < k; j++ {
			q[t*k+t] += r[j*k+t] * r[j*k+t]
			q[t*k+j] = -r[j*k+t] * r[t*k+j]
		}
	}
	eps := 0.005 / float64(k)
	for iter := 0; iter < max(100, k); iter++ {
		var pqp float64
		for t := range k {
			qp[t] = 0
			for j := range k {
				qp[t] += q[t*k+j] * p[j]
			}
			pqp += p[t] * qp[t]
		}
		var maxErr float64
		for t := range k {
			maxErr = math.Max(maxErr, math.Abs(qp[t]-pqp))
		}
		if maxErr < eps {
			break
		}
		for t := range k {
			diff := (-qp[t] + pqp) / q[t*k+t]
			p[t] += diff
			pqp = (pqp + diff*(diff*q[t*k+t]+2*qp[t])) / (1 + diff) / (1 + diff)
			for j := range k {
				qp[j] = (qp[j] + diff*q[t*k+j]) / (1 + diff)
				p[j] /= 1 + diff
			}
		}
	}
	return p
}

// newSVMRegressor implements SVMRegressor: sum of coefficient × kernel
// over the support vectors plus rho (or a linear model without support
// vectors); a one-class model outputs 1 or -1.
func newSVMRegressor(n *Node) (Kernel, error) {
	kern, err := parseKernel(n)
	if err != nil {
		return nil, err
	}
	coef := n.Attrs.Floats("coefficients")
	rho := n.Attrs.Floats("rho")
	sv := n.Attrs.Floats("support_vectors")
	ns := int(n.Attrs.Int("n_supports", 0))
	oneClass := n.Attrs.Int("one_class", 0) != 0
	post, err := parsePost(n.Attrs.String("post_transform", "NONE"))
	if err != nil {
		return nil, err
	}
	if err := n.Attrs.Err(); err != nil {
		return nil, err
	}
	if len(rho) != 1 {
		return nil, fmt.Errorf("%w: SVMRegressor with %d rho", ErrAttr, len(rho))
	}
	nf := len(coef)
	if ns > 0 {
		if len(coef) != ns || len(sv)%ns != 0 {
			return nil, fmt.Errorf("%w: SVMRegressor: %d supports, %d coefficients, %d vector values", ErrAttr, ns, len(coef), len(sv))
		}
		nf = len(sv) / ns
	} else if ns < 0 {
		return nil, fmt.Errorf("%w: n_supports %d", ErrAttr, ns)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		rows, nr, c, err := mlRows(tmp, in[0])
		if err != nil {
			return err
		}
		if c != nf {
			return badInput("SVMRegressor of %d features, want %d", c, nf)
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(nr), 1
		if err := out[0].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		y := out[0].Float32s()
		var one [1]float64
		for r := range nr {
			x := rows[r*c : r*c+c]
			s := float64(rho[0])
			if ns == 0 {
				s += svmKernel{typ: "LINEAR"}.eval(x, coef)
			} else {
				for i := range ns {
					s += float64(coef[i]) * kern.eval(x, sv[i*nf:i*nf+nf])
				}
			}
			if oneClass {
				if s > 0 {
					s = 1
				} else {
					s = -1
				}
			}
			one[0] = s
			post.apply(one[:])
			y[r] = float32(one[0])
		}
		return nil
	}, nil
}
