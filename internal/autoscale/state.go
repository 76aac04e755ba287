package autoscale

import (
	"math"
	"time"
)

// Sample is one observation of a revision's load, taken by the caller
// every tick (one or two seconds), zero load included.
type Sample struct {
	// Time is when the load was observed.
	Time time.Time
	// Load is the revision's load in the Spec's Metric: the requests in
	// flight (concurrency), or the requests per second since the previous
	// sample. It includes requests held by the activator.
	Load float64
	// Ready is the number of ready replicas of the revision.
	Ready int
}

// bucket holds the samples of one second.
type bucket struct {
	sec int64 // Unix second the bucket covers; 0 when empty
	sum float64
	n   int
}

// State is the memory of the autoscaler for one revision: the load history
// over the stable window in one-second buckets (so its size is bounded by
// the window, not by the sampling rate), the panic mode, and the last
// traffic seen. The zero value is an empty history. A State is not safe for
// concurrent use; keep one per revision, owned by the caller's loop.
type State struct {
	ring       []bucket
	first      time.Time // first sample
	lastActive time.Time // last sample with load
	ready      int       // ready replicas in the latest sample
	latest     time.Time // latest sample
	panicSince time.Time // zero when not panicking
	panicLast  time.Time // last decision over the panic threshold
	maxPanic   int       // most replicas decided in this panic
}

// Record adds a sample to the history. Samples older than the stable
// window are forgotten; a sample older than the latest one is accepted
// into its bucket but does not change the ready count.
func (st *State) Record(s Sample) {
	if st.ring == nil {
		st.resize(DefaultStableWindow)
	}
	sec := s.Time.Unix()
	b := &st.ring[slot(sec, len(st.ring))]
	if b.sec != sec {
		*b = bucket{sec: sec}
	}
	b.sum += s.Load
	b.n++
	if st.first.IsZero() || s.Time.Before(st.first) {
		st.first = s.Time
	}
	if s.Load > 0 && s.Time.After(st.lastActive) {
		st.lastActive = s.Time
	}
	if !s.Time.Before(st.latest) {
		st.latest = s.Time
		st.ready = s.Ready
	}
}

// slot returns the index of second sec in a ring of n buckets.
func slot(sec int64, n int) int {
	return int((sec%int64(n) + int64(n)) % int64(n))
}

// resize makes the ring hold window (whole seconds), keeping the buckets
// that still fit.
func (st *State) resize(window time.Duration) {
	n := int(window / time.Second)
	if n < 1 {
		n = 1
	}
	if len(st.ring) == n {
		return
	}
	old := st.ring
	st.ring = make([]bucket, n)
	for _, b := range old {
		if b.n == 0 {
			continue
		}
		nb := &st.ring[slot(b.sec, n)]
		if b.sec > nb.sec {
			*nb = b
		}
	}
}

// window calls f with the age in seconds (0 for the current second) and
// the average load of every bucket with samples in the window ending at
// now.
func (st *State) window(now time.Time, w time.Duration, f func(age int64, load float64)) {
	nowSec := now.Unix()
	secs := int64(w / time.Second)
	for _, b := range st.ring {
		if b.n == 0 {
			continue
		}
		age := nowSec - b.sec
		if age < 0 || age >= secs {
			continue
		}
		f(age, b.sum/float64(b.n))
	}
}

// average returns the mean of the bucket averages in the window and how
// many buckets had samples. Seconds without samples are unknown, not idle:
// the caller records zero load explicitly.
func (st *State) average(now time.Time, w time.Duration) (avg float64, n int) {
	var sum float64
	st.window(now, w, func(_ int64, load float64) {
		sum += load
		n++
	})
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n
}

// trend fits load = a + slope*t by least squares over the buckets of the
// window, t in seconds relative to now, and returns the slope (load per
// second), the fitted load now (a) and the coefficient of determination r2
// (0 when the load is flat or there are fewer than three buckets).
func (st *State) trend(now time.Time, w time.Duration) (slope, atNow, r2 float64) {
	var n, sx, sy, sxx, sxy, syy float64
	st.window(now, w, func(age int64, y float64) {
		x := -float64(age)
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
		syy += y * y
	})
	if n < 3 {
		return 0, 0, 0
	}
	vx := n*sxx - sx*sx
	vy := n*syy - sy*sy
	if vx == 0 || vy <= 0 {
		return 0, sy / n, 0
	}
	cov := n*sxy - sx*sy
	slope = cov / vx
	atNow = (sy - slope*sx) / n
	r2 = cov * cov / (vx * vy)
	return slope, atNow, math.Min(r2, 1)
}
