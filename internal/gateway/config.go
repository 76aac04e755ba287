package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/shoal-ml/shoal/internal/balance"
	"github.com/shoal-ml/shoal/internal/gateway/upstream"
)

// Config configures a Gateway. Fields left zero take the documented
// default; New validates it.
type Config struct {
	// Source discovers the routing table. Required.
	Source Source
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger

	// Timeout bounds a request end to end (queueing, retries and the
	// replica's answer) when its model sets none. Zero means 30s.
	Timeout time.Duration
	// MaxConcurrency is the most requests in flight to one replica when
	// the model sets none. Zero means 64.
	MaxConcurrency int
	// QueueDepth is how many requests may wait per revision when every
	// replica is at MaxConcurrency; beyond it requests get 503 with
	// Retry-After at once. Zero means 256; negative means no queue.
	QueueDepth int
	// QueueTimeout bounds the wait in that queue. Zero means 1s.
	QueueTimeout time.Duration

	// Retries is the most retries of one request, each on another
	// replica, and only when safe: the connection failed before any
	// response byte, or the replica answered 503 (draining or not ready).
	// Zero means 2; negative disables retries.
	Retries int
	// RetryBudget is the share of live traffic that retries may add: each
	// request earns RetryBudget of a retry. Zero means 0.2.
	RetryBudget float64
	// MinRetriesPerSecond lets this many retries per second through
	// regardless of the budget, so that quiet models can retry too. Zero
	// means 10.
	MinRetriesPerSecond float64

	// Eject configures passive outlier ejection (zero: its defaults).
	Eject balance.EjectConfig
	// ProbeInterval is the period of the active readiness probe of every
	// replica (GET /v2/models/{model}/ready). Zero means 2s; negative
	// disables probes (replicas are then ready from discovery on).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe. Zero means 1s.
	ProbeTimeout time.Duration

	// ActivatorQueue is how many requests per model may wait while the
	// model has no ready replica. Zero means 1024; negative rejects them
	// at once.
	ActivatorQueue int
	// ActivatorTimeout bounds that wait (and the request's own timeout
	// still applies). Zero means 60s.
	ActivatorTimeout time.Duration
	// ScaleUp asks for replicas of a model that has none ready; the
	// gateway calls it (at most once at a time per model) when a request
	// arrives for such a model, and releases waiting requests once the
	// routing table gives the model a ready replica. Nil means requests
	// only wait for the table to change.
	ScaleUp func(ctx context.Context, model string) error

	// DefaultModel is the model that POST /predict routes to. Empty means
	// the only model of the table when there is exactly one.
	DefaultModel string

	// Keys are the API keys accepted. Empty means no authentication (and
	// no per-key rate limit).
	Keys []APIKey
	// JWT, when set, also accepts JSON Web Tokens as Bearer credentials.
	// Nil means only API keys (if any) are accepted.
	JWT *JWTConfig

	// MaxBodyBytes bounds a request body (413 beyond). Zero means 64 MiB.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading a request's headers. Zero: 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds an idle client keep-alive connection. Zero: 120s.
	IdleTimeout time.Duration
	// TLS, when set, serves HTTPS and gRPC over TLS with it. Nil means
	// plain text.
	TLS *tls.Config
	// LeanHTTP serves REST with package h1's HTTP/1.1 server instead of
	// net/http's: less CPU per request, no HTTP/2, and a client that
	// leaves is noticed only once its request has run for 50 ms. Plain
	// text only: with TLS it is an error.
	LeanHTTP bool
	// ReplicaTLS, when set, dials replicas over TLS with it, REST (https)
	// and gRPC alike: RootCAs verifies the replicas' certificates (whose
	// names must match the host of each replica address unless ServerName
	// is set), and Certificates holds the gateway's client certificate
	// for mutual TLS. Nil means plain text to replicas.
	ReplicaTLS *tls.Config
	// Transport sends REST requests (and probes) to replicas; with
	// ReplicaTLS it gets https URLs. Nil means upstream.New(), a lean
	// HTTP/1.1 client that costs less CPU per request than http.Transport
	// (see BenchmarkProxy), dialing with ReplicaTLS.
	Transport http.RoundTripper
	// GracePeriod bounds how long Serve waits for in-flight requests
	// after ctx is done. Zero means 30s.
	GracePeriod time.Duration
}

func (c *Config) validate() error {
	if c.Source == nil {
		return errors.New("gateway: Config.Source is nil")
	}
	if c.Timeout < 0 || c.MaxConcurrency < 0 || c.QueueTimeout < 0 || c.RetryBudget < 0 || c.MinRetriesPerSecond < 0 ||
		c.ProbeTimeout < 0 || c.ActivatorTimeout < 0 || c.MaxBodyBytes < 0 || c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 || c.GracePeriod < 0 {
		return errors.New("gateway: Config limits must not be negative")
	}
	if c.LeanHTTP && c.TLS != nil {
		return errors.New("gateway: Config.LeanHTTP serves plain text only: it cannot go with TLS")
	}
	if err := c.Eject.Validate(); err != nil {
		return err
	}
	for i, k := range c.Keys {
		if err := k.validate(); err != nil {
			return err
		}
		c.Keys[i] = k
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Timeout, 30*time.Second)
	def(&c.QueueTimeout, time.Second)
	def(&c.ProbeInterval, 2*time.Second)
	def(&c.ProbeTimeout, time.Second)
	def(&c.ActivatorTimeout, 60*time.Second)
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.GracePeriod, 30*time.Second)
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = 64
	}
	if c.QueueDepth == 0 {
		c.QueueDepth = 256
	}
	if c.Retries == 0 {
		c.Retries = 2
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = 0.2
	}
	if c.MinRetriesPerSecond == 0 {
		c.MinRetriesPerSecond = 10
	}
	if c.ActivatorQueue == 0 {
		c.ActivatorQueue = 1024
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.Transport == nil {
		t := upstream.New()
		t.TLS = c.ReplicaTLS
		c.Transport = t
	}
	return nil
}
