package serve

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/batch"
	"github.com/shoal-ml/shoal/internal/oip"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// Infer runs one inference request. Errors wrap ErrModelNotFound,
// ErrModelNotReady, oip.ErrBadRequest (inputs or requested outputs that do
// not fit the model), backend.ErrInvalidInput, backend.ErrUnavailable or
// ErrTimeout. The request's "timeout" parameter (microseconds, as in
// Triton) bounds the time spent; Config.DefaultTimeout applies otherwise.
func (s *Server) Infer(ctx context.Context, req *oip.InferRequest) (*oip.InferResponse, error) {
	start := time.Now()
	v, err := s.acquire(req.ModelName, req.ModelVersion)
	if err != nil {
		return nil, err
	}
	defer v.inflight.Done()
	vm := v.metrics
	vm.inflight.Inc()
	defer vm.inflight.Dec()

	resp, err := s.infer(ctx, v, req, start)
	switch {
	case err == nil:
		vm.success.Inc()
		vm.total.Observe(time.Since(start).Seconds())
	case isClientError(err):
		vm.clientError.Inc()
	case errors.Is(err, batch.ErrQueueFull), errors.Is(err, batch.ErrDeadline):
		vm.overloaded.Inc()
	default:
		vm.serverError.Inc()
	}
	return resp, err
}

func isClientError(err error) bool {
	return errors.Is(err, oip.ErrBadRequest) || errors.Is(err, backend.ErrInvalidInput) ||
		errors.Is(err, tensor.ErrShape) || errors.Is(err, tensor.ErrData) || errors.Is(err, tensor.ErrDType)
}

func (s *Server) infer(ctx context.Context, v *version, req *oip.InferRequest, start time.Time) (*oip.InferResponse, error) {
	if err := v.checkInputs(req.Inputs); err != nil {
		return nil, err
	}
	want, err := v.selectOutputs(req)
	if err != nil {
		return nil, err
	}
	if v.batcher != nil {
		if in, ok := v.batchInputs(req.Inputs); ok {
			outs, err := s.inferBatched(ctx, v, req, in, start)
			if err != nil {
				return nil, err
			}
			return v.response(req, want, outs)
		}
	}
	timeout, err := requestTimeout(req.Parameters, s.cfg.DefaultTimeout)
	if err != nil {
		return nil, err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if v.sem != nil {
		select {
		case v.sem <- struct{}{}:
			defer func() { <-v.sem }()
		case <-ctx.Done():
			return nil, ctxErr(ctx)
		}
	}
	computeStart := time.Now()
	v.metrics.queue.Observe(computeStart.Sub(start).Seconds())
	if len(req.Inputs) > 0 && len(req.Inputs[0].Shape) > 0 {
		v.metrics.batch.Observe(float64(req.Inputs[0].Shape[0]))
	}
	outs, err := runBackend(ctx, v.m, req.Inputs, timeout > 0)
	v.metrics.compute.Observe(time.Since(computeStart).Seconds())
	if err != nil {
		return nil, err
	}
	return v.response(req, want, outs)
}

// response picks the requested outputs.
func (v *version) response(req *oip.InferRequest, want []wantOutput, outs []*tensor.Tensor) (*oip.InferResponse, error) {
	if len(outs) != len(v.sig.Outputs) {
		return nil, fmt.Errorf("model %q returned %d outputs, its signature has %d", v.name, len(outs), len(v.sig.Outputs))
	}
	resp := &oip.InferResponse{ModelName: v.name, ModelVersion: v.label, ID: req.ID}
	for _, w := range want {
		resp.Outputs = append(resp.Outputs, outs[w.index])
		resp.Binary = append(resp.Binary, w.binary)
	}
	return resp, nil
}

// runBackend calls m.Infer; with a deadline it returns as soon as ctx is
// done even if the backend does not watch ctx.
func runBackend(ctx context.Context, m backend.Model, in []*tensor.Tensor, bounded bool) ([]*tensor.Tensor, error) {
	if !bounded {
		outs, err := m.Infer(ctx, in)
		if err != nil && ctx.Err() != nil {
			return nil, ctxErr(ctx)
		}
		return outs, err
	}
	type result struct {
		outs []*tensor.Tensor
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		outs, err := m.Infer(ctx, in)
		ch <- result{outs, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && ctx.Err() != nil {
			return nil, ctxErr(ctx)
		}
		return r.outs, r.err
	case <-ctx.Done():
		return nil, ctxErr(ctx)
	}
}

func ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w", ErrTimeout)
	}
	return ctx.Err()
}

