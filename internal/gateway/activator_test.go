package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestActivatorScaleUp sends requests to a model with no replica: they
// wait while the ScaleUp hook starts a real replica and puts it in the
// routing table, then all succeed.
func TestActivatorScaleUp(t *testing.T) {
	var tg *testGateway
	calls := make(chan string, 10)
	scaled := make(chan struct{})
	cfg := Config{ScaleUp: func(ctx context.Context, model string) error {
		calls <- model
		<-scaled // hold the scale-up until every request is queued
		rep := startReplica(t, "1")
		tg.SetTable(t, oneRevision(rep))
		return nil
	}}
	tg = startGateway(t, cfg, &Table{Models: map[string]Model{"iris": {}}})

	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tg.infer(t)
		}()
	}
	waitFor(t, func() bool { return tg.Stats()[0].Waiting == n })
	close(scaled)
	wg.Wait()
	if got := len(calls); got != 1 {
		t.Errorf("ScaleUp called %d times, want 1", got)
	}
	if m := <-calls; m != "iris" {
		t.Errorf("ScaleUp(%q), want iris", m)
	}
	if w := tg.Stats()[0].Waiting; w != 0 {
		t.Errorf("%d requests still waiting", w)
	}
}

// TestActivatorTimeout: with no replica ever, a held request gets 503
// with Retry-After and a JSON error after ActivatorTimeout; past the
// queue bound, at once.
func TestActivatorTimeout(t *testing.T) {
	cfg := Config{
		ActivatorTimeout: 50 * time.Millisecond,
		ActivatorQueue:   1,
		ScaleUp:          func(context.Context, string) error { return errors.New("no capacity") },
	}
	tg := startGateway(t, cfg, &Table{Models: map[string]Model{"iris": {}}})
	code, h, b := tg.post(t, "/v2/models/iris/infer", irisBody)
	var e struct{ Error string }
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || json.Unmarshal(b, &e) != nil || e.Error == "" {
		t.Errorf("scaled to zero = %d %v %s, want 503 with Retry-After and a JSON error", code, h, b)
	}
}

// TestActivatorOrder checks that held requests are released in arrival
// order.
func TestActivatorOrder(t *testing.T) {
	var a activator
	const n = 20
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.wait(context.Background(), n, time.Minute, nil, nil); err != nil {
				t.Error(err)
			}
			order <- i
		}()
		for a.waiting() != i+1 { // queue them one after another
			time.Sleep(time.Millisecond)
		}
	}
	// Release one at a time through the waiter channels, as release does,
	// and check who wakes.
	a.mu.Lock()
	ws := a.waiters
	a.waiters = nil
	a.mu.Unlock()
	for i, ch := range ws {
		close(ch)
		if got := <-order; got != i {
			t.Fatalf("released #%d woke request %d", i, got)
		}
	}
	wg.Wait()
	if err := a.wait(context.Background(), 0, time.Minute, nil, nil); !errors.Is(err, ErrScaledToZero) {
		t.Errorf("wait on a full queue = %v, want ErrScaledToZero", err)
	}
}
