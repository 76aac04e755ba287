package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/batch"
	"github.com/shoal-ml/shoal/internal/oip"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// BatchingConfig turns on dynamic batching for a model (model.yaml
// "batching"); see package batch and docs/batching.md. Only models whose
// backend declares backend.Batching.Concat can batch: setting it for any
// other fails the load.
type BatchingConfig struct {
	// MaxBatchSize is the most rows one backend call gets; a request's rows
	// count toward it. Required, at least 1. A larger request runs alone,
	// or is split if the backend declares backend.Batching.Split.
	MaxBatchSize int `json:"max_batch_size"`
	// MaxQueueDelay is how long a request may wait for others while the
	// backend is free. Zero means no waiting.
	MaxQueueDelay Duration `json:"max_queue_delay,omitempty"`
	// PreferredBatchSizes are row counts to favour; empty means none.
	PreferredBatchSizes []int `json:"preferred_batch_sizes,omitempty"`
	// MaxQueueSize bounds the rows waiting. Zero means 4 * max_batch_size
	// * the concurrent executions (max_concurrency, 1 when unset).
	MaxQueueSize int `json:"max_queue_size,omitempty"`
	// DefaultTimeout is the deadline of a request that sets no "timeout"
	// parameter. Zero means the server's default (Config.DefaultTimeout).
	DefaultTimeout Duration `json:"default_timeout,omitempty"`
	// WaitForArriving makes a batch that is not full wait (up to
	// MaxQueueDelay) only while REST requests for the model are being read:
	// with none on its way, waiting cannot grow the batch, so it runs at
	// once, and a lone request at low load pays no delay. False waits
	// MaxQueueDelay whatever comes.
	WaitForArriving bool `json:"wait_for_arriving,omitempty"`
	// PriorityLevels is how many values the request parameter "priority"
	// may take: 1 (served first) to PriorityLevels; a request without it
	// gets the lowest. Zero means 1.
	PriorityLevels int `json:"priority_levels,omitempty"`
}

func (c *BatchingConfig) validate() error {
	switch {
	case c.MaxBatchSize < 1:
		return fmt.Errorf("batching.max_batch_size must be at least 1, got %d", c.MaxBatchSize)
	case c.MaxQueueDelay < 0 || c.DefaultTimeout < 0:
		return errors.New("batching: durations must not be negative")
	case c.MaxQueueSize < 0 || c.PriorityLevels < 0:
		return errors.New("batching: max_queue_size and priority_levels must not be negative")
	case c.MaxQueueSize > 0 && c.MaxQueueSize < c.MaxBatchSize:
		return fmt.Errorf("batching.max_queue_size %d is below max_batch_size %d", c.MaxQueueSize, c.MaxBatchSize)
	}
	for _, p := range c.PreferredBatchSizes {
		if p < 1 || p > c.MaxBatchSize {
			return fmt.Errorf("batching.preferred_batch_sizes: %d is not in [1, max_batch_size]", p)
		}
	}
	return nil
}

// Duration is a time.Duration written in model.yaml as a Go duration
// string ("2ms", "1.5s").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"2ms\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// versionBatcher is the batching state of one version.
type versionBatcher struct {
	b              *batch.Batcher
	defaultTimeout time.Duration
	levels         int
	stop           context.CancelFunc
	done           chan struct{}
}

