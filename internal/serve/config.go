package serve

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
)

// Config configures a Server. Fields left zero take the documented default.
type Config struct {
	// Repository is a model repository directory (<model>/<version>/...) or
	// a single model file. Required.
	Repository string
	// Loaders maps a format name to its loader. Required.
	Loaders map[string]backend.Loader
	// Logger receives structured logs. Nil discards them.
	Logger *slog.Logger
	// Version is reported in server metadata. Empty reports "dev".
	Version string
	// DefaultModel is the model the founding example's POST /predict path
	// serves. Empty means the only model, when there is exactly one.
	DefaultModel string

	// HTTPAddr and GRPCAddr are the listen addresses used by Run. Empty
	// HTTPAddr means ":8080"; empty GRPCAddr means no gRPC listener.
	HTTPAddr string
	GRPCAddr string
	// MaxBodyBytes bounds a request body (413 beyond). Zero means 64 MiB.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading request headers. Zero means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds an idle keep-alive connection. Zero means 120s.
	IdleTimeout time.Duration
	// DefaultTimeout bounds a request that sets no timeout parameter. Zero
	// means no bound.
	DefaultTimeout time.Duration
	// DrainDelay is how long Run keeps serving, unready, after shutdown
	// begins, so load balancers stop sending new requests. Zero means none.
	DrainDelay time.Duration
	// GracePeriod bounds how long Run waits for in-flight requests after
	// shutdown begins. Zero means 30s.
	GracePeriod time.Duration
	// TLS, when set, serves REST as HTTPS and gRPC over TLS with it (set
	// ClientCAs and ClientAuth for mutual TLS). Nil means plain text.
	TLS *tls.Config
}

func (c *Config) validate() error {
	if c.Repository == "" {
		return errors.New("serve: Config.Repository is empty")
	}
	if len(c.Loaders) == 0 {
		return errors.New("serve: Config.Loaders is empty")
	}
	if c.MaxBodyBytes < 0 || c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 || c.DefaultTimeout < 0 || c.DrainDelay < 0 || c.GracePeriod < 0 {
		return errors.New("serve: Config limits must not be negative")
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = ":8080"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 20
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = 30 * time.Second
	}
	return nil
}

func (c *Config) formats() []string {
	return slices.Sorted(maps.Keys(c.Loaders))
}
