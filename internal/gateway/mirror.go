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
)

// mirrorHTTP sends a copy of a request to m's mirror revision in the
// background, compares its answer with the primary's (status, then
// outputs) and counts the result; the copy's answer is discarded. At
// most Config.MaxConcurrency mirrored requests per gateway are in
// flight; beyond that copies are dropped (and counted).
func (g *Gateway) mirrorHTTP(r *http.Request, m *model, body, primaryResp []byte, status int) {
	rev := m.mirror
	count := func(result string) { g.metrics.mirror.WithLabelValues(m.name, rev.name, result).Inc() }
	select {
	case <-g.quit: // shutting down
		count("dropped")
		return
	default:
	}
	select {
	case g.mirrorSlots <- struct{}{}:
	default:
		count("dropped")
		return
	}
	want := bytes.Clone(primaryResp) // primaryResp is pooled; body is not
	h := r.Header.Clone()
	h.Del(HeaderRevision)
	u := url.URL{Scheme: "http", Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	method := r.Method
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
		t, err := g.pick(ctx, routing{model: m.name, pin: rev.name}, nil)
		if err != nil {
			count("error")
			return
		}
		defer t.done()
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
			diff, same := compareOutputs(want, got)
			if !math.IsNaN(diff) {
				g.metrics.mirrorDiff.WithLabelValues(m.name, rev.name).Observe(diff)
			}
			if same {
				count("match")
			} else {
				count("output_mismatch")
			}
		}
	})
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
