package gateway

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-ml/shoal/internal/balance"
)

// routes is the gateway's live form of one Table. It is immutable once
// built, apart from the atomics and mutex-guarded fields of its parts.
type routes struct {
	table  *Table
	models map[string]*model
}

// model is the live form of one Model.
type model struct {
	name      string
	spec      Model
	revs      []*revision
	byName    map[string]*revision
	weighted  []*revision // revisions with a weight, in table order
	cumWeight []int       // running sums of their weights
	total     int
	mirror    *revision
	mirrorPct float64
	timeout   time.Duration
	policy    balance.Policy
	ctl       *modelCtl
}

// revision is the live form of one Revision.
type revision struct {
	name     string
	header   []string // {name}, the value of the response's HeaderRevision; never modified
	model    *model
	replicas []*replica
	// avail holds the replicas that are ready and not ejected: the only
	// ones policies see. It is rebuilt by refresh.
	avail atomic.Pointer[[]*balance.Replica]
	byB   map[*balance.Replica]*replica

	mu       sync.Mutex // guards outliers
	outliers *balance.Outliers

	// waiters counts requests queued for a free replica; wake hands a
	// freed slot to one of them.
	waiters atomic.Int32
	wake    chan struct{}

	// lat holds recent latencies and hedgeAfter (ns) their hedging
	// percentile, for models that hedge.
	lat        latencyRing
	hedgeAfter atomic.Int64

	okCount prometheus.Counter  // requests answered 200
	latency prometheus.Observer // request duration
}

// replica is one replica of one revision.
type replica struct {
	b        *balance.Replica
	http     string
	grpc     string
	ready    atomic.Bool  // last probe (true until a probe says otherwise)
	failures atomic.Int32 // consecutive failures, to skip the decider when zero
	ewma     atomic.Int64 // recent latency in ns, 0 when unknown
}

// modelCtl is the state of a model that outlives table updates: its
// activator, retry budget and counters.
type modelCtl struct {
	name     string
	act      activator
	budget   *budget
	inflight atomic.Int64
	requests atomic.Uint64
}

// refresh rebuilds rev.avail from the replicas' readiness and ejections
// at now. It reports whether the revision has any available replica.
func (rev *revision) refresh(now time.Time) bool {
	rev.mu.Lock()
	defer rev.mu.Unlock()
	avail := make([]*balance.Replica, 0, len(rev.replicas))
	for _, r := range rev.replicas {
		if r.ready.Load() && !rev.outliers.Ejected(now, r.b.Addr) {
			avail = append(avail, r.b)
		}
	}
	if old := rev.avail.Load(); old == nil || !sameReplicas(*old, avail) {
		rev.avail.Store(&avail)
	}
	return len(avail) > 0
}

func sameReplicas(a, b []*balance.Replica) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// observeLatency folds d into r's moving average (weight 1/8).
func (r *replica) observeLatency(d time.Duration) {
	for {
		old := r.ewma.Load()
		nv := int64(d)
		if old != 0 {
			nv = old + (int64(d)-old)/8
		}
		if r.ewma.CompareAndSwap(old, nv) {
			return
		}
	}
}

// ready reports whether the model has an available replica in a
// revision that takes unpinned traffic (or in any revision when none
// has weight).
func (m *model) hasReady() bool {
	revs := m.weighted
	if len(revs) == 0 {
		revs = m.revs
	}
	for _, rev := range revs {
		if len(*rev.avail.Load()) > 0 {
			return true
		}
	}
	return false
}
