package gateway

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Errors of the request path; the REST and gRPC adapters map each to a
// status code once.
var (
	// ErrNoModel: the table has no such model (404, NOT_FOUND).
	ErrNoModel = errors.New("gateway: no such model")
	// ErrNoRevision: the pinned revision does not exist (404, NOT_FOUND).
	ErrNoRevision = errors.New("gateway: no such revision")
	// ErrOverloaded: every replica is at its concurrency limit and the
	// queue is full or the wait in it timed out (503 with Retry-After,
	// UNAVAILABLE).
	ErrOverloaded = errors.New("gateway: overloaded")
	// ErrScaledToZero: the model had no ready replica and none became
	// ready before the activator's deadline, or its queue was full (503
	// with Retry-After, UNAVAILABLE).
	ErrScaledToZero = errors.New("gateway: no ready replica")
	// ErrUnauthenticated: no valid credentials (401, UNAUTHENTICATED).
	ErrUnauthenticated = errors.New("gateway: missing or invalid credentials")
	// ErrForbidden: the key may not use this model (403,
	// PERMISSION_DENIED).
	ErrForbidden = errors.New("gateway: key not allowed for this model")
	// ErrRateLimited: the key's rate limit is exhausted (429 with
	// Retry-After, RESOURCE_EXHAUSTED).
	ErrRateLimited = errors.New("gateway: rate limit exceeded")
	// ErrUpstream: the replica could not be reached and no retry was
	// possible (502, UNAVAILABLE).
	ErrUpstream = errors.New("gateway: replica unreachable")
)

// activator holds requests for a model that has no ready replica, in
// arrival order, while a scale-up is asked for.
type activator struct {
	mu      sync.Mutex
	waiters []chan struct{}
	scaling bool
}

// wait queues the caller until release, ctx or the timeout; it reports
// ErrScaledToZero when the queue is full or the timeout passes. scaleUp,
// when not nil, is started unless a previous call is still running.
func (a *activator) wait(ctx context.Context, limit int, timeout time.Duration, scaleUp func(context.Context) error, onErr func(error)) error {
	a.mu.Lock()
	if len(a.waiters) >= limit {
		a.mu.Unlock()
		return ErrScaledToZero
	}
	ch := make(chan struct{})
	a.waiters = append(a.waiters, ch)
	if scaleUp != nil && !a.scaling {
		a.scaling = true
		go func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			defer cancel()
			if err := scaleUp(sctx); err != nil && onErr != nil {
				onErr(err)
			}
			a.mu.Lock()
			a.scaling = false
			a.mu.Unlock()
		}()
	}
	a.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		a.remove(ch)
		return ctx.Err()
	case <-t.C:
		a.remove(ch)
		return ErrScaledToZero
	}
}

func (a *activator) remove(ch chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, c := range a.waiters {
		if c == ch {
			a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
			return
		}
	}
}

// release lets every waiting request go, first come first.
func (a *activator) release() {
	a.mu.Lock()
	ws := a.waiters
	a.waiters = nil
	a.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// waiting reports how many requests wait.
func (a *activator) waiting() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiters)
}
