package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// Errors returned by Batcher.Do. ErrQueueFull and ErrDeadline come wrapped
// in a *RejectError.
var (
	// ErrQueueFull: the queue has no room for the request, in rows or in
	// time (it would wait longer than MaxQueueDelay).
	ErrQueueFull = errors.New("batch: queue full")
	// ErrDeadline: the request cannot finish before its deadline.
	ErrDeadline = errors.New("batch: deadline cannot be met")
	// ErrClosed: the Batcher is not running.
	ErrClosed = errors.New("batch: closed")
)

// RejectError is the error of a request rejected without running.
type RejectError struct {
	// Reason is why; never Admitted.
	Reason Reason
	// RetryAfter is the predicted time until the queue has drained; zero
	// when unknown.
	RetryAfter time.Duration
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("%v (%s)", e.Unwrap(), e.Reason)
}

// Unwrap returns ErrDeadline or ErrQueueFull.
func (e *RejectError) Unwrap() error {
	if e.Reason == Deadline {
		return ErrDeadline
	}
	return ErrQueueFull
}

// Exec runs one batch; it is a backend model's Infer.
type Exec func(ctx context.Context, inputs []*tensor.Tensor) ([]*tensor.Tensor, error)

// Config configures a Batcher.
type Config struct {
	Policy
	// PriorityLevels is the number of priority levels, 1 (served first)
	// to PriorityLevels. Zero means 1.
	PriorityLevels int
	// Split lets a request with more than MaxBatchSize rows be cut into
	// parts of at most MaxBatchSize rows (the model must declare
	// backend.Batching.Split). False runs such a request alone, whole.
	Split bool
	// Arriving, when set, reports how many requests are on their way to
	// Do (read by the server, not yet queued), for Policy.WaitForArriving.
	// It is called with the Batcher's lock held and must be cheap. Nil
	// means 0.
	Arriving func() int
	// OnBatch, when set, is called after each execution with its rows and
	// duration (for metrics). It must not block.
	OnBatch func(rows int, took time.Duration)
}

// Request is one request to Do.
type Request struct {
	// Inputs all have the batch on dimension 0 and the same first
	// dimension (the request's rows, at least 1). They must be in the
	// same order, by name, for every request of a Batcher, and must not
	// be modified until Do returns.
	Inputs []*tensor.Tensor
	// Priority is 1 (highest) to PriorityLevels; 0 means PriorityLevels.
	Priority int
}

// Result is what Do returns for a request that ran.
type Result struct {
	// Outputs are the request's rows of each output of the batch.
	Outputs []*tensor.Tensor
	// Queued is the time from Do to the start of the execution (of the
	// last part, for a split request).
	Queued time.Duration
	// Compute is the execution time of its batch (the sum over the
	// parts of a split request).
	Compute time.Duration
}

// Batcher runs the requests given to Do in batches, on exec. Create it with
// New and call Run; it is safe for concurrent use.
type Batcher struct {
	cfg  Config
	exec Exec
	kick chan struct{}

	mu      sync.Mutex
	closed  bool
	state   State
	entries []*entry  // in step with state.Queue
	running []*runner // in step with state.Running
	wg      sync.WaitGroup
}

// entry is one queued item.
type entry struct {
	ctx     context.Context
	inputs  []*tensor.Tensor
	rows    int
	arrival time.Time
	done    chan partResult // buffered: the sender never blocks
}

type partResult struct {
	outs    []*tensor.Tensor
	started time.Time
	compute time.Duration
	err     error
}

type runner struct{ rows int }

// New returns a Batcher for cfg that runs batches on exec. It does nothing
// until Run is called.
func New(cfg Config, exec Exec) (*Batcher, error) {
	if cfg.MaxBatchSize < 1 {
		return nil, fmt.Errorf("batch: MaxBatchSize must be at least 1, got %d", cfg.MaxBatchSize)
	}
	if cfg.MaxQueueDelay < 0 || cfg.MaxQueueSize < 0 || cfg.Executions < 0 || cfg.PriorityLevels < 0 {
		return nil, errors.New("batch: limits must not be negative")
	}
	if cfg.MaxQueueSize > 0 && cfg.MaxQueueSize < cfg.MaxBatchSize {
		return nil, fmt.Errorf("batch: MaxQueueSize %d is below MaxBatchSize %d", cfg.MaxQueueSize, cfg.MaxBatchSize)
	}
	for _, p := range cfg.PreferredBatchSizes {
		if p < 1 || p > cfg.MaxBatchSize {
			return nil, fmt.Errorf("batch: preferred batch size %d is not in [1, %d]", p, cfg.MaxBatchSize)
		}
	}
	cfg.PreferredBatchSizes = slices.Clone(cfg.PreferredBatchSizes)
	return &Batcher{cfg: cfg, exec: exec, kick: make(chan struct{}, 1)}, nil
}

