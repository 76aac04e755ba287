package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// budget is a retry budget: every request deposits ratio of a retry, and
// time deposits minPerSec retries per second; a retry spends one. The
// balance is capped so that a long calm cannot pay for a retry storm. It
// counts in thousandths of a retry. It is safe for concurrent use; time
// comes from the caller.
//
// While the balance is at its cap (no retry lately: the usual case), a
// request deposits nothing and takes no lock: full says so. A request
// racing with a retry may then skip its deposit, which only makes the
// budget stricter by one request's share.
type budget struct {
	perRequest, perSecond, cap int64

	full    atomic.Bool // balance == cap
	mu      sync.Mutex
	balance int64
	last    time.Time
}

func newBudget(ratio, minPerSec float64) *budget {
	c := int64(max(10, minPerSec*10) * 1000)
	b := &budget{perRequest: int64(ratio * 1000), perSecond: int64(minPerSec * 1000), cap: c, balance: c}
	b.full.Store(true)
	return b
}

// request records one live request at now.
func (b *budget) request(now time.Time) {
	if b.full.Load() {
		// At the cap a deposit changes nothing, and neither does the time
		// since last: refill only ever tops the balance up to the cap.
		return
	}
	b.mu.Lock()
	b.refill(now)
	b.balance = min(b.cap, b.balance+b.perRequest)
	b.full.Store(b.balance == b.cap)
	b.mu.Unlock()
}

// retry reports whether a retry may go at now, and spends it if so.
func (b *budget) retry(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	if b.balance < 1000 {
		return false
	}
	b.balance -= 1000
	b.full.Store(false)
	return true
}

func (b *budget) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		d := min(now.Sub(b.last), time.Hour) // no overflow; the cap is reached long before
		b.balance = min(b.cap, b.balance+int64(d)*b.perSecond/int64(time.Second))
	}
	if now.After(b.last) {
		b.last = now
	}
}
