package onnx

import (
	"fmt"
	"math"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// mlOps are the ai.onnx.ml operators: the classical estimators and
// feature transforms that scikit-learn, XGBoost and LightGBM converters
// emit.
func mlOps() []Op {
	return []Op{
		{Domain: DomainML, Type: "LinearClassifier", Since: 1, New: newLinearClassifier},
		{Domain: DomainML, Type: "LinearRegressor", Since: 1, New: newLinearRegressor},
		{Domain: DomainML, Type: "TreeEnsembleClassifier", Since: 1, Until: 4, New: newTreeEnsembleClassifier},
		{Domain: DomainML, Type: "TreeEnsembleRegressor", Since: 1, Until: 4, New: newTreeEnsembleRegressor},
		{Domain: DomainML, Type: "TreeEnsemble", Since: 5, New: newTreeEnsemble},
		{Domain: DomainML, Type: "SVMClassifier", Since: 1, New: newSVMClassifier},
		{Domain: DomainML, Type: "SVMRegressor", Since: 1, New: newSVMRegressor},
		{Domain: DomainML, Type: "Scaler", Since: 1, New: newScaler},
		{Domain: DomainML, Type: "Normalizer", Since: 1, New: newNormalizer},
		{Domain: DomainML, Type: "Binarizer", Since: 1, New: newBinarizer},
		{Domain: DomainML, Type: "Imputer", Since: 1, New: newImputer},
		{Domain: DomainML, Type: "LabelEncoder", Since: 1, New: newLabelEncoder},
		{Domain: DomainML, Type: "OneHotEncoder", Since: 1, New: newOneHotEncoder},
		{Domain: DomainML, Type: "ArrayFeatureExtractor", Since: 1, New: newArrayFeatureExtractor},
		{Domain: DomainML, Type: "FeatureVectorizer", Since: 1, New: newFeatureVectorizer},
		{Domain: DomainML, Type: "ZipMap", Since: 1, New: newZipMap},
		{Domain: DomainML, Type: "CastMap", Since: 1, New: newCastMap},
		{Domain: DomainML, Type: "DictVectorizer", Since: 1, New: newDictVectorizer},
	}
}

// mlNumeric are the input types the ai.onnx.ml estimators accept.
var mlNumeric = []tensor.DType{tensor.FP32, tensor.FP64, tensor.Int64, tensor.Int32}

// mlRows returns x as row-major float32 rows: n rows of c features. A 1-D
// x is one row; higher ranks are [shape[0], rest]. FP32 input is returned
// as is; other types are converted into tmp.Float32s.
func mlRows(tmp *Scratch, x *Value) (rows []float32, n, c int, err error) {
	if err := checkType("X", x, mlNumeric...); err != nil {
		return nil, 0, 0, err
	}
	sh := x.Tensor.Shape
	switch len(sh) {
	case 0:
		n, c = 1, 1
	case 1:
		n, c = 1, int(sh[0])
	default:
		n, c = int(sh[0]), prod(sh[1:])
	}
	if d, ok := x.Tensor.Data.([]float32); ok {
		return d, n, c, nil
	}
	rows = tmp.Float32s(n * c)
	for i := range rows {
		rows[i] = float32(float64At(x.Tensor.Data, i))
	}
	return rows, n, c, nil
}

// Post transforms of the estimators (attribute post_transform).
type postTransform uint8

const (
	postNone postTransform = iota
	postSoftmax
	postLogistic
	postSoftmaxZero
	postProbit
)

func parsePost(s string) (postTransform, error) {
	switch s {
	case "NONE", "":
		return postNone, nil
	case "SOFTMAX":
		return postSoftmax, nil
	case "LOGISTIC":
		return postLogistic, nil
	case "SOFTMAX_ZERO":
		return postSoftmaxZero, nil
	case "PROBIT":
		return postProbit, nil
	}
	return 0, fmt.Errorf("%w: post_transform %q", ErrAttr, s)
}

func logistic(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

func probit(x float64) float64 { return math.Sqrt2 * math.Erfinv(2*x-1) }

// apply transforms one row of scores in place.
func (p postTransform) apply(row []float64) {
	switch p {
	case postLogistic:
		for i, v := range row {
			row[i] = logistic(v)
		}
	case postProbit:
		for i, v := range row {
			row[i] = probit(v)
		}
	case postSoftmax, postSoftmaxZero:
		m := math.Inf(-1)
		for _, v := range row {
			if p == postSoftmaxZero && v == 0 {
				continue
			}
			m = math.Max(m, v)
		}
		var sum float64
		for i, v := range row {
			if p == postSoftmaxZero && v == 0 {
				continue
			}
			row[i] = math.Exp(v - m)
			sum += row[i]
		}
		for i, v := range row {
			if p == postSoftmaxZero && v == 0 {
				continue
			}
			row[i] = v / sum
		}
	}
}

// classLabels are a classifier's labels: ints or strings.
type classLabels struct {
	ints    []int64
	strings [][]byte
}

func readLabels(n *Node) (classLabels, error) {
	var l classLabels
	l.ints = n.Attrs.Ints("classlabels_ints")
	if l.ints == nil {
		l.ints = n.Attrs.Ints("classlabels_int64s") // TreeEnsembleClassifier's name
	}
	if s := n.Attrs.Strings("classlabels_strings"); s != nil {
		if l.ints != nil {
			return l, fmt.Errorf("%w: both classlabels_ints and classlabels_strings", ErrAttr)
		}
		for _, x := range s {
			l.strings = append(l.strings, []byte(x))
		}
	}
	return l, nil
}

func (l classLabels) len() int { return max(len(l.ints), len(l.strings)) }

// resize makes out a 1-D label tensor of n elements.
func (l classLabels) resize(tmp *Scratch, out *Value, n int) error {
	shape := tmp.Shape(1)
	shape[0] = int64(n)
	if l.strings != nil {
		return out.Resize(tensor.Bytes, shape)
	}
	return out.Resize(tensor.Int64, shape)
}

// set writes label k (or, with k < 0 for binary outputs, the int -k-1) at
// index i of out.
func (l classLabels) set(out *Value, i, k int) {
	if l.strings != nil {
		out.Strings()[i] = l.strings[k]
		return
	}
	out.Int64s()[i] = l.ints[k]
}

// writeScores writes a row of float64 scores into element offset of a
// FP32 output.
func writeScores(out []float32, off int, row []float64) {
	for i, v := range row {
		out[off+i] = float32(v)
	}
}

func newScaler(n *Node) (Kernel, error) {
	offset := n.Attrs.Floats("offset")
	scale := n.Attrs.Floats("scale")
	return func(tmp *Scratch, in, out []*Value) error {
		rows, nr, c, err := mlRows(tmp, in[0])
		if err != nil {
			return err
		}
		if (len(offset) != 1 && len(offset) != c && offset != nil) || (len(scale) != 1 && len(scale) != c && scale != nil) {
			return badInput("Scaler of %d features with %d offsets and %d scales", c, len(offset), len(scale))
		}
		if err := out[0].Resize(tensor.FP32, in[0].Tensor.Shape); err != nil {
			return err
		}
		o := out[0].Float32s()
		for r := range nr {
			for j := range c {
				v := rows[r*c+j]
				if offset != nil {
					v -= offset[min(j, len(offset)-1)]
				}
				if scale != nil {
					v *= scale[min(j, len(scale)-1)]
				}
				o[r*c+j] = v
			}
		}
		return nil
	}, nil
}

func newNormalizer(n *Node) (Kernel, error) {
	norm := n.Attrs.String("norm", "MAX")
	if norm != "MAX" && norm != "L1" && norm != "L2" {
		return nil, fmt.Errorf("%w: Normalizer norm %q", ErrAttr, norm)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		rows, nr, c, err := mlRows(tmp, in[0])
		if err != nil {
			return err
		}
		if err := out[0].Resize(tensor.FP32, in[0].Tensor.Shape); err != nil {
			return err
		}
		o := out[0].Float32s()
		for r := range nr {
			row := rows[r*c : r*c+c]
			var d float32
			switch norm {
			case "MAX":
				d = float32(math.Inf(-1))
				for _, v := range row {
					d = max(d, v)
				}
			case "L1":
				for _, v := range row {
					d += float32(math.Abs(float64(v)))
				}
			case "L2":
				for _, v := range row {
					d += v * v
				}
				d = float32(math.Sqrt(float64(d)))
			}
			for j, v := range row {
				if d != 0 {
					v /= d
				}
				o[r*c+j] = v
			}
		}
		return nil
	}, nil
}

func newBinarizer(n *Node) (Kernel, error) {
	thr := float64(n.Attrs.Float("threshold", 0))
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := checkType("Binarizer X", x, mlNumeric...); err != nil {
			return err
		}
		if err := out[0].Resize(x.Tensor.DType, x.Tensor.Shape); err != nil {
			return err
		}
		for i := range x.Len() {
			v := float64At(x.Tensor.Data, i)
			if v > thr {
				setFloat(out[0], i, 1)
			} else if math.IsNaN(v) {
				setFloat(out[0], i, v)
			} else {
				setFloat(out[0], i, 0)
			}
		}
		return nil
	}, nil
}

func newImputer(n *Node) (Kernel, error) {
	fvals := n.Attrs.Floats("imputed_value_floats")
	ivals := n.Attrs.Ints("imputed_value_int64s")
	frep := n.Attrs.Float("replaced_value_float", 0)
	irep := n.Attrs.Int("replaced_value_int64", 0)
	if (fvals == nil) == (ivals == nil) {
		return nil, fmt.Errorf("%w: Imputer needs exactly one of imputed_value_floats and imputed_value_int64s", ErrAttr)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if err := out[0].Resize(x.Tensor.DType, x.Tensor.Shape); err != nil {
			return err
		}
		c := 1
		if len(x.Tensor.Shape) > 0 {
			c = int(x.Tensor.Shape[len(x.Tensor.Shape)-1])
		}
		switch d := x.Tensor.Data.(type) {
		case []float32:
			if fvals == nil || (len(fvals) != 1 && len(fvals) != c) {
				return badInput("Imputer of %v with %d float values", x, len(fvals))
			}
			o := out[0].Float32s()
			nanRep := frep != frep
			for i, v := range d {
				if v == frep || (nanRep && v != v) {
					v = fvals[min(i%max(c, 1), len(fvals)-1)]
				}
				o[i] = v
			}
		case []int64:
			if ivals == nil || (len(ivals) != 1 && len(ivals) != c) {
				return badInput("Imputer of %v with %d int values", x, len(ivals))
			}
			o := out[0].Int64s()
			for i, v := range d {
				if v == irep {
					v = ivals[min(i%max(c, 1), len(ivals)-1)]
				}
				o[i] = v
			}
		default:
			return badInput("Imputer of %v", x)
		}
		return nil
	}, nil
}

func newOneHotEncoder(n *Node) (Kernel, error) {
	ints := n.Attrs.Ints("cats_int64s")
	strs := n.Attrs.Strings("cats_strings")
	zeros := n.Attrs.Int("zeros", 1) != 0
	if (ints == nil) == (strs == nil) {
		return nil, fmt.Errorf("%w: OneHotEncoder needs exactly one of cats_int64s and cats_strings", ErrAttr)
	}
	intIdx := make(map[int64]int, len(ints))
	for i, v := range ints {
		intIdx[v] = i
	}
	strIdx := make(map[string]int, len(strs))
	for i, v := range strs {
		strIdx[v] = i
	}
	k := max(len(ints), len(strs))
	return func(tmp *Scratch, in, out []*Value) error {
		x := in[0]
		if x.Kind != KindTensor {
			return badInput("OneHotEncoder of %v", x)
		}
		sh := x.Tensor.Shape
		shape := tmp.Shape(len(sh) + 1)
		copy(shape, sh)
		shape[len(sh)] = int64(k)
		if err := out[0].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		o := out[0].Float32s()
		clear(o)
		for i := range x.Len() {
			idx, ok := -1, false
			switch d := x.Tensor.Data.(type) {
			case [][]byte:
				idx, ok = strIdx[string(d[i])]
			case []int64, []int32, []float32, []float64:
				idx, ok = intIdx[int64(float64At(d, i))]
			default:
				return badInput("OneHotEncoder of %v", x)
			}
			if !ok {
				if !zeros {
					return badInput("OneHotEncoder: unknown category at element %d", i)
				}
				continue
			}
			o[i*k+idx] = 1
		}
		return nil
	}, nil
}

func newArrayFeatureExtractor(n *Node) (Kernel, error) {
	return func(tmp *Scratch, in, out []*Value) error {
		x, idx := in[0], in[1]
		if x.Kind != KindTensor {
			return badInput("ArrayFeatureExtractor of %v", x)
		}
		if err := checkType("ArrayFeatureExtractor Y", idx, tensor.Int64); err != nil {
			return err
		}
		sh := x.Tensor.Shape
		ids := idx.Int64s()
		var shape []int64
		c := 1
		if len(sh) <= 1 {
			shape = tmp.Shape(2)
			shape[0], shape[1] = 1, int64(len(ids))
			if len(sh) == 1 {
				c = int(sh[0])
			}
		} else {
			shape = tmp.Shape(len(sh))
			copy(shape, sh)
			shape[len(sh)-1] = int64(len(ids))
			c = int(sh[len(sh)-1])
		}
		for _, j := range ids {
			if j < 0 || j >= int64(c) {
				return badInput("ArrayFeatureExtractor index %d out of range [0, %d)", j, c)
			}
		}
		if err := out[0].Resize(x.Tensor.DType, shape); err != nil {
			return err
		}
		rows := x.Len() / max(c, 1)
		if c == 0 {
			rows = 0
		}
		k := len(ids)
		for r := range rows {
			for q, j := range ids {
				copyElems(out[0].Tensor.Data, r*k+q, x.Tensor.Data, r*c+int(j), 1)
			}
		}
		return nil
	}, nil
}

func newFeatureVectorizer(n *Node) (Kernel, error) {
	dims := n.Attrs.Ints("inputdimensions")
	total := 0
	for _, d := range dims {
		if d < 0 {
			return nil, fmt.Errorf("%w: FeatureVectorizer inputdimensions %v", ErrAttr, dims)
		}
		total += int(d)
	}
	return func(tmp *Scratch, in, out []*Value) error {
		if len(in) != len(dims) {
			return badInput("FeatureVectorizer of %d inputs with %d dimensions", len(in), len(dims))
		}
		nr := -1
		for _, x := range in {
			if err := checkType("FeatureVectorizer X", x, mlNumeric...); err != nil {
				return err
			}
			r := 1
			if len(x.Tensor.Shape) > 1 {
				r = int(x.Tensor.Shape[0])
			}
			if nr >= 0 && r != nr {
				return badInput("FeatureVectorizer inputs with %d and %d rows", nr, r)
			}
			nr = r
		}
		shape := tmp.Shape(2)
		shape[0], shape[1] = int64(nr), int64(total)
		if err := out[0].Resize(tensor.FP32, shape); err != nil {
			return err
		}
		o := out[0].Float32s()
		clear(o)
		off := 0
		for k, x := range in {
			c := x.Len() / max(nr, 1)
			d := int(dims[k])
			for r := range nr {
				for j := range min(c, d) {
					o[r*total+off+j] = float32(float64At(x.Tensor.Data, r*c+j))
				}
			}
			off += d
		}
		return nil
	}, nil
}