func (b *Batcher) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Rows returns the rows of a request's inputs: their common first
// dimension. It returns an error wrapping ErrShape when an input is a
// scalar, the first dimensions differ, or there are no rows.
func Rows(inputs []*tensor.Tensor) (int, error) {
	if len(inputs) == 0 {
		return 0, fmt.Errorf("%w: no inputs", ErrShape)
	}
	var rows int64 = -1
	for _, t := range inputs {
		if len(t.Shape) == 0 {
			return 0, fmt.Errorf("%w: input %q is a scalar", ErrShape, t.Name)
		}
		if rows >= 0 && t.Shape[0] != rows {
			return 0, fmt.Errorf("%w: inputs have %d and %d rows", ErrShape, rows, t.Shape[0])
		}
		rows = t.Shape[0]
	}
	if rows < 1 {
		return 0, fmt.Errorf("%w: no rows", ErrShape)
	}
	return int(rows), nil
}

// Shed says, before a request is even read, whether Do would reject
// every request now: it returns the *RejectError that Admit gives a
// one-row request of the highest priority and no deadline, which starts no
// later and needs no more room than any request Do could be given, and nil
// otherwise (the request must still go through Do, which may reject it for
// its own rows, priority or deadline). A server calls it to turn excess
// load away without decoding bodies it would reject.
func (b *Batcher) Shed(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.state.Queue) == 0 {
		// Do says ErrClosed; an empty queue always admits a one-row
		// request to the next round (and a queue bound is at least one
		// batch), so the common case skips Admit's copy of the queue.
		return nil
	}
	probe := []Item{{Rows: 1, Priority: 1, Arrival: now}}
	if r, retry := Admit(&b.cfg.Policy, &b.state, probe, now); r != Admitted {
		return &RejectError{Reason: r, RetryAfter: retry}
	}
	return nil
}

// Do queues req and returns its outputs once its batch has run. A request
// that Decide would dispatch at once and alone (the queue empty, a slot
// free, nothing to wait for) runs on the calling goroutine instead, in a
// slot of its own. It
// returns at once a *RejectError if the request cannot be admitted (see
// Admit), ErrClosed if the Batcher is not running, ctx's error as soon as
// ctx is done (the request is then dropped from the queue, or its rows
// from the results of a batch already running), an error wrapping ErrShape
// for inputs without common rows, or the error of the execution.
func (b *Batcher) Do(ctx context.Context, req Request) (Result, error) {
	rows, err := Rows(req.Inputs)
	if err != nil {
		return Result{}, err
	}
	prio := req.Priority
	levels := max(b.cfg.PriorityLevels, 1)
	if prio < 0 || prio > levels {
		return Result{}, fmt.Errorf("batch: priority %d is not in [1, %d]", prio, levels)
	}
	if prio == 0 {
		prio = levels
	}
	parts := [][]*tensor.Tensor{req.Inputs}
	partRows := []int{rows}
	if b.cfg.Split && rows > b.cfg.MaxBatchSize {
		partRows = partRows[:0]
		for left := rows; left > 0; left -= b.cfg.MaxBatchSize {
			partRows = append(partRows, min(left, b.cfg.MaxBatchSize))
		}
		parts = make([][]*tensor.Tensor, len(partRows))
		for _, in := range req.Inputs {
			cut, err := Split(in, partRows)
			if err != nil {
				return Result{}, err
			}
			for i := range parts {
				parts[i] = append(parts[i], cut[i])
			}
		}
	}
	deadline, _ := ctx.Deadline()

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return Result{}, ErrClosed
	}
	now := time.Now()
	items := make([]Item, len(parts))
	for i := range parts {
		items[i] = Item{Rows: partRows[i], Priority: prio, Arrival: now, Deadline: deadline}
	}
	if r, retry := Admit(&b.cfg.Policy, &b.state, items, now); r != Admitted {
		b.mu.Unlock()
		return Result{}, &RejectError{Reason: r, RetryAfter: retry}
	}
	if len(parts) == 1 && b.runsAlone(items[0], now) {
		return b.inline(ctx, req.Inputs, rows, now)
	}
	mine := make([]*entry, len(parts))
	for i, in := range parts {
		e := &entry{ctx: ctx, inputs: in, rows: partRows[i], arrival: now, done: make(chan partResult, 1)}
		mine[i] = e
		at := Insert(b.state.Queue, items[i])
		b.state.Queue = slices.Insert(b.state.Queue, at, items[i])
		b.entries = slices.Insert(b.entries, at, e)
	}
	b.mu.Unlock()
	b.wake()

	res := Result{Outputs: make([]*tensor.Tensor, 0)}
	outs := make([][]*tensor.Tensor, len(mine))
	for i, e := range mine {
		select {
		case r := <-e.done:
			if r.err != nil {
				b.drop(mine[i+1:])
				return Result{}, r.err
			}
			outs[i] = r.outs
			res.Queued = r.started.Sub(now)
			res.Compute += r.compute
		case <-ctx.Done():
			b.drop(mine[i:])
			return Result{}, ctx.Err()
		}
	}
	if len(outs) == 1 {
		res.Outputs = outs[0]
		return res, nil
	}
	for j := range outs[0] {
		col := make([]*tensor.Tensor, len(outs))
		for i := range outs {
			col[i] = outs[i][j]
		}
		t, err := Concat(outs[0][j].Name, col)
		if err != nil {
			return Result{}, err
		}
		res.Outputs = append(res.Outputs, t)
	}
	return res, nil
}

