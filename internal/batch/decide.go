package batch

import (
	"slices"
	"time"
)

// Policy holds the batching limits Decide and Admit apply. Its zero value
// is not usable: MaxBatchSize must be at least 1.
type Policy struct {
	// MaxBatchSize is the most rows one execution gets. A single request
	// with more rows runs alone. At least 1.
	MaxBatchSize int
	// MaxQueueDelay is the longest a request waits for others to join its
	// batch while an execution slot is free. Zero means no waiting: a free
	// slot takes whatever is queued.
	MaxQueueDelay time.Duration
	// PreferredBatchSizes, when set, are row counts to favour: a batch
	// that reaches the largest one is dispatched at once, and a batch
	// dispatched for another reason is cut at the longest prefix of
	// requests whose rows add up to one of them, if there is one.
	PreferredBatchSizes []int
	// MaxQueueSize bounds the rows waiting in the queue. Zero means
	// 4 * MaxBatchSize * Executions.
	MaxQueueSize int
	// Executions is how many batches may run at once. Zero means 1.
	Executions int
	// WaitForArriving, when set, makes a batch that is not full wait (up
	// to MaxQueueDelay) only while State.Arriving is positive: with no
	// request on its way, waiting cannot grow the batch, so it runs at
	// once. False waits MaxQueueDelay whatever comes.
	WaitForArriving bool
}

func (p *Policy) executions() int { return max(p.Executions, 1) }

func (p *Policy) maxQueueSize() int {
	if p.MaxQueueSize > 0 {
		return p.MaxQueueSize
	}
	return 4 * p.MaxBatchSize * p.executions()
}

// Item is a queued request (or one part of a split request) as the policy
// sees it.
type Item struct {
	// Rows is the item's size on dimension 0.
	Rows int
	// Priority orders the queue: 1 is served first, then 2, and so on.
	Priority int
	// Arrival is when the item was queued.
	Arrival time.Time
	// Deadline is when its answer is due; zero means none.
	Deadline time.Time
}

// before reports whether a is served before b: by priority, then arrival.
func (a *Item) before(b *Item) bool {
	if a.Priority != b.Priority {
		return a.Priority < b.Priority
	}
	return a.Arrival.Before(b.Arrival)
}

// State is what the policy decides on.
type State struct {
	// Queue holds the waiting items in service order (by Priority, then
	// Arrival): Insert keeps it so.
	Queue []Item
	// Running holds the estimated end of each executing batch.
	Running []time.Time
	// Latency is the backend's latency model.
	Latency Latency
	// Arriving is how many requests are on their way to the queue (the
	// server has begun to read them); see Policy.WaitForArriving.
	Arriving int
}

// Insert returns the position at which it goes in the service order of
// queue (after every item it does not come before).
func Insert(queue []Item, it Item) int {
	i, _ := slices.BinarySearchFunc(queue, it, func(q, it Item) int {
		if it.before(&q) {
			return 1
		}
		return -1
	})
	return i
}

// Decision is what Decide returns.
type Decision struct {
	// Batch is how many items, from the head of the queue (after the
	// Expire ones are removed), to run now as one batch; 0 means none.
	Batch int
	// Expire lists the indices in the queue (ascending) of items that
	// cannot meet their deadline any more: reject them.
	Expire []int
	// Wake is when to decide again if nothing else changes (an arrival,
	// a cancellation, a batch ending); zero means only then.
	Wake time.Time
}

// Decide says, at now, which items to reject and whether to dispatch a
// batch. Call it again after acting on a decision that dispatched a batch:
// another slot may be free.
func Decide(p *Policy, s *State, now time.Time) Decision {
	var d Decision
	queue := s.Queue
	if s.Latency.Known() {
		kept := make([]Item, 0, len(queue))
		for i, it := range queue {
			if !it.Deadline.IsZero() && !now.Add(s.Latency.Estimate(it.Rows)).Before(it.Deadline) {
				d.Expire = append(d.Expire, i)
				continue
			}
			kept = append(kept, it)
		}
		queue = kept
	}
	if len(queue) == 0 {
		return d
	}
	full := s.Latency.Estimate(p.MaxBatchSize)
	if len(s.Running) >= p.executions() {
		d.Wake = expiry(s, queue)
		return d
	}
	// The head batch: items in order while they fit.
	n, rows := 0, 0
	for n < len(queue) && (n == 0 || rows+queue[n].Rows <= p.MaxBatchSize) {
		rows += queue[n].Rows
		n++
	}
	oldest := queue[0].Arrival
	for _, it := range queue {
		if it.Arrival.Before(oldest) {
			oldest = it.Arrival
		}
	}
	due := oldest.Add(p.MaxQueueDelay)
	for _, it := range queue[:n] {
		if !it.Deadline.IsZero() {
			// The latest start at which, even if the batch fills up,
			// the item still finishes in time.
			due = earliest(due, it.Deadline.Add(-full-1))
		}
	}
	if p.WaitForArriving && s.Arriving <= 0 {
		due = now // nothing is coming that could join the batch
	}
	dispatch := n < len(queue) || rows >= p.MaxBatchSize || !now.Before(due)
	if len(p.PreferredBatchSizes) > 0 && rows >= slices.Max(p.PreferredBatchSizes) {
		dispatch = true
	}
	if !dispatch {
		d.Wake = earliest(expiry(s, queue), due)
		return d
	}
	d.Batch = preferredCut(p.PreferredBatchSizes, queue[:n])
	d.Wake = expiry(s, queue[d.Batch:])
	return d
}

