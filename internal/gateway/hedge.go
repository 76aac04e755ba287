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

// attempt is the end of one attempt of a hedged request: the answer
// (or error) of t's replica to a send begun at start. cancel cancels the
// attempt's context.
type attempt[A any] struct {
	resp   A
	err    error
	t      *target
	start  time.Time
	cancel context.CancelFunc
	idx    int // 0: the first attempt, 1: the copy
}

// hedge is the engine of a hedged request, REST and gRPC alike. The
// first attempt goes to one replica; if no answer came within the
// delay, and allow and pick say yes, a copy goes to a second replica;
// the first good answer wins and the other attempt is cancelled. A is
// the answer of one attempt.
//
// Invariants of run:
//   - at most two attempts, each on its own goroutine with its own
//     context below the request's; the results channel holds both, so
//     an attempt's goroutine never blocks: it exits once send returns;
//   - send returns soon after its context is cancelled, and run cancels
//     every attempt it does not return, so no goroutine outlives the
//     slower attempt's send;
//   - every answer but the returned one goes to discard once, and every
//     target is ended (done) once: by run for all but the returned
//     attempt's target, by the caller for that one, as the caller calls
//     the returned attempt's cancel.
type hedge[A any] struct {
	// send makes one attempt to t's replica. It runs on its own
	// goroutine and must return soon after ctx is cancelled.
	send func(ctx context.Context, t *target) (A, error)
	// good reports whether an attempt's result ends the request. A bad
	// one ends it only when no other attempt runs.
	good func(A, error) bool
	// discard frees what an answer that does not win holds (a response
	// body), after a failed attempt or after a losing one's context was
	// cancelled. Nil means nothing to free.
	discard func(A)
	// allow is asked once the delay passed without an answer: whether a
	// copy may go (it spends the retry budget when it says yes).
	allow func() bool
	// pick returns the target for the copy, another replica free at
	// once, or nil for none.
	pick func() *target
	// failed records a bad result while the other attempt still runs:
	// the replica's failure. Nil means nothing to record.
	failed func(t *target)
}

// run sends to first and, as h says, a copy after delay. It returns the
// first good attempt, or the last bad one when both failed; the caller
// must end its target and call its cancel once done with its answer.
func (h *hedge[A]) run(ctx context.Context, first *target, delay time.Duration) attempt[A] {
	results := make(chan attempt[A], 2)
	var cancels [2]context.CancelFunc
	started := 0
	launch := func(t *target) {
		actx, cancel := context.WithCancel(ctx)
		idx := started
		cancels[idx] = cancel
		started++
		start := time.Now()
		go func() {
			resp, err := h.send(actx, t)
			results <- attempt[A]{resp: resp, err: err, t: t, start: start, cancel: cancel, idx: idx}
		}()
	}
	launch(first)
	pending := 1
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		select {
		case <-timer.C: // once, while the first attempt runs
			if pending != 1 || started != 1 || !h.allow() {
				continue
			}
			if t2 := h.pick(); t2 != nil {
				launch(t2)
				pending++
			}
		case a := <-results:
			pending--
			if h.good(a.resp, a.err) || pending == 0 {
				if pending > 0 {
					cancels[1-a.idx]() // the loser
					go func() { h.release(<-results) }()
				}
				return a
			}
			// This attempt failed while the other runs: drop it.
			if h.failed != nil {
				h.failed(a.t)
			}
			h.release(a)
		}
	}
}

// release frees an attempt that run does not return.
func (h *hedge[A]) release(a attempt[A]) {
	if h.discard != nil {
		h.discard(a.resp)
	}
	a.cancel()
	a.t.done()
}

// gatewayHedge returns a hedge whose copy for a request of ctl routed by
// rt spends a retry of ctl's budget and goes to a replica free at once,
// not first's, for which usable (nil: any) holds; each copy counts in
// the hedges metric and a failed attempt against its replica. The
// caller sets send, good and discard.
func gatewayHedge[A any](g *Gateway, rt routing, first *target, ctl *modelCtl, usable func(*target) bool) hedge[A] {
	return hedge[A]{
		allow: func() bool { return ctl.budget.retry(time.Now()) },
		pick: func() *target {
			t, err := g.pickNow(rt, first.r)
			if err != nil {
				return nil
			}
			if t.r == first.r || usable != nil && !usable(t) {
				t.done()
				return nil
			}
			g.metrics.hedges.WithLabelValues(ctl.name).Inc()
			return t
		},
		failed: func(t *target) { g.result(t, false, 0, time.Now()) },
	}
}

// outcome is the end of one attempt of a hedged REST request.
type outcome = attempt[*http.Response]

// hedged sends first's request and, if no answer came within delay, a
// copy to another replica (when one is free at once and the retry budget
// allows). It returns the first good answer (not an error, not 503), or
// the last bad one when both failed, with the context cancel the caller
// must call once the body is read. The losing attempt is cancelled and
// cleaned up here.
func (g *Gateway) hedged(ctx context.Context, rt routing, first *target, send func(context.Context, *target) (*http.Response, error), delay time.Duration, ctl *modelCtl) outcome {
	h := gatewayHedge[*http.Response](g, rt, first, ctl, nil)
	h.send = send
	h.good = func(resp *http.Response, err error) bool {
		return err == nil && resp.StatusCode != http.StatusServiceUnavailable
	}
	// Reading the rest of a small answer keeps its connection; once the
	// attempt is cancelled the read ends at once.
	h.discard = func(resp *http.Response) {
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
	}
	return h.run(ctx, first, delay)
}
