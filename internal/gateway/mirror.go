package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/url"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// mirrorHTTP sends a copy of a request to m's mirror revision in the
// background, compares its answer with the primary's (status, then
// outputs) and counts the result; the copy's answer is discarded. At
// most Config.MaxConcurrency mirrored requests per gateway are in
// flight; beyond that copies are dropped (and counted).
func (g *Gateway) mirrorHTTP(r *http.Request, m *model, body, primaryResp []byte, status int) {
	count := g.mirrorCounter(m)
	if !g.mirrorSlot(count) {
		return
	}
	want := bytes.Clone(primaryResp) // primaryResp is pooled; body is not
	h := r.Header.Clone()
	h.Del(HeaderRevision)
	u := url.URL{Scheme: g.scheme, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	method := r.Method
	g.mirrorRun(m, count, func(ctx context.Context, t *target) {
		u.Host = t.r.http
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
		if err != nil {
			count("error")
			return
		}
		req.Header = h
		t0 := time.Now()
		resp, err := g.cfg.Transport.RoundTrip(req)
		if err != nil {
			g.result(t, false, 0, time.Now())
			count("error")
			return
		}
		got, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		g.result(t, err == nil && resp.StatusCode < 500, time.Since(t0), time.Now())
		switch {
		case err != nil:
			count("error")
		case resp.StatusCode != status:
			count("status_mismatch")
		case status != http.StatusOK:
			count("match")
		default:
			g.mirrorCompared(m, count)(compareOutputs(want, got))
		}
	})
}

// mirrorCounter returns the function that counts a mirrored request's
// result for m's mirror revision.
func (g *Gateway) mirrorCounter(m *model) func(result string) {
	return func(result string) { g.metrics.mirror.WithLabelValues(m.name, m.mirror.name, result).Inc() }
}

// mirrorSlot takes one of the gateway's mirror slots, or counts the copy
// as dropped (and returns false) when the gateway is stopping or every
// slot is taken. A taken slot is given back by mirrorRun.
func (g *Gateway) mirrorSlot(count func(string)) bool {
	select {
	case <-g.quit: // shutting down
		count("dropped")
		return false
	default:
	}
	select {
	case g.mirrorSlots <- struct{}{}:
		return true
	default:
		count("dropped")
		return false
	}
}

// mirrorRun runs send in the background on a replica of m's mirror
// revision, under the mirror's timeout and cancelled when the gateway
// stops, and then gives back the slot mirrorSlot took.
func (g *Gateway) mirrorRun(m *model, count func(string), send func(ctx context.Context, t *target)) {
	g.background.Go(func() {
		defer func() { <-g.mirrorSlots }()
		ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
		defer cancel()
		go func() { // the gateway stopping cancels the copy
			select {
			case <-g.quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		t, err := g.pick(ctx, routing{model: m.name, pin: m.mirror.name}, nil)
		if err != nil {
			count("error")
			return
		}
		defer t.done()
		send(ctx, t)
	})
}

// mirrorCompared returns the function that records a comparison of a
// mirrored answer with the primary's: the largest difference (when there
// is one) and a match or an output mismatch.
func (g *Gateway) mirrorCompared(m *model, count func(string)) func(diff float64, same bool) {
	return func(diff float64, same bool) {
		if !math.IsNaN(diff) {
			g.metrics.mirrorDiff.WithLabelValues(m.name, m.mirror.name).Observe(diff)
		}
		if same {
			count("match")
		} else {
			count("output_mismatch")
		}
	}
}

// compareOutputs compares the outputs of two OIP (or V1) JSON answers.
// It returns the largest absolute difference between numbers at the same
// place (NaN when none are comparable) and whether the outputs are the
// same in shape, names and values (numbers within 1e-6 relative).
func compareOutputs(a, b []byte) (float64, bool) {
	var va, vb map[string]any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return math.NaN(), bytes.Equal(a, b)
	}
	key := "outputs"
	if _, ok := va[key]; !ok {
		key = "predictions"
	}
	maxDiff := math.NaN()
	same := walkDiff(va[key], vb[key], &maxDiff)
	return maxDiff, same
}

func walkDiff(a, b any, maxDiff *float64) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if !ok {
			return false
		}
		d := math.Abs(x - y)
		if math.IsNaN(*maxDiff) || d > *maxDiff {
			*maxDiff = d
		}
		return d <= 1e-6*max(1, math.Abs(x))
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		same := true
		for i := range x {
			same = walkDiff(x[i], y[i], maxDiff) && same
		}
		return same
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		same := true
		for k, v := range x {
			if k == "model_version" {
				continue
			}
			same = walkDiff(v, y[k], maxDiff) && same
		}
		return same
	default:
		return a == b
	}
}

// mirrorGRPC is mirrorHTTP for a gRPC ModelInfer: the copy goes to the
// mirror revision's gRPC address and its answer is compared with resp
// (the primary's, whose status code was code).
func (g *Gateway) mirrorGRPC(m *model, req *inferencepb.ModelInferRequest, resp *inferencepb.ModelInferResponse, code codes.Code) {
	count := g.mirrorCounter(m)
	if !g.mirrorSlot(count) {
		return
	}
	g.mirrorRun(m, count, func(ctx context.Context, t *target) {
		if t.r.grpc == "" {
			count("error")
			return
		}
		conn, err := g.grpcConn(t.r.grpc)
		if err != nil {
			count("error")
			return
		}
		t0 := time.Now()
		got, err := inferencepb.NewGRPCInferenceServiceClient(conn).ModelInfer(ctx, req)
		gc := status.Code(err)
		g.result(t, gc != codes.Unavailable && gc != codes.Internal && gc != codes.Unknown, time.Since(t0), time.Now())
		switch {
		case gc != code:
			count("status_mismatch")
		case code != codes.OK:
			count("match")
		default:
			g.mirrorCompared(m, count)(compareInfer(resp, got))
		}
	})
}

// compareInfer compares two gRPC answers as compareOutputs does JSON
// ones: the largest absolute difference of FP32/FP64 contents at the same
// place, and whether the outputs are equal (ignoring the model name,
// version and request id).
func compareInfer(a, b *inferencepb.ModelInferResponse) (float64, bool) {
	maxDiff := math.NaN()
	if len(a.Outputs) == len(b.Outputs) {
		for i := range a.Outputs {
			x, y := a.Outputs[i].GetContents(), b.Outputs[i].GetContents()
			xs, ys := x.GetFp64Contents(), y.GetFp64Contents()
			for j := range min(len(xs), len(ys)) {
				d := math.Abs(xs[j] - ys[j])
				if math.IsNaN(maxDiff) || d > maxDiff {
					maxDiff = d
				}
			}
			fs, gs := x.GetFp32Contents(), y.GetFp32Contents()
			for j := range min(len(fs), len(gs)) {
				d := math.Abs(float64(fs[j]) - float64(gs[j]))
				if math.IsNaN(maxDiff) || d > maxDiff {
					maxDiff = d
				}
			}
		}
	}
	ca, cb := proto.Clone(a).(*inferencepb.ModelInferResponse), proto.Clone(b).(*inferencepb.ModelInferResponse)
	for _, c := range []*inferencepb.ModelInferResponse{ca, cb} {
		c.ModelName, c.ModelVersion, c.Id = "", "", ""
	}
	return maxDiff, proto.Equal(ca, cb)
}