// requestTimeout reads the "timeout" parameter in microseconds.
func requestTimeout(params map[string]any, def time.Duration) (time.Duration, error) {
	raw, ok := params["timeout"]
	if !ok {
		return def, nil
	}
	var us float64
	switch t := raw.(type) {
	case float64:
		us = t
	case int64:
		us = float64(t)
	case uint64:
		us = float64(t)
	default:
		return 0, fmt.Errorf("%w: parameter timeout must be a number of microseconds, got %v", oip.ErrBadRequest, raw)
	}
	if us <= 0 || math.IsNaN(us) || us > float64(math.MaxInt64/1000) {
		return 0, fmt.Errorf("%w: parameter timeout must be a positive number of microseconds, got %v", oip.ErrBadRequest, raw)
	}
	return time.Duration(us * 1000), nil
}

// checkInputs checks names, types and shapes against the signature.
func (v *version) checkInputs(in []*tensor.Tensor) error {
	for _, t := range in {
		i, ok := v.inputs[t.Name]
		if !ok {
			return fmt.Errorf("%w: unknown input %q: model %q has inputs %v", oip.ErrBadRequest, t.Name, v.name, specNames(v.sig.Inputs))
		}
		spec := v.sig.Inputs[i]
		if spec.DType != tensor.Invalid && t.DType != spec.DType {
			return fmt.Errorf("%w: input %q has datatype %s, model %q expects %s", oip.ErrBadRequest, t.Name, t.DType, v.name, spec.DType)
		}
		if !shapeFits(t.Shape, spec.Shape) {
			return fmt.Errorf("%w: input %q has shape %v, model %q expects %v (-1: any size)", oip.ErrBadRequest, t.Name, t.Shape, v.name, spec.Shape)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: input %q: %w", oip.ErrBadRequest, t.Name, err)
		}
	}
	if len(in) != len(v.sig.Inputs) {
		for _, spec := range v.sig.Inputs {
			if !slices.ContainsFunc(in, func(t *tensor.Tensor) bool { return t.Name == spec.Name }) {
				return fmt.Errorf("%w: missing input %q: model %q has inputs %v", oip.ErrBadRequest, spec.Name, v.name, specNames(v.sig.Inputs))
			}
		}
	}
	return nil
}

func shapeFits(got, want []int64) bool {
	if want == nil {
		return true
	}
	if len(got) != len(want) {
		return false
	}
	for i, d := range want {
		if d != -1 && got[i] != d {
			return false
		}
	}
	return true
}

func specNames(specs []backend.TensorSpec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

type wantOutput struct {
	index  int
	binary bool
}

func (v *version) selectOutputs(req *oip.InferRequest) ([]wantOutput, error) {
	if len(req.Outputs) == 0 {
		out := make([]wantOutput, len(v.sig.Outputs))
		for i := range out {
			out[i] = wantOutput{index: i, binary: req.BinaryOutput}
		}
		return out, nil
	}
	out := make([]wantOutput, 0, len(req.Outputs))
	for _, o := range req.Outputs {
		i, ok := v.outputs[o.Name]
		if !ok {
			return nil, fmt.Errorf("%w: unknown output %q: model %q has outputs %v", oip.ErrBadRequest, o.Name, v.name, specNames(v.sig.Outputs))
		}
		out = append(out, wantOutput{index: i, binary: o.Binary || req.BinaryOutput})
	}
	return out, nil
}
