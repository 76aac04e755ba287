package gateway

import (
	"sync"
	"time"
)

// budget is a retry budget: every request deposits ratio of a retry, and
// time deposits minPerSec retries per second; a retry spends one. The
// balance is capped so that a long calm cannot pay for a retry storm. It
// is safe for concurrent use. Time comes from the caller.
type budget struct {
	ratio, minPerSec, cap float64

	mu      sync.Mutex
	balance float64
	last    time.Time
}

func newBudget(ratio, minPerSec float64) *budget {
	c := max(10, minPerSec*10)
	return &budget{ratio: ratio, minPerSec: minPerSec, cap: c, balance: c}
}

// request records one live request at now.
func (b *budget) request(now time.Time) {
	b.mu.Lock()
	b.refill(now)
	b.balance = min(b.cap, b.balance+b.ratio)
	b.mu.Unlock()
}

// retry reports whether a retry may go at now, and spends it if so.
func (b *budget) retry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.balance < 1 {
		return false
	}
	b.balance--
	return true
}

func (b *budget) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.balance = min(b.cap, b.balance+now.Sub(b.last).Seconds()*b.minPerSec)
	}
	if now.After(b.last) {
		b.last = now
	}
}
