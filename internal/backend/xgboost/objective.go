package xgboost

import (
	"fmt"
	"math"
)

// link is how an objective maps margins to what Booster.predict returns.
type link uint8

const (
	identity    link = iota // regression and ranking: the margin itself
	logistic                // sigmoid of the margin
	logitRaw                // a binary classifier predicting the margin
	exponential             // exp of the margin (Poisson, gamma, Tweedie, Cox)
	softprob                // softmax over the classes
	softmax                 // the index of the largest margin
)

// objective describes one learning objective at prediction time.
type objective struct {
	link link
	// classifier is true for the binary:* and multi:* objectives.
	classifier bool
	// multi is true for multi:*, which have num_class output groups.
	multi bool
}

var objectives = map[string]objective{
	"reg:squarederror":     {link: identity},
	"reg:linear":           {link: identity}, // the old name of reg:squarederror
	"reg:squaredlogerror":  {link: identity},
	"reg:pseudohubererror": {link: identity},
	"reg:absoluteerror":    {link: identity},
	"reg:logistic":         {link: logistic},
	"binary:logistic":      {link: logistic, classifier: true},
	"binary:logitraw":      {link: logitRaw, classifier: true},
	"count:poisson":        {link: exponential},
	"reg:gamma":            {link: exponential},
	"reg:tweedie":          {link: exponential},
	"survival:cox":         {link: exponential},
	"multi:softprob":       {link: softprob, classifier: true, multi: true},
	"multi:softmax":        {link: softmax, classifier: true, multi: true},
	"rank:pairwise":        {link: identity},
	"rank:ndcg":            {link: identity},
	"rank:map":             {link: identity},
}

// baseMargin returns the margin the predictions start from: base_score,
// which XGBoost 1.7 stores in response space, through the inverse link
// (the objective's ProbToMargin), in float32 as XGBoost computes it.
// binary:logitraw is the exception: XGBoost 1.7 uses its base_score as the
// margin unchanged.
func (o objective) baseMargin(base float32) (float32, error) {
	switch o.link {
	case logistic:
		if !(base > 0 && base < 1) {
			return 0, fmt.Errorf("%w: base_score %v outside (0, 1) for a logistic objective", ErrFormat, base)
		}
		return float32(-math.Log(float64(1/base - 1))), nil
	case exponential:
		if !(base > 0) {
			return 0, fmt.Errorf("%w: base_score %v not positive for a log-link objective", ErrFormat, base)
		}
		return float32(math.Log(float64(base))), nil
	}
	return base, nil
}

// sigmoid is XGBoost's common::Sigmoid.
func sigmoid(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

// softmaxRow replaces the margins of one row by their softmax, as
// XGBoost's common::Softmax does (max subtracted, sum in double).
func softmaxRow(row []float32) {
	hi := float32(math.Inf(-1))
	for _, v := range row {
		hi = max(hi, v)
	}
	var sum float64
	for i, v := range row {
		e := float32(math.Exp(float64(v - hi)))
		row[i] = e
		sum += float64(e)
	}
	for i := range row {
		row[i] /= float32(sum)
	}
}
