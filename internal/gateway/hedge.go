package gateway

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"time"
)

// latencyRing keeps the last few hundred latencies of a revision, written
// without locks, for the hedging percentile.
type latencyRing struct {
	next atomic.Uint64
	ns   [256]atomic.Int64
}

func (l *latencyRing) add(d time.Duration) {
	i := l.next.Add(1) - 1
	l.ns[i%uint64(len(l.ns))].Store(int64(d))
}

// percentile returns the q-th percentile of the recorded latencies, or 0
// with fewer than 32 of them.
func (l *latencyRing) percentile(q float64) time.Duration {
	n := min(l.next.Load(), uint64(len(l.ns)))
	if n < 32 {
		return 0
	}
	vals := make([]int64, n)
	for i := range vals {
		vals[i] = l.ns[i].Load()
	}
	slices.Sort(vals)
	return time.Duration(vals[min(int(q/100*float64(n)), int(n)-1)])
}

// hedgeDelay returns how long to wait before hedging a request to rev,
// 0 for never.
func (m *model) hedgeDelay(rev *revision) time.Duration {
	h := m.spec.Hedge
	if h == nil {
		return 0
	}
	if h.After > 0 {
		return time.Duration(h.After)
	}
	return time.Duration(rev.hedgeAfter.Load())
}

// outcome is the end of one attempt of a hedged request.
type outcome struct {
	resp   *http.Response
	err    error
	t      *target
	start  time.Time
	cancel context.CancelFunc
	idx    int // which attempt: 0 first, 1 hedge
}

// hedged sends first's request and, if no answer came within delay, a
// copy to another replica (when one is free at once and the retry budget
// allows). It returns the first good answer (not an error, not 503), or
// the last bad one when both failed, with the context cancel the caller
// must call once the body is read. The losing attempt is cancelled and
// cleaned up here.
func (g *Gateway) hedged(ctx context.Context, rt routing, first *target, mk func(context.Context, *target) *http.Request, delay time.Duration, ctl *modelCtl) outcome {
	results := make(chan outcome, 2)
	var cancels []context.CancelFunc
	launch := func(t *target) {
		actx, cancel := context.WithCancel(ctx)
		idx := len(cancels)
		cancels = append(cancels, cancel)
		start := time.Now()
		go func() {
			resp, err := g.cfg.Transport.RoundTrip(mk(actx, t))
			results <- outcome{resp: resp, err: err, t: t, start: start, cancel: cancel, idx: idx}
		}()
	}
	launch(first)
	pending := 1
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			if pending != 1 || len(cancels) != 1 || !ctl.budget.retry(time.Now()) {
				continue
			}
			t2, err := g.pickNow(rt, first.r)
			if err != nil {
				continue
			}
			if t2.r == first.r {
				t2.done()
				continue
			}
			g.metrics.hedges.WithLabelValues(ctl.name).Inc()
			launch(t2)
			pending++
		case o := <-results:
			pending--
			good := o.err == nil && o.resp.StatusCode != http.StatusServiceUnavailable
			if good || pending == 0 {
				if pending > 0 {
					cancels[1-o.idx]() // the loser; the winner's body is still to read
					go g.discard(results)
				}
				return o
			}
			// This attempt failed while the other runs: drop it.
			g.result(o.t, false, 0, time.Now())
			if o.resp != nil {
				io.Copy(io.Discard, io.LimitReader(o.resp.Body, 64<<10))
				o.resp.Body.Close()
			}
			o.cancel()
			o.t.done()
		}
	}
}

// discard waits for the losing attempt of a hedged request, cancelling
// it, and releases its replica.
func (g *Gateway) discard(results <-chan outcome) {
	o := <-results
	o.cancel()
	if o.resp != nil {
		o.resp.Body.Close()
	}
	o.t.done()
}
