package batch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-ml/shoal/internal/tensor"
)

// rowsModel is an Exec standing in for a model: output "y" [n] holds, for
// each row of input "x" [n, 2], x0*3 + x1, and each call takes latency (of
// the bubble's fake clock under synctest). It records the rows of every
// call, and fails a call with a row whose x0 is negative.
type rowsModel struct {
	latency time.Duration
	mu      sync.Mutex
	calls   []int
}

func (m *rowsModel) exec(ctx context.Context, in []*tensor.Tensor) ([]*tensor.Tensor, error) {
	x := in[0].Data.([]float32)
	n := int(in[0].Shape[0])
	m.mu.Lock()
	m.calls = append(m.calls, n)
	m.mu.Unlock()
	time.Sleep(m.latency) // the computation's duration, on the fake clock
	y := make([]float32, n)
	for r := range n {
		if x[2*r] < 0 {
			return nil, errors.New("negative row")
		}
		y[r] = x[2*r]*3 + x[2*r+1]
	}
	return []*tensor.Tensor{{Name: "y", DType: tensor.FP32, Shape: []int64{int64(n)}, Data: y}}, nil
}

func rowsInput(first float32, n int) []*tensor.Tensor {
	x := make([]float32, 2*n)
	for r := range n {
		x[2*r], x[2*r+1] = first+float32(r), float32(r)/8
	}
	return []*tensor.Tensor{{Name: "x", DType: tensor.FP32, Shape: []int64{int64(n), 2}, Data: x}}
}

func checkRows(t *testing.T, in []*tensor.Tensor, res Result) {
	t.Helper()
	x := in[0].Data.([]float32)
	y := res.Outputs[0].Data.([]float32)
	if len(y) != len(x)/2 {
		t.Fatalf("got %d rows, want %d", len(y), len(x)/2)
	}
	for r := range y {
		if want := x[2*r]*3 + x[2*r+1]; y[r] != want {
			t.Fatalf("row %d = %v, want %v", r, y[r], want)
		}
	}
}

// start runs b in the background until the test's cleanup.
func start(t *testing.T, b *Batcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestBound drives a Batcher with clients arriving at random (fake) times
// and checks that every accepted request waited at most MaxQueueDelay plus
// one batch execution, every rejected one was rejected without waiting,
// and every answer holds the request's own rows.
func TestBound(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     Policy
		latency    time.Duration
		clients    int
		meanGap    time.Duration
		deadline   time.Duration
		wantReject bool
	}{
		{"light", Policy{MaxBatchSize: 8, MaxQueueDelay: time.Millisecond}, 2 * time.Millisecond, 8, 5 * time.Millisecond, 0, false},
		{"busy", Policy{MaxBatchSize: 8, MaxQueueDelay: time.Millisecond}, 2 * time.Millisecond, 64, 500 * time.Microsecond, 0, true},
		{"two slots", Policy{MaxBatchSize: 4, MaxQueueDelay: 3 * time.Millisecond, Executions: 2}, 5 * time.Millisecond, 64, 200 * time.Microsecond, 0, true},
		{"deadlines", Policy{MaxBatchSize: 16, MaxQueueDelay: 10 * time.Millisecond}, 2 * time.Millisecond, 64, 2 * time.Millisecond, 4 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &rowsModel{latency: tc.latency}
				b, err := New(Config{Policy: tc.policy}, m.exec)
				if err != nil {
					t.Fatal(err)
				}
				start(t, b)
				// Deadlines are checked once the latency model has seen
				// an execution.
				if _, err := b.Do(context.Background(), Request{Inputs: rowsInput(0, 1)}); err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(1, 2))
				var wg sync.WaitGroup
				var mu sync.Mutex
				accepted, rejected := 0, 0
				for c := range tc.clients {
					gaps := make([]time.Duration, 20)
					for i := range gaps {
						gaps[i] = time.Duration(rng.ExpFloat64() * float64(tc.meanGap))
					}
					rows := 1 + rng.IntN(3)
					wg.Go(func() {
						for i, gap := range gaps {
							time.Sleep(gap)
							ctx := context.Background()
							if tc.deadline > 0 {
								var cancel context.CancelFunc
								ctx, cancel = context.WithTimeout(ctx, tc.deadline)
								defer cancel()
							}
							in := rowsInput(float32(c*1000+i*10), rows)
							t0 := time.Now()
							res, err := b.Do(ctx, Request{Inputs: in})
							waited := time.Since(t0)
							var rej *RejectError
							switch {
							case errors.As(err, &rej) && rej.Reason != Deadline || errors.As(err, &rej) && waited == 0:
								if waited != 0 {
									t.Errorf("rejected (%v) after %v, want at once", err, waited)
								}
								mu.Lock()
								rejected++
								mu.Unlock()
							case err != nil:
								t.Errorf("Do: %v after %v", err, waited)
							default:
								if bound := tc.policy.MaxQueueDelay + tc.latency; res.Queued > bound {
									t.Errorf("queued %v, want at most %v", res.Queued, bound)
								}
								checkRows(t, in, res)
								mu.Lock()
								accepted++
								mu.Unlock()
							}
						}
					})
				}
				wg.Wait()
				if accepted == 0 || (rejected > 0) != tc.wantReject {
					t.Errorf("accepted %d, rejected %d; want rejections: %v", accepted, rejected, tc.wantReject)
				}
				if slices.Max(m.calls) > tc.policy.MaxBatchSize {
					t.Errorf("a batch of %d rows, limit %d", slices.Max(m.calls), tc.policy.MaxBatchSize)
				}
				if len(m.calls)-1 >= accepted && tc.clients > 8 {
					t.Errorf("%d executions for %d requests: no batching", len(m.calls), accepted)
				}
			})
		})
	}
}

