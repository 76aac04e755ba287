package gateway

import (
	"testing"
	"time"
)

// TestRetryBudgetAtCap checks the lock-free path of a full budget: requests
// at the cap add nothing, a retry reopens deposits, and deposits fill the
// budget back up to exactly the cap.
func TestRetryBudgetAtCap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBudget(0.2, 1) // cap: 10 retries
	b.last = t0
	drain := func(at time.Time) int {
		n := 0
		for b.retry(at) {
			n++
		}
		return n
	}
	for range 100 {
		b.request(t0)
	}
	if !b.full.Load() {
		t.Fatalf("a budget at its cap is not marked full")
	}
	if !b.retry(t0) || b.full.Load() {
		t.Fatalf("a retry from a full budget: want it allowed and the budget no longer full")
	}
	for range 4 {
		b.request(t0)
	}
	if b.full.Load() {
		t.Errorf("9.8 of 10 retries marked full")
	}
	b.request(t0)
	if !b.full.Load() {
		t.Errorf("back at 10 of 10 retries, not marked full")
	}
	if n := drain(t0); n != 10 {
		t.Errorf("after refilling to the cap: %d retries, want 10", n)
	}
	// An hour of requests at the cap, then a retry storm: still the cap.
	for range 10 {
		b.request(t0.Add(time.Hour))
	}
	if n := drain(t0.Add(2 * time.Hour)); n != 10 {
		t.Errorf("after a long calm: %d retries, want the cap of 10", n)
	}
}

// BenchmarkBudgetRequest is the retry budget's cost per proxied request,
// from all cores at once, in the usual state (full: no retry lately).
func BenchmarkBudgetRequest(b *testing.B) {
	bu := newBudget(0.2, 10)
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bu.request(now)
		}
	})
}
