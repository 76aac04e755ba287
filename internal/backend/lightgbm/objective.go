package lightgbm

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// link is how an objective maps raw scores to predictions (LightGBM's
// ObjectiveFunction::ConvertOutput).
type link uint8

const (
	identity    link = iota // regression, ranking, custom: the raw score
	sqrtLink                // regression with reg_sqrt: sign(x) * x^2
	sigmoidLink             // binary, multiclassova, cross_entropy: 1 / (1 + exp(-s*x))
	softmaxLink             // multiclass: softmax over the classes
	expLink                 // poisson, gamma, tweedie
	log1pExp                // cross_entropy_lambda: log(1 + exp(x))
)

// objective is a parsed objective= line.
type objective struct {
	name       string
	link       link
	sigmoid    float64 // the sigmoid: parameter, 1 by default
	classifier bool
	numClass   int // num_class: parameter of multiclass and multiclassova
}

// parseObjective reads the objective line LightGBM writes, such as
// "binary sigmoid:1", "multiclass num_class:3" or "regression sqrt". An
// empty line (a custom objective) predicts raw scores.
func parseObjective(s string) (objective, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return objective{name: "custom"}, nil
	}
	o := objective{name: fields[0], sigmoid: 1}
	sqrt := false
	for _, f := range fields[1:] {
		key, val, _ := strings.Cut(f, ":")
		var err error
		switch key {
		case "sqrt":
			sqrt = true
		case "sigmoid":
			o.sigmoid, err = strconv.ParseFloat(val, 64)
			if err == nil && !(o.sigmoid > 0) {
				err = fmt.Errorf("not positive")
			}
		case "num_class":
			o.numClass, err = strconv.Atoi(val)
			if err == nil && (o.numClass < 1 || o.numClass > 1<<20) {
				err = fmt.Errorf("out of range")
			}
		}
		if err != nil {
			return objective{}, fmt.Errorf("%w: objective %q: parameter %s: %v", ErrFormat, s, f, err)
		}
	}
	switch o.name {
	case "regression", "regression_l1", "huber", "fair", "quantile", "mape":
		if sqrt {
			o.link = sqrtLink
		}
	case "lambdarank", "rank_xendcg", "custom":
	case "binary":
		o.link, o.classifier, o.numClass = sigmoidLink, true, 2
	case "multiclass":
		o.link, o.classifier = softmaxLink, true
	case "multiclassova":
		o.link, o.classifier = sigmoidLink, true
	case "cross_entropy":
		o.link = sigmoidLink
	case "cross_entropy_lambda":
		o.link = log1pExp
	case "poisson", "gamma", "tweedie":
		o.link = expLink
	default:
		return objective{}, fmt.Errorf("%w: objective %q", ErrUnsupported, o.name)
	}
	if (o.name == "multiclass" || o.name == "multiclassova") && o.numClass < 2 {
		return objective{}, fmt.Errorf("%w: objective %q without num_class >= 2", ErrFormat, s)
	}
	return o, nil
}

// convert applies the link to the raw scores of one row in place.
func (o *objective) convert(raw []float64) {
	switch o.link {
	case sqrtLink:
		for i, x := range raw {
			raw[i] = math.Copysign(x*x, x)
		}
	case sigmoidLink:
		for i, x := range raw {
			raw[i] = 1 / (1 + math.Exp(-o.sigmoid*x))
		}
	case softmaxLink:
		hi := math.Inf(-1)
		for _, x := range raw {
			hi = max(hi, x)
		}
		var sum float64
		for i, x := range raw {
			raw[i] = math.Exp(x - hi)
			sum += raw[i]
		}
		for i := range raw {
			raw[i] /= sum
		}
	case expLink:
		for i, x := range raw {
			raw[i] = math.Exp(x)
		}
	case log1pExp:
		for i, x := range raw {
			raw[i] = math.Log1p(math.Exp(x))
		}
	}
}