// drop removes es from the queue if they are still there.
func (b *Batcher) drop(es []*entry) {
	if len(es) == 0 {
		return
	}
	b.mu.Lock()
	for _, e := range es {
		if i := slices.Index(b.entries, e); i >= 0 {
			b.entries = slices.Delete(b.entries, i, i+1)
			b.state.Queue = slices.Delete(b.state.Queue, i, i+1)
		}
	}
	b.mu.Unlock()
	b.wake()
}

func (b *Batcher) arriving() int {
	if b.cfg.Arriving == nil {
		return 0
	}
	return b.cfg.Arriving()
}

// runsAlone reports whether it, admitted at now into an empty queue, would
// be dispatched at once, alone, by Decide: then handing it to the Run
// goroutine and back would only add two goroutine switches. b.mu must be
// held.
func (b *Batcher) runsAlone(it Item, now time.Time) bool {
	if len(b.state.Queue) > 0 || len(b.state.Running) >= b.cfg.executions() {
		return false
	}
	s := State{Queue: []Item{it}, Running: b.state.Running, Latency: b.state.Latency, Arriving: b.arriving()}
	d := Decide(&b.cfg.Policy, &s, now)
	return d.Batch == 1 && len(d.Expire) == 0
}

// inline runs one request on the calling goroutine in a slot of its own,
// as Run would have: counted among the running batches, measured for the
// latency model. b.mu must be held; inline releases it.
func (b *Batcher) inline(ctx context.Context, inputs []*tensor.Tensor, rows int, now time.Time) (Result, error) {
	r := &runner{rows: rows}
	b.running = append(b.running, r)
	b.state.Running = append(b.state.Running, now.Add(b.state.Latency.Estimate(rows)))
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()

	start := time.Now()
	outs, err := b.exec(ctx, inputs)
	took := time.Since(start)

	b.mu.Lock()
	i := slices.Index(b.running, r)
	b.running = slices.Delete(b.running, i, i+1)
	b.state.Running = slices.Delete(b.state.Running, i, i+1)
	if err == nil {
		b.state.Latency.Observe(rows, took)
	}
	b.mu.Unlock()
	b.wake() // a slot is free: the queue may have grown meanwhile
	if err != nil {
		return Result{}, err
	}
	if b.cfg.OnBatch != nil {
		b.cfg.OnBatch(rows, took)
	}
	return Result{Outputs: outs, Queued: start.Sub(now), Compute: took}, nil
}

// Run decides and dispatches batches until ctx is done; then it rejects
// what is queued with ErrClosed, waits for the running batches to finish,
// and returns nil. Call it once.
func (b *Batcher) Run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		wake, dispatched := b.step()
		if dispatched {
			continue
		}
		if !wake.IsZero() {
			timer.Reset(max(time.Until(wake), 0))
		}
		select {
		case <-b.kick:
		case <-timer.C:
		case <-ctx.Done():
			b.shutdown()
			return nil
		}
		timer.Stop()
	}
}

func (b *Batcher) shutdown() {
	b.mu.Lock()
	b.closed = true
	for _, e := range b.entries {
		e.done <- partResult{err: ErrClosed}
	}
	b.entries, b.state.Queue = nil, nil
	b.mu.Unlock()
	b.wg.Wait()
}

