package batch

import (
	"math"
	"time"
)

// latencyDecay is the weight an observation keeps per newer one: the model
// follows the last hundred or so executions.
const latencyDecay = 1 - 1.0/64

// Latency models a backend's execution time as a function of the rows in a
// batch, a + b*rows, fitted by least squares over exponentially decayed
// observations. The zero value knows nothing and estimates 0. It is a
// value with no hidden state and not safe for concurrent mutation.
type Latency struct {
	w, sx, sy, sxx, sxy float64
}

// Observe adds one execution of rows rows that took d.
func (l *Latency) Observe(rows int, d time.Duration) {
	x, y := float64(rows), float64(d)
	l.w = l.w*latencyDecay + 1
	l.sx = l.sx*latencyDecay + x
	l.sy = l.sy*latencyDecay + y
	l.sxx = l.sxx*latencyDecay + x*x
	l.sxy = l.sxy*latencyDecay + x*y
}

// Known reports whether anything was observed.
func (l Latency) Known() bool { return l.w > 0 }

// Estimate returns the expected execution time of a batch of rows rows, 0
// when nothing was observed. With observations at a single batch size it
// assumes the time does not depend on the size: an optimistic guess
// (a pessimistic one would keep batches small and never learn otherwise),
// which the first execution of another size corrects.
func (l Latency) Estimate(rows int) time.Duration {
	if l.w == 0 {
		return 0
	}
	mx, my := l.sx/l.w, l.sy/l.w
	x := float64(rows)
	varx := l.sxx/l.w - mx*mx
	var y float64
	if varx < 0.25 || mx <= 0 {
		y = my
	} else {
		b := max(0, (l.sxy/l.w-mx*my)/varx)
		a := my - b*mx
		if a < 0 {
			a, b = 0, my/mx
		}
		y = a + b*x
	}
	return time.Duration(math.Round(y))
}
