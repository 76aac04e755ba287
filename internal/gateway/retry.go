package gateway

import (
	"context"
	"math/rand/v2"
	"time"
)

// Reconnect runs attempt (one connection to a discovery source, say)
// again and again until ctx is done, and returns nil then. After each
// attempt it gives a non-nil error to onError (when set) and waits: minB
// at first, doubling after each attempt up to maxB, back to minB after an
// attempt that reported progress, with full jitter over the upper half
// ([wait/2, wait]). Zero minB and maxB mean 100ms and 5s. ControlSource
// and the Docker discovery source reconnect with it.
func Reconnect(ctx context.Context, minB, maxB time.Duration, attempt func(context.Context) (progress bool, err error), onError func(error)) error {
	if minB <= 0 {
		minB = 100 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 5 * time.Second
	}
	maxB = max(maxB, minB)
	backoff := minB
	for {
		progress, err := attempt(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progress {
			backoff = minB
		}
		if err != nil && onError != nil {
			onError(err)
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxB)
	}
}
