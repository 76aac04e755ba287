package gateway

import (
	"context"
	"time"

	"github.com/shoal-ml/shoal/internal/balance"
)

// target is the replica chosen for one attempt of a request.
type target struct {
	m       *model
	rev     *revision
	r       *replica
	release func()
}

// done ends the attempt: the replica's slot is freed and handed to a
// queued request if any.
func (t *target) done() {
	t.release()
	if t.rev.waiters.Load() > 0 {
		select {
		case t.rev.wake <- struct{}{}:
		default:
		}
	}
}

// routing is what a request asks of the router.
type routing struct {
	model  string
	pin    string // x-shoal-revision, "" for none
	sticky string // value of the model's sticky header, "" for none
}

// lookup returns the live model named name.
func (g *Gateway) lookup(name string) (*model, error) {
	m := g.routes.Load().models[name]
	if m == nil {
		return nil, ErrNoModel
	}
	return m, nil
}

// revisionFor chooses the revision of m for a request: the pinned one,
// else by weight (at random, or by the sticky key's hash). It returns nil
// when the model has no revision to send to.
func (m *model) revisionFor(rt routing, key uint64) (*revision, error) {
	if rt.pin != "" {
		rev := m.byName[rt.pin]
		if rev == nil {
			return nil, ErrNoRevision
		}
		return rev, nil
	}
	switch {
	case m.total > 0:
		w := int(key % uint64(m.total))
		for i, c := range m.cumWeight {
			if w < c {
				return m.weighted[i], nil
			}
		}
		return m.weighted[len(m.weighted)-1], nil
	case len(m.revs) > 0:
		return m.revs[0], nil
	}
	return nil, nil
}

// pick chooses a replica for one attempt, waiting in the revision's
// queue when every replica is at its limit and in the activator when the
// model has no ready replica. exclude, when not nil, is avoided if
// another replica is available (it failed the previous attempt).
func (g *Gateway) pick(ctx context.Context, rt routing, exclude *replica) (*target, error) {
	return g.pickWait(ctx, rt, exclude, true)
}

// pickNow is pick without waiting: it fails with ErrOverloaded rather
// than queue or activate.
func (g *Gateway) pickNow(rt routing, exclude *replica) (*target, error) {
	return g.pickWait(context.Background(), rt, exclude, false)
}

func (g *Gateway) pickWait(ctx context.Context, rt routing, exclude *replica, wait bool) (*target, error) {
	var key uint64
	sticky := rt.sticky != ""
	if sticky {
		key = balance.StringKey(rt.sticky)
	}
	for {
		m, err := g.lookup(rt.model)
		if err != nil {
			return nil, err
		}
		if !sticky {
			key = rnd()
		}
		rev, err := m.revisionFor(rt, key)
		if err != nil {
			return nil, err
		}
		var avail []*balance.Replica
		if rev != nil {
			avail = *rev.avail.Load()
		}
		if len(avail) == 0 {
			if !wait {
				return nil, ErrOverloaded
			}
			if err := g.activate(ctx, m); err != nil {
				return nil, err
			}
			continue
		}
		var b *balance.Replica
		var release func()
		if sticky {
			b, release = balance.Hash(avail, key>>1)
		} else {
			b, release = m.policy(avail, rnd())
		}
		if b != nil && exclude != nil && b == exclude.b && len(avail) > 1 {
			// A retry: prefer any other replica.
			others := make([]*balance.Replica, 0, len(avail)-1)
			for _, o := range avail {
				if o != b {
					others = append(others, o)
				}
			}
			if b2, rel2 := balance.LeastRequest(others, rnd()); b2 != nil {
				release()
				b, release = b2, rel2
			}
		}
		if b != nil {
			return &target{m: m, rev: rev, r: rev.byB[b], release: release}, nil
		}
		if !wait {
			return nil, ErrOverloaded
		}
		if err := g.queue(ctx, rev); err != nil {
			return nil, err
		}
	}
}

// queue waits for a slot of rev to free up.
func (g *Gateway) queue(ctx context.Context, rev *revision) error {
	if g.cfg.QueueDepth < 0 || int(rev.waiters.Add(1)) > g.cfg.QueueDepth {
		if g.cfg.QueueDepth >= 0 {
			rev.waiters.Add(-1)
		}
		g.metrics.rejected.WithLabelValues(rev.model.name, "queue_full").Inc()
		return ErrOverloaded
	}
	defer rev.waiters.Add(-1)
	t := time.NewTimer(g.cfg.QueueTimeout)
	defer t.Stop()
	select {
	case <-rev.wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		g.metrics.rejected.WithLabelValues(rev.model.name, "queue_timeout").Inc()
		return ErrOverloaded
	}
}

// activate holds the request while m has no ready replica, asking for a
// scale-up; it returns once the model may have one.
func (g *Gateway) activate(ctx context.Context, m *model) error {
	if g.cfg.ActivatorQueue < 0 {
		return ErrScaledToZero
	}
	var scaleUp func(context.Context) error
	if g.cfg.ScaleUp != nil {
		scaleUp = func(ctx context.Context) error { return g.cfg.ScaleUp(ctx, m.name) }
	}
	onErr := func(err error) { g.log.Warn("scale-up failed", "model", m.name, "err", err) }
	// Check again under the activator: the table may have changed since.
	if cur, err := g.lookup(m.name); err == nil && cur != m {
		return nil
	}
	err := m.ctl.act.wait(ctx, g.cfg.ActivatorQueue, g.cfg.ActivatorTimeout, scaleUp, onErr)
	if err == ErrScaledToZero {
		g.metrics.rejected.WithLabelValues(m.name, "activator").Inc()
	}
	return err
}

// result records the outcome of an attempt on t's replica.
func (g *Gateway) result(t *target, ok bool, lat time.Duration, now time.Time) {
	r, rev := t.r, t.rev
	if ok {
		r.observeLatency(lat)
		if r.failures.Load() != 0 {
			r.failures.Store(0)
			rev.mu.Lock()
			rev.outliers.Result(now, r.http, true)
			rev.mu.Unlock()
		}
		return
	}
	r.failures.Add(1)
	rev.mu.Lock()
	ejected := rev.outliers.Result(now, r.http, false)
	rev.mu.Unlock()
	if ejected {
		g.log.Warn("replica ejected: consecutive failures", "model", t.m.name, "revision", rev.name, "replica", r.http)
		g.metrics.ejections.WithLabelValues(t.m.name, rev.name, "failures").Inc()
		rev.refresh(now)
	}
}

// unready marks t's replica not ready until the next probe says
// otherwise (it answered 503: draining or not loaded).
func (g *Gateway) unready(t *target, now time.Time) {
	if g.cfg.ProbeInterval > 0 {
		t.r.ready.Store(false)
		t.rev.refresh(now)
	}
}