// step makes one decision and acts on it.
func (b *Batcher) step() (wake time.Time, dispatched bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.state.Arriving = b.arriving()
	d := Decide(&b.cfg.Policy, &b.state, now)
	for _, i := range slices.Backward(d.Expire) {
		b.entries[i].done <- partResult{err: &RejectError{Reason: Deadline}}
		b.entries = slices.Delete(b.entries, i, i+1)
		b.state.Queue = slices.Delete(b.state.Queue, i, i+1)
	}
	if d.Batch == 0 {
		return d.Wake, false
	}
	batch := slices.Clone(b.entries[:d.Batch])
	rows := 0
	for _, it := range b.state.Queue[:d.Batch] {
		rows += it.Rows
	}
	b.entries = slices.Delete(b.entries, 0, d.Batch)
	b.state.Queue = slices.Delete(b.state.Queue, 0, d.Batch)
	r := &runner{rows: rows}
	b.running = append(b.running, r)
	b.state.Running = append(b.state.Running, now.Add(b.state.Latency.Estimate(rows)))
	b.wg.Go(func() { b.execute(r, batch) })
	return d.Wake, true
}

// execute runs one batch and delivers its results.
func (b *Batcher) execute(r *runner, batch []*entry) {
	live := batch[:0:0]
	for _, e := range batch {
		if e.ctx.Err() == nil {
			live = append(live, e)
		}
	}
	start := time.Now()
	var rows int
	var took time.Duration
	if len(live) > 0 {
		rows, took = b.run(live, start)
	}
	b.mu.Lock()
	i := slices.Index(b.running, r)
	b.running = slices.Delete(b.running, i, i+1)
	b.state.Running = slices.Delete(b.state.Running, i, i+1)
	if rows > 0 {
		b.state.Latency.Observe(rows, took)
	}
	b.mu.Unlock()
	b.wake()
	if rows > 0 && b.cfg.OnBatch != nil {
		b.cfg.OnBatch(rows, took)
	}
}

// run executes live as one batch and sends each entry its result. It
// returns the rows and time of the execution, rows 0 when it failed.
func (b *Batcher) run(live []*entry, start time.Time) (rows int, took time.Duration) {
	// The batch's context ends when every request's has.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	waiting := len(live)
	for _, e := range live {
		stop := context.AfterFunc(e.ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			if waiting--; waiting == 0 {
				cancel()
			}
		})
		defer stop()
	}
	outs, partRows, err := b.runBatch(ctx, live)
	took = time.Since(start)
	if err != nil && len(live) > 1 && ctx.Err() == nil {
		// One bad request must not fail the others: run each alone.
		for _, e := range live {
			t0 := time.Now()
			outs, _, err := b.runBatch(ctx, []*entry{e})
			var o []*tensor.Tensor
			if err == nil {
				o = outs[0]
			}
			e.done <- partResult{outs: o, started: t0, compute: time.Since(t0), err: err}
		}
		return 0, 0
	}
	for i, e := range live {
		pr := partResult{started: start, compute: took, err: err}
		if err == nil {
			pr.outs = outs[i]
		}
		e.done <- pr
	}
	if err != nil {
		return 0, 0
	}
	for _, r := range partRows {
		rows += r
	}
	return rows, took
}

// runBatch concatenates the inputs of es, executes them and splits the
// outputs: outs[i] are es[i]'s.
func (b *Batcher) runBatch(ctx context.Context, es []*entry) (outs [][]*tensor.Tensor, rows []int, err error) {
	rows = make([]int, len(es))
	for i, e := range es {
		rows[i] = e.rows
	}
	inputs := es[0].inputs
	if len(es) > 1 {
		inputs = make([]*tensor.Tensor, len(es[0].inputs))
		col := make([]*tensor.Tensor, len(es))
		for j, in := range es[0].inputs {
			for i, e := range es {
				if len(e.inputs) != len(inputs) || e.inputs[j].Name != in.Name {
					return nil, nil, fmt.Errorf("%w: requests with inputs %v and %v in one batch", ErrShape, names(es[0].inputs), names(e.inputs))
				}
				col[i] = e.inputs[j]
			}
			if inputs[j], err = Concat(in.Name, col); err != nil {
				return nil, nil, err
			}
		}
	}
	res, err := b.exec(ctx, inputs)
	if err != nil {
		return nil, nil, err
	}
	outs = make([][]*tensor.Tensor, len(es))
	if len(es) == 1 {
		outs[0] = res
		return outs, rows, nil
	}
	for _, t := range res {
		parts, err := Split(t, rows)
		if err != nil {
			return nil, nil, fmt.Errorf("output %q: %w", t.Name, err)
		}
		for i := range es {
			outs[i] = append(outs[i], parts[i])
		}
	}
	return outs, rows, nil
}

func names(ts []*tensor.Tensor) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.Name
	}
	return "[" + strings.Join(s, " ") + "]"
}