// TestCancel cancels a queued request: it returns at once, the others get
// their own rows, and its rows are not executed.
func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &rowsModel{latency: time.Millisecond}
		b, err := New(Config{Policy: Policy{MaxBatchSize: 16, MaxQueueDelay: 10 * time.Millisecond}}, m.exec)
		if err != nil {
			t.Fatal(err)
		}
		start(t, b)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i, n := range []int{2, 3, 4} {
			c := context.Background()
			if i == 1 {
				c = ctx
			}
			wg.Go(func() {
				in := rowsInput(float32(100*i), n)
				var res Result
				res, errs[i] = b.Do(c, Request{Inputs: in})
				if errs[i] == nil {
					checkRows(t, in, res)
				}
			})
		}
		synctest.Wait()
		cancel()
		wg.Wait()
		if errs[0] != nil || errs[2] != nil || !errors.Is(errs[1], context.Canceled) {
			t.Errorf("errors %v, want nil, context.Canceled, nil", errs)
		}
		if !slices.Equal(m.calls, []int{6}) {
			t.Errorf("executions of %v rows, want [6]", m.calls)
		}
	})
}

// TestSplit runs a request larger than MaxBatchSize in parts when Split is
// set, and alone otherwise.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		split bool
		want  []int
	}{{true, []int{4, 4, 2}}, {false, []int{10}}} {
		t.Run(fmt.Sprint("split=", tc.split), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &rowsModel{latency: time.Millisecond}
				b, err := New(Config{Policy: Policy{MaxBatchSize: 4, MaxQueueSize: 16}, Split: tc.split}, m.exec)
				if err != nil {
					t.Fatal(err)
				}
				start(t, b)
				in := rowsInput(7, 10)
				res, err := b.Do(context.Background(), Request{Inputs: in})
				if err != nil {
					t.Fatal(err)
				}
				checkRows(t, in, res)
				if !slices.Equal(m.calls, tc.want) {
					t.Errorf("executions of %v rows, want %v", m.calls, tc.want)
				}
			})
		})
	}
}

// TestFailedRequestIsolated: a request the model rejects fails alone; the
// others of its batch still get their answers.
func TestFailedRequestIsolated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &rowsModel{latency: time.Millisecond}
		b, err := New(Config{Policy: Policy{MaxBatchSize: 16, MaxQueueDelay: time.Millisecond}}, m.exec)
		if err != nil {
			t.Fatal(err)
		}
		start(t, b)
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for i := range 3 {
			wg.Go(func() {
				in := rowsInput(float32(10*i), 2)
				if i == 1 {
					in[0].Data.([]float32)[0] = -1
				}
				var res Result
				res, errs[i] = b.Do(context.Background(), Request{Inputs: in})
				if errs[i] == nil {
					checkRows(t, in, res)
				}
			})
		}
		wg.Wait()
		if errs[0] != nil || errs[1] == nil || errs[2] != nil {
			t.Errorf("errors %v, want only the second", errs)
		}
	})
}