// newBatcher starts batching for v, or returns an error when the model
// cannot batch.
func (s *Server) newBatcher(v *version, bc *BatchingConfig, executions int) (*versionBatcher, error) {
	bm, ok := v.m.(backend.Batcher)
	if !ok || !bm.Batching().Concat {
		err := fmt.Errorf("%w: batching is set, but the %s backend does not declare that it can batch", ErrBadConfig, v.format)
		if d, ok := v.m.(interface{ BatchingDenied() string }); ok && d.BatchingDenied() != "" {
			err = fmt.Errorf("%w: %s", err, d.BatchingDenied())
		}
		return nil, err
	}
	for _, t := range v.sig.Inputs {
		if t.DType == tensor.Invalid || len(t.Shape) == 0 || t.Shape[0] != -1 || slices.Contains(t.Shape[1:], -1) {
			return nil, fmt.Errorf("%w: batching needs every input typed, with a dynamic first dimension only; %q is %s%v", ErrBadConfig, t.Name, t.DType, t.Shape)
		}
	}
	for _, t := range v.sig.Outputs {
		if len(t.Shape) == 0 || t.Shape[0] != -1 {
			return nil, fmt.Errorf("%w: batching needs every output with a dynamic first dimension; %q is %v", ErrBadConfig, t.Name, t.Shape)
		}
	}
	vm := v.metrics
	b, err := batch.New(batch.Config{
		Policy: batch.Policy{
			MaxBatchSize:        bc.MaxBatchSize,
			MaxQueueDelay:       time.Duration(bc.MaxQueueDelay),
			PreferredBatchSizes: bc.PreferredBatchSizes,
			MaxQueueSize:        bc.MaxQueueSize,
			Executions:          executions,
			WaitForArriving:     bc.WaitForArriving,
		},
		Arriving:       s.arrivingCounter(v.name),
		PriorityLevels: bc.PriorityLevels,
		Split:          bm.Batching().Split,
		OnBatch: func(rows int, took time.Duration) {
			vm.batch.Observe(float64(rows))
		},
	}, v.m.Infer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	vb := &versionBatcher{b: b, defaultTimeout: time.Duration(bc.DefaultTimeout), levels: max(bc.PriorityLevels, 1), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(vb.done)
		b.Run(ctx)
	}()
	return vb, nil
}

// arrivingCounter returns the count of the model's REST requests being
// read, as batch.Config.Arriving wants it, creating the counter.
func (s *Server) arrivingCounter(name string) func() int {
	c, _ := s.arriving.LoadOrStore(name, new(atomic.Int64))
	n := c.(*atomic.Int64)
	return func() int { return int(n.Load()) }
}

// arrive counts a REST request for model as being read, if the model
// batches, until the returned func is called (once or more).
func (s *Server) arrive(model string) (arrived func()) {
	c, ok := s.arriving.Load(model)
	if !ok {
		return func() {}
	}
	n := c.(*atomic.Int64)
	n.Add(1)
	done := false
	return func() {
		if !done {
			done = true
			n.Add(-1)
		}
	}
}

// close stops the batcher and waits for its executions.
func (vb *versionBatcher) close() {
	vb.stop()
	<-vb.done
}

// batchInputs returns a request's inputs in signature order, and whether
// they can join a batch: each input given once, sharing a first dimension
// of at least 1 row (types and trailing dimensions are fixed by the
// signature, which checkInputs has checked). Other requests run alone, as
// without batching, and fail or succeed as they would there.
func (v *version) batchInputs(in []*tensor.Tensor) ([]*tensor.Tensor, bool) {
	if len(in) != len(v.sig.Inputs) {
		return nil, false
	}
	out := make([]*tensor.Tensor, len(in))
	for _, t := range in {
		i, ok := v.inputs[t.Name]
		if !ok || out[i] != nil {
			return nil, false
		}
		out[i] = t
	}
	if _, err := batch.Rows(out); err != nil {
		return nil, false
	}
	return out, true
}

// shed turns a request for a batched model away before its body is read
// when the batcher would reject any request now (batch.Batcher.Shed), so
// that excess load costs no decoding; it counts the rejection as Infer
// would. A model that is not found, not ready or not batched is left to
// Infer.
func (s *Server) shed(name, ver string) error {
	v, err := s.acquire(name, ver)
	if err != nil {
		return nil
	}
	defer v.inflight.Done()
	if v.batcher == nil {
		return nil
	}
	err = v.batcher.b.Shed(time.Now())
	var rej *batch.RejectError
	if errors.As(err, &rej) {
		v.metrics.rejected.WithLabelValues(rej.Reason.String()).Inc()
		v.metrics.overloaded.Inc()
	}
	return err
}

// inferBatched runs a checked request, its inputs in signature order,
// through the version's batcher.
func (s *Server) inferBatched(ctx context.Context, v *version, req *oip.InferRequest, in []*tensor.Tensor, start time.Time) ([]*tensor.Tensor, error) {
	vb := v.batcher
	def := s.cfg.DefaultTimeout
	if vb.defaultTimeout > 0 {
		def = vb.defaultTimeout
	}
	timeout, err := requestTimeout(req.Parameters, def)
	if err != nil {
		return nil, err
	}
	prio, err := requestPriority(req.Parameters, vb.levels)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	res, err := vb.b.Do(ctx, batch.Request{Inputs: in, Priority: prio})
	var rej *batch.RejectError
	switch {
	case errors.As(err, &rej):
		v.metrics.rejected.WithLabelValues(rej.Reason.String()).Inc()
		return nil, err
	case errors.Is(err, batch.ErrClosed):
		return nil, fmt.Errorf("%w: %q version %s is unloading", ErrModelNotReady, v.name, v.label)
	case err != nil && ctx.Err() != nil:
		return nil, ctxErr(ctx)
	case err != nil:
		return nil, err
	}
	v.metrics.queue.Observe(time.Since(start).Seconds() - res.Compute.Seconds())
	v.metrics.compute.Observe(res.Compute.Seconds())
	return res.Outputs, nil
}

// requestPriority reads the "priority" parameter: 1 to levels, 0 or absent
// for the lowest.
func requestPriority(params map[string]any, levels int) (int, error) {
	raw, ok := params["priority"]
	if !ok {
		return 0, nil
	}
	var p float64
	switch t := raw.(type) {
	case float64:
		p = t
	case int64:
		p = float64(t)
	case uint64:
		p = float64(t)
	default:
		return 0, fmt.Errorf("%w: parameter priority must be an integer, got %v", oip.ErrBadRequest, raw)
	}
	if p != math.Trunc(p) || p < 0 || p > float64(levels) {
		return 0, fmt.Errorf("%w: parameter priority must be an integer from 1 to %d (0: the lowest), got %v", oip.ErrBadRequest, levels, raw)
	}
	return int(p), nil
}

// retryAfter returns the Retry-After value for a rejection: whole seconds,
// at least 1.
func retryAfter(err error) string {
	var rej *batch.RejectError
	if errors.As(err, &rej) {
		return strconv.Itoa(max(1, int(math.Ceil(rej.RetryAfter.Seconds()))))
	}
	return "1"
}
