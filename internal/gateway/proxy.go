package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Header names the gateway reads or writes.
const (
	// HeaderRevision pins a request to a revision (request), and names
	// the revision that answered (response).
	HeaderRevision = "X-Shoal-Revision"
	// HeaderAPIKey carries an API key (as does "Authorization: Bearer").
	HeaderAPIKey = "X-Api-Key"
)

// Handler returns the REST handler: the inference paths routed to
// replicas (/v2/models/..., /v1/models/...:predict, /predict), the
// gateway's own health (/v2/health/live, /v2/health/ready) and /metrics.
func (g *Gateway) Handler() http.Handler {
	metrics := g.metrics.handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		var name string
		switch {
		case strings.HasPrefix(p, "/v2/models/"):
			name, _, _ = strings.Cut(p[len("/v2/models/"):], "/")
		case strings.HasPrefix(p, "/v1/models/") && r.Method == http.MethodPost:
			name, _, _ = strings.Cut(p[len("/v1/models/"):], ":")
		case p == "/predict" && r.Method == http.MethodPost:
			name = g.defaultModel()
			if name == "" {
				writeError(w, fmt.Errorf("%w: POST /predict needs a default model (the table has several)", ErrNoModel))
				return
			}
		case p == "/v2/health/live" || p == "/v2/health/ready":
			ready := p == "/v2/health/live" || g.Ready()
			code := http.StatusOK
			if !ready {
				code = http.StatusServiceUnavailable
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"%s":%t}`, p[len("/v2/health/"):], ready)
			return
		case p == "/metrics" && r.Method == http.MethodGet:
			metrics.ServeHTTP(w, r)
			return
		}
		if name == "" || strings.Contains(name, "..") {
			writeError(w, &httpError{http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, p)})
			return
		}
		if err := g.proxy(w, r, name); err != nil {
			writeError(w, err)
		}
	})
}

// defaultModel is the model of POST /predict.
func (g *Gateway) defaultModel() string {
	if g.cfg.DefaultModel != "" {
		return g.cfg.DefaultModel
	}
	ms := g.routes.Load().models
	if len(ms) == 1 {
		for n := range ms {
			return n
		}
	}
	return ""
}

// hopHeaders are removed from requests and responses, with the
// credentials the gateway consumed.
var hopHeaders = [...]string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// proxy sends one request to a replica of model name and copies the
// answer back, retrying when safe.
func (g *Gateway) proxy(w http.ResponseWriter, r *http.Request, name string) error {
	start := time.Now()
	if g.authOn() {
		if err := g.authorize(r.Header.Get, name, start); err != nil {
			g.metrics.rejected.WithLabelValues(g.label(name), rejectReason(err)).Inc()
			return err
		}
	}
	m, err := g.lookup(name)
	if err != nil {
		return err
	}
	body, err := readBody(r.Body, r.ContentLength, g.cfg.MaxBodyBytes)
	if err != nil {
		return err
	}
	buf := g.bufs.Get().(*buffer)
	defer func() { buf.trim(); g.bufs.Put(buf) }()
	h := r.Header
	if c := h["Connection"]; c != nil { // first the headers it names
		for _, f := range strings.Split(strings.Join(c, ","), ",") {
			h.Del(strings.TrimSpace(f))
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	rt := routing{model: name, pin: h.Get(HeaderRevision)}
	if sh := m.spec.StickyHeader; sh != "" {
		rt.sticky = h.Get(sh)
	}
	if g.authOn() {
		h.Del("Authorization")
		h.Del(HeaderAPIKey)
	}

	ctx, cancel := context.WithTimeout(r.Context(), m.timeout)
	defer cancel()
	ctl := m.ctl
	ctl.inflight.Add(1)
	ctl.requests.Add(1)
	defer ctl.inflight.Add(-1)
	ctl.budget.request(start)

	// The request line goes as the client sent it (origin form), else as
	// its URL says.
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		uri = r.URL.RequestURI()
	}
	send := func(ctx context.Context, t *target) (*http.Response, error) {
		if g.hop != nil {
			return g.hop.Send(ctx, t.r.http, r.Method, uri, h, body)
		}
		return g.cfg.Transport.RoundTrip(g.outRequest(ctx, t, r.Method, uri, h, body))
	}
	var exclude *replica
	for attempt := 0; ; attempt++ {
		t, err := g.pick(ctx, rt, exclude)
		if err != nil {
			return err
		}
		t0 := time.Now()
		var resp *http.Response
		if d := m.hedgeDelay(t.rev); d > 0 && attempt == 0 {
			o := g.hedged(ctx, rt, t, send, d, ctl)
			resp, err, t, t0 = o.resp, o.err, o.t, o.start
			defer o.cancel()
		} else {
			resp, err = send(ctx, t)
		}
		now := time.Now()
		if err != nil {
			if ctx.Err() != nil { // the client left or the timeout passed: not the replica's failure
				t.done()
				return ctx.Err()
			}
			g.result(t, false, 0, now)
			t.done()
			if g.canRetry(attempt, ctl, now) {
				exclude = t.r
				continue
			}
			g.log.Debug("replica unreachable", "model", name, "replica", t.r.http, "err", err)
			return ErrUpstream
		}
		if resp.StatusCode == http.StatusServiceUnavailable && g.canRetry(attempt, ctl, now) {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			g.result(t, false, 0, now)
			g.unready(t, now)
			t.done()
			exclude = t.r
			continue
		}
		err = g.respond(w, resp, t, buf)
		end := time.Now()
		// A copy error may be the client's as well as the replica's: only
		// the status judges the replica.
		ok := resp.StatusCode < 500 || resp.StatusCode == http.StatusGatewayTimeout
		g.result(t, ok, end.Sub(t0), end)
		if ok && m.spec.Hedge != nil {
			t.rev.lat.add(end.Sub(t0))
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			g.unready(t, end)
		}
		t.done()
		if resp.StatusCode == http.StatusOK {
			t.rev.okCount.Inc()
		} else {
			g.metrics.requests.WithLabelValues(name, t.rev.name, strconv.Itoa(resp.StatusCode)).Inc()
		}
		t.rev.latency.Observe(end.Sub(start).Seconds())
		if m.mirror != nil && m.mirror != t.rev && rand.Float64()*100 < m.mirrorPct {
			g.mirrorHTTP(r, m, body, buf.resp, resp.StatusCode)
		}
		if err != nil {
			g.log.Debug("copy response", "model", name, "err", err)
			return nil // the status line is gone: nothing more to say
		}
		return nil
	}
}

// hopSender is a Transport that sends a hop without an http.Request of
// its own (upstream.Transport, the default).
type hopSender interface {
	Send(ctx context.Context, host, method, uri string, h http.Header, body []byte) (*http.Response, error)
}

// outRequest returns the request to t's replica for a Config.Transport
// that is not a hopSender.
func (g *Gateway) outRequest(ctx context.Context, t *target, method, uri string, h http.Header, body []byte) *http.Request {
	u, err := url.ParseRequestURI(uri)
	if err != nil { // the server parsed it already
		u = &url.URL{Path: "/"}
	}
	u.Scheme, u.Host = g.scheme, t.r.http
	req := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          bodyOf(body),
		GetBody:       func() (io.ReadCloser, error) { return bodyOf(body), nil },
		ContentLength: int64(len(body)),
		Host:          t.r.http,
	}
	return req.WithContext(ctx)
}

// label returns name for a metric label if it is a routed model, and
// "unknown" otherwise, so that clients cannot grow the label set.
func (g *Gateway) label(name string) string {
	if _, err := g.lookup(name); err != nil {
		return "unknown"
	}
	return name
}

// canRetry reports whether another attempt may go (spending the budget).
func (g *Gateway) canRetry(attempt int, ctl *modelCtl, now time.Time) bool {
	if g.cfg.Retries < 0 || attempt >= g.cfg.Retries {
		return false
	}
	if !ctl.budget.retry(now) {
		g.metrics.retries.WithLabelValues(ctl.name, "budget_exhausted").Inc()
		return false
	}
	g.metrics.retries.WithLabelValues(ctl.name, "sent").Inc()
	return true
}

// respond copies resp to w and closes it. When the model mirrors
// traffic, the body is also kept in buf.resp for the comparison.
func (g *Gateway) respond(w http.ResponseWriter, resp *http.Response, t *target, buf *buffer) error {
	defer resp.Body.Close()
	wh := w.Header()
	for k, v := range resp.Header {
		wh[k] = v
	}
	for _, k := range hopHeaders {
		delete(wh, k)
	}
	wh[HeaderRevision] = t.rev.header
	w.WriteHeader(resp.StatusCode)
	if t.m.mirror != nil {
		buf.resp = buf.resp[:0]
		var err error
		buf.resp, err = appendAll(buf.resp, resp.Body, 64<<20)
		if _, werr := w.Write(buf.resp); err == nil {
			err = werr
		}
		return err
	}
	if resp.ContentLength >= 0 && resp.ContentLength <= int64(cap(buf.copy)) {
		n, err := io.ReadFull(resp.Body, buf.copy[:resp.ContentLength])
		if err != nil {
			return err
		}
		_, err = w.Write(buf.copy[:n])
		return err
	}
	_, err := io.CopyBuffer(w, resp.Body, buf.copy[:cap(buf.copy)])
	return err
}

// httpError is an error with its own status code.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

// writeError writes err as {"error": "..."} with its status code.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.As(err, &mbe):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrNoModel), errors.Is(err, ErrNoRevision):
		code = http.StatusNotFound
	case errors.Is(err, ErrOverloaded), errors.Is(err, ErrScaledToZero):
		code = http.StatusServiceUnavailable
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, ErrRateLimited):
		code = http.StatusTooManyRequests
		w.Header().Set("Retry-After", "1")
	case errors.Is(err, ErrUnauthenticated):
		code = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", `Bearer realm="shoal"`)
	case errors.Is(err, ErrForbidden):
		code = http.StatusForbidden
	case errors.Is(err, ErrUpstream):
		code = http.StatusBadGateway
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		code = 499 // the client went away; nobody reads this
	}
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}