// TestClosed: Do fails with ErrClosed once Run has returned, and requests
// queued when it stops get ErrClosed.
func TestClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &rowsModel{latency: time.Millisecond}
		b, err := New(Config{Policy: Policy{MaxBatchSize: 4, MaxQueueDelay: time.Hour}}, m.exec)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		var queuedErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, queuedErr = b.Do(context.Background(), Request{Inputs: rowsInput(1, 1)}) })
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		wg.Wait()
		if !errors.Is(queuedErr, ErrClosed) {
			t.Errorf("queued request: %v, want ErrClosed", queuedErr)
		}
		if _, err := b.Do(context.Background(), Request{Inputs: rowsInput(1, 1)}); !errors.Is(err, ErrClosed) {
			t.Errorf("Do after Run: %v, want ErrClosed", err)
		}
	})
}

// TestInlineWhenIdle: a request that Decide would dispatch at once and
// alone (empty queue, a free slot, no delay to wait) runs on the caller's
// goroutine, so it needs no Run loop; one that Decide would hold for
// MaxQueueDelay still waits for it.
func TestInlineWhenIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &rowsModel{latency: time.Millisecond}
		var batches []int
		b, err := New(Config{Policy: Policy{MaxBatchSize: 8}, OnBatch: func(rows int, _ time.Duration) { batches = append(batches, rows) }}, m.exec)
		if err != nil {
			t.Fatal(err)
		}
		in := rowsInput(1, 3)
		res, err := b.Do(context.Background(), Request{Inputs: in}) // Run never started
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, in, res)
		if res.Queued != 0 || res.Compute != time.Millisecond || !slices.Equal(batches, []int{3}) {
			t.Fatalf("Do = queued %v, compute %v, batches %v; want 0, 1ms, [3]", res.Queued, res.Compute, batches)
		}
		if !b.state.Latency.Known() {
			t.Fatal("the inline execution was not measured")
		}

		held, err := New(Config{Policy: Policy{MaxBatchSize: 8, MaxQueueDelay: 5 * time.Millisecond}}, m.exec)
		if err != nil {
			t.Fatal(err)
		}
		start(t, held)
		res, err = held.Do(context.Background(), Request{Inputs: in})
		if err != nil {
			t.Fatal(err)
		}
		if res.Queued != 5*time.Millisecond {
			t.Fatalf("with max_queue_delay 5ms, a lone request queued %v, want 5ms", res.Queued)
		}
	})
}

// TestShed checks that Shed turns requests away only when Do would reject
// them all: nil on an idle batcher, a rejection while the next round of
// executions is taken (and Do then rejects even a one-row, top-priority
// request), nil again once the queue has drained.
func TestShed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &rowsModel{latency: 10 * time.Millisecond}
		b, err := New(Config{Policy: Policy{MaxBatchSize: 2, MaxQueueSize: 4, MaxQueueDelay: time.Millisecond}}, m.exec)
		if err != nil {
			t.Fatal(err)
		}
		start(t, b)
		if err := b.Shed(time.Now()); err != nil {
			t.Fatalf("Shed on an idle batcher: %v", err)
		}
		// Rejections by delay need a latency model.
		if _, err := b.Do(context.Background(), Request{Inputs: rowsInput(0, 1)}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for c := range 3 {
			wg.Go(func() { b.Do(context.Background(), Request{Inputs: rowsInput(float32(10*c), 2)}) })
		}
		synctest.Wait()
		var rej *RejectError
		if err := b.Shed(time.Now()); !errors.As(err, &rej) {
			t.Fatalf("Shed with a slot busy and the next batch full = %v, want a *RejectError", err)
		}
		if _, err := b.Do(context.Background(), Request{Inputs: rowsInput(100, 1), Priority: 1}); !errors.As(err, &rej) {
			t.Fatalf("Shed rejected, but Do of one top-priority row = %v", err)
		}
		wg.Wait()
		if err := b.Shed(time.Now()); err != nil {
			t.Fatalf("Shed once drained: %v", err)
		}
	})
}
