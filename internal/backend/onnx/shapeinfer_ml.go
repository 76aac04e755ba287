package onnx

import (
	"fmt"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// Shape functions of the ai.onnx.ml operators. The estimators read X as
// rows (mlRows): a tensor of rank 2 or more is [N, features...], rank 0 or
// 1 is one row; labels are [N] and scores [N, columns].

func mlShapeFunc(typ string) shapeFunc {
	switch typ {
	case "LinearClassifier":
		return linearClassifierShape
	case "LinearRegressor":
		return linearRegressorShape
	case "TreeEnsembleClassifier":
		return treeClassifierShape
	case "TreeEnsembleRegressor":
		return treeRegressorShape
	case "SVMClassifier":
		return svmClassifierShape
	case "SVMRegressor":
		return mlScoresShape(func(*Node) dim { return 1 }, tensor.FP32)
	case "Scaler", "Normalizer":
		return sameShapeAs(tensor.FP32)
	case "Binarizer", "Imputer":
		return sameShape
	case "LabelEncoder":
		return labelEncoderShape
	case "OneHotEncoder":
		return oneHotEncoderShape
	case "ArrayFeatureExtractor":
		return arrayFeatureExtractorShape
	case "FeatureVectorizer":
		return featureVectorizerShape
	case "ZipMap":
		return zipMapShape
	}
	return nil
}

// mlRowsOf returns X's number of rows and its features per row, as mlRows
// reads them; unknown when the rank is.
func mlRowsOf(x vshape) (rows, features dim) {
	if !x.ranked {
		return unknownDim, unknownDim
	}
	switch len(x.dims) {
	case 0:
		return 1, 1
	case 1:
		return 1, x.dims[0]
	}
	return x.dims[0], product(x.dims[1:])
}

// unifyFeatures binds X's features per row to want (when X has rank 2, the
// common case, this fixes the graph input's second dimension).
func (c *shapeCtx) unifyFeatures(want int) error {
	x := c.input(0)
	if want < 0 || !x.ranked {
		return nil
	}
	_, f := mlRowsOf(x)
	if len(x.dims) == 2 {
		f = x.dims[1]
	}
	if err := c.inf.unify(f, dim(want)); err != nil {
		return fmt.Errorf("features per row: %w", err)
	}
	return nil
}

// labelType is the element type of a classifier's labels.
func labelType(n *Node) tensor.DType {
	if n.Attrs.Has("classlabels_strings") {
		return tensor.Bytes
	}
	return tensor.Int64
}

// classifierOutputs sets labels [N] and scores [N, cols].
func classifierOutputs(c *shapeCtx, cols dim) {
	rows, _ := mlRowsOf(c.input(0))
	if rows == unknownDim && !c.input(0).ranked {
		c.set(0, vshape{dt: labelType(c.n)})
		c.set(1, vshape{dt: tensor.FP32})
		return
	}
	c.set(0, ranked(labelType(c.n), rows))
	c.set(1, ranked(tensor.FP32, rows, cols))
}

func linearClassifierShape(c *shapeCtx) error {
	coef := c.n.Attrs.Floats("coefficients")
	labels, err := readLabels(c.n)
	if err != nil {
		return nil
	}
	nt := len(c.n.Attrs.Floats("intercepts"))
	if nt == 0 {
		nt = labels.len()
		if labels.len() == 2 && len(coef)%2 != 0 {
			nt = 1
		}
	}
	cols := nt
	if nt == 1 && labels.len() == 2 {
		cols = 2
	}
	if nt > 0 && len(coef)%nt == 0 {
		if err := c.unifyFeatures(len(coef) / nt); err != nil {
			return err
		}
	}
	classifierOutputs(c, dim(cols))
	return nil
}

func linearRegressorShape(c *shapeCtx) error {
	nt := int(c.n.Attrs.Int("targets", 1))
	coef := c.n.Attrs.Floats("coefficients")
	if nt >= 1 && len(coef)%nt == 0 {
		if err := c.unifyFeatures(len(coef) / nt); err != nil {
			return err
		}
	}
	return mlScoresShape(func(*Node) dim { return dim(max(nt, 0)) }, tensor.FP32)(c)
}

// mlScoresShape: one output [N, cols(n)] of type dt.
func mlScoresShape(cols func(*Node) dim, dt tensor.DType) shapeFunc {
	return func(c *shapeCtx) error {
		rows, _ := mlRowsOf(c.input(0))
		if !c.input(0).ranked {
			c.set(0, vshape{dt: dt})
			return nil
		}
		c.set(0, ranked(dt, rows, cols(c.n)))
		return nil
	}
}

func treeClassifierShape(c *shapeCtx) error {
	labels, err := readLabels(c.n)
	if err != nil || labels.len() == 0 {
		return nil
	}
	classifierOutputs(c, dim(labels.len()))
	return nil
}

func treeRegressorShape(c *shapeCtx) error {
	nt := c.n.Attrs.Int("n_targets", 1)
	if nt < 1 || nt > maxDim {
		return nil
	}
	return mlScoresShape(func(*Node) dim { return dim(nt) }, tensor.FP32)(c)
}

// svmClassifierShape: labels [N] and scores [N, cols], cols as the kernel
// counts them for a model with support vectors (one per class with
// probabilities, else one per pair of classes, 2 for two classes); unknown
// for a linear SVM.
func svmClassifierShape(c *shapeCtx) error {
	labels, err := readLabels(c.n)
	if err != nil {
		return nil
	}
	nc := int64(labels.len())
	nv := int64(0)
	for _, v := range c.n.Attrs.Ints("vectors_per_class") {
		if v < 0 || v > maxDim {
			return nil
		}
		nv += v
	}
	cols := unknownDim
	if nv > 0 && nc > 0 && nc < 1<<16 {
		pairs := nc * (nc - 1) / 2
		switch {
		case len(c.n.Attrs.Floats("prob_a")) > 0:
			cols = dim(nc)
		case nc == 2:
			cols = 2
		default:
			cols = dim(pairs)
		}
		if sv := int64(len(c.n.Attrs.Floats("support_vectors"))); sv%nv == 0 {
			if err := c.unifyFeatures(int(sv / nv)); err != nil {
				return err
			}
		}
	}
	classifierOutputs(c, cols)
	return nil
}

// zipMapShape describes the sequence of maps by the [N, C] tensor it is
// served as (see Model.Infer): the shape of its input.
func zipMapShape(c *shapeCtx) error {
	in := c.input(0)
	c.set(0, vshape{ranked: in.ranked, dims: in.dims})
	return nil
}

func labelEncoderShape(c *shapeCtx) error {
	x := c.input(0)
	var dt tensor.DType
	switch {
	case c.n.Version < 2:
		// Version 1 maps strings to ints and back: the type follows X.
	case c.n.Attrs.Has("values_strings"):
		dt = tensor.Bytes
	case c.n.Attrs.Has("values_int64s"):
		dt = tensor.Int64
	case c.n.Attrs.Has("values_floats"):
		dt = tensor.FP32
	}
	c.set(0, vshape{dt: dt, ranked: x.ranked, dims: x.dims})
	return nil
}

func oneHotEncoderShape(c *shapeCtx) error {
	x := c.input(0)
	k := max(len(c.n.Attrs.Ints("cats_int64s")), len(c.n.Attrs.Strings("cats_strings")))
	out := vshape{dt: tensor.FP32}
	if x.ranked {
		out.ranked, out.dims = true, append(append([]dim{}, x.dims...), dim(k))
	}
	c.set(0, out)
	return nil
}

func arrayFeatureExtractorShape(c *shapeCtx) error {
	x, idx := c.input(0), c.input(1)
	out := vshape{dt: x.dt}
	if x.ranked && idx.ranked {
		k := product(idx.dims)
		if len(x.dims) <= 1 {
			out.ranked, out.dims = true, []dim{1, k}
		} else {
			out.ranked, out.dims = true, append(append([]dim{}, x.dims[:len(x.dims)-1]...), k)
		}
	}
	c.set(0, out)
	return nil
}

func featureVectorizerShape(c *shapeCtx) error {
	total := int64(0)
	for _, d := range c.n.Attrs.Ints("inputdimensions") {
		if d < 0 || d > maxDim {
			return nil
		}
		if total += d; total > maxDim {
			return nil
		}
	}
	rows := unknownDim
	if x := c.input(0); x.ranked {
		rows = 1
		if len(x.dims) > 1 {
			rows = x.dims[0]
		}
	}
	c.set(0, ranked(tensor.FP32, rows, dim(total)))
	return nil
}