// expiry returns when the first of queue would have to be expired.
func expiry(s *State, queue []Item) time.Time {
	var t time.Time
	if !s.Latency.Known() {
		return t
	}
	for _, it := range queue {
		if !it.Deadline.IsZero() {
			t = earliest(t, it.Deadline.Add(-s.Latency.Estimate(it.Rows)))
		}
	}
	return t
}

// preferredCut returns the longest prefix of batch whose rows add up to a
// preferred size, or the whole batch when none does.
func preferredCut(preferred []int, batch []Item) int {
	rows := 0
	cut := 0
	for i, it := range batch {
		rows += it.Rows
		if slices.Contains(preferred, rows) {
			cut = i + 1
		}
	}
	if cut == 0 {
		return len(batch)
	}
	return cut
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// Reason says why Admit rejected items; the zero Reason admits them.
type Reason int

// Rejection reasons.
const (
	Admitted   Reason = iota
	QueueFull         // the queue holds MaxQueueSize rows already
	QueueDelay        // the items would start later than MaxQueueDelay from now
	Deadline          // the items would finish after their deadline
)

func (r Reason) String() string {
	switch r {
	case QueueFull:
		return "queue_full"
	case QueueDelay:
		return "queue_delay"
	case Deadline:
		return "deadline"
	}
	return "admitted"
}

// Admit says whether items (the parts of one request, all arriving now)
// may join the queue. It predicts the schedule by dispatching the queue,
// in service order with items inserted, to each slot as soon as it is free,
// batches as large as MaxBatchSize, with the latency model's durations. It
// rejects with QueueFull when the queue would exceed MaxQueueSize rows,
// with QueueDelay when its first part would start neither in the next round of
// executions (a batch per slot) nor within MaxQueueDelay from now (with no
// latency observed yet, only the next round is admitted), and
// with Deadline when a part would finish after its deadline. retry is the
// predicted time until the queue has drained, a hint for the client.
func Admit(p *Policy, s *State, items []Item, now time.Time) (r Reason, retry time.Duration) {
	queue := slices.Clone(s.Queue)
	queued := 0
	for _, it := range queue {
		queued += it.Rows
	}
	mine := make([]bool, 0, len(queue)+len(items))
	for range queue {
		mine = append(mine, false)
	}
	for _, it := range items {
		queued += it.Rows
		i := Insert(queue, it)
		queue = slices.Insert(queue, i, it)
		mine = slices.Insert(mine, i, true)
	}
	// Simulate.
	free := make([]time.Time, p.executions())
	for i := range free {
		free[i] = now
	}
	for i, end := range s.Running {
		if i < len(free) && end.After(now) {
			free[i] = end
		}
	}
	r = Admitted
	batchIndex := 0
	first := true // the request's first part in service order
	var end time.Time
	for h := 0; h < len(queue); batchIndex++ {
		slot := 0
		for i := range free {
			if free[i].Before(free[slot]) {
				slot = i
			}
		}
		start := free[slot]
		n, rows := 0, 0
		for h+n < len(queue) && (n == 0 || rows+queue[h+n].Rows <= p.MaxBatchSize) {
			rows += queue[h+n].Rows
			n++
		}
		end = start.Add(s.Latency.Estimate(rows))
		free[slot] = end
		for j := h; j < h+n; j++ {
			if !mine[j] {
				continue
			}
			if r != Admitted {
				continue
			}
			if first && batchIndex >= p.executions() && (!s.Latency.Known() || start.Sub(now) > p.MaxQueueDelay) {
				r = QueueDelay
			} else if dl := queue[j].Deadline; !dl.IsZero() && s.Latency.Known() && !end.Before(dl) {
				r = Deadline
			}
			first = false
		}
		h += n
	}
	if queued > p.maxQueueSize() {
		r = QueueFull
	}
	return r, end.Sub(now)
}
