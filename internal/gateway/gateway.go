// Package gateway is shoal's front door: it routes Open Inference
// Protocol v2 requests (REST and gRPC, plus the KServe V1 and /predict
// compatibility paths) by model and revision to the replicas of a
// routing table that a Source discovers; balances them with the policies
// of internal/balance; splits, pins, sticks and mirrors traffic between
// revisions; retries safely within a budget; ejects failing replicas;
// bounds concurrency with a queue; holds requests for models scaled to
// zero (the activator); authenticates and rate-limits API keys; and
// reports per-model and per-replica load for the autoscaler.
//
// It never sends a request anywhere but to an address of the routing
// table. It does not start or stop replicas: Config.ScaleUp is how it
// asks for them.
package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-ml/shoal/internal/balance"
	"github.com/shoal-ml/shoal/internal/gateway/h1"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Gateway routes inference requests to replicas. Create it with New, run
// its discovery and health checks with Run (or Serve, which also serves),
// and serve Handler and GRPCServer. Its methods are safe for concurrent
// use.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	keys    *keyring     // nil: no API keys
	jwt     *jwtVerifier // nil: no JWT

	scheme string    // of replica URLs: "http", or "https" with ReplicaTLS
	hop    hopSender // cfg.Transport when it is one: REST hops without a request copy

	routes atomic.Pointer[routes]
	loaded chan struct{} // closed on the first table
	once   sync.Once

	mu    sync.Mutex
	ctls  map[string]*modelCtl        // by model name, never removed while the model is routed
	conns map[string]*grpc.ClientConn // by replica gRPC address
	bufs  sync.Pool

	mirrorSlots chan struct{}  // bounds mirrored requests in flight
	background  sync.WaitGroup // mirrored requests, awaited by Run
	quit        chan struct{}  // closed when Run ends: cancels them
	quitOnce    sync.Once
}

// New validates cfg and returns a gateway with an empty routing table.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	jv, err := newJWTVerifier(cfg.JWT)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg:    cfg,
		log:    log,
		scheme: "http",
		loaded: make(chan struct{}),
		ctls:   map[string]*modelCtl{},
		conns:  map[string]*grpc.ClientConn{},
		keys:   newKeyring(cfg.Keys),
		jwt:    jv,

		mirrorSlots: make(chan struct{}, cfg.MaxConcurrency),
		quit:        make(chan struct{}),
	}
	if cfg.ReplicaTLS != nil {
		g.scheme = "https"
	}
	g.hop, _ = cfg.Transport.(hopSender)
	g.bufs.New = newBuffer
	g.metrics = newMetrics(g)
	g.routes.Store(&routes{table: &Table{}, models: map[string]*model{}})
	return g, nil
}

// Ready reports whether the gateway has a routing table.
func (g *Gateway) Ready() bool {
	select {
	case <-g.loaded:
		return true
	default:
		return false
	}
}

// Loaded returns a channel closed once the first routing table is in
// use.
func (g *Gateway) Loaded() <-chan struct{} { return g.loaded }

// Table returns the routing table in use.
func (g *Gateway) Table() *Table { return g.routes.Load().table }

// Run watches the Source and probes replicas until ctx is done or the
// source fails; then it cancels the mirrored requests still in flight. It
// returns after its goroutines have exited, with the source's error if
// any. Call it once.
func (g *Gateway) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		err := g.cfg.Source.Watch(ctx, g.apply)
		if err == nil && ctx.Err() == nil {
			err = errors.New("gateway: source stopped")
		}
		return err
	})
	eg.Go(func() error {
		var tick <-chan time.Time
		if g.cfg.ProbeInterval > 0 {
			t := time.NewTicker(g.cfg.ProbeInterval)
			defer t.Stop()
			tick = t.C
		} else {
			t := time.NewTicker(time.Second) // ejections still expire
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-tick:
				g.check(ctx, now)
			}
		}
	})
	err := eg.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil
	}
	g.quitOnce.Do(func() { close(g.quit) })
	g.background.Wait()
	g.mu.Lock()
	for a, c := range g.conns {
		c.Close()
		delete(g.conns, a)
	}
	g.mu.Unlock()
	return err
}

// Serve runs the gateway (see Run) and serves REST on hl and gRPC on gl
// (nil: none), over TLS when Config.TLS is set, until ctx is done; then
// it stops accepting, gives in-flight requests Config.GracePeriod and
// returns after everything has stopped.
func (g *Gateway) Serve(ctx context.Context, hl, gl net.Listener) error {
	var hs interface {
		Serve(net.Listener) error
		Shutdown(context.Context) error
	}
	if g.cfg.LeanHTTP {
		hs = &h1.Server{
			Handler:           g.Handler(),
			ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
			IdleTimeout:       g.cfg.IdleTimeout,
			Log:               g.log,
		}
	} else {
		hs = &http.Server{
			Handler:           g.Handler(),
			ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
			IdleTimeout:       g.cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
			TLSConfig:         g.cfg.TLS,
		}
	}
	var gs *grpc.Server
	if gl != nil {
		gs = g.GRPCServer()
	}
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return g.Run(ctx) })
	eg.Go(func() error {
		var err error
		if g.cfg.TLS != nil {
			err = hs.(*http.Server).ServeTLS(hl, "", "")
		} else {
			err = hs.Serve(hl)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	})
	if gs != nil {
		eg.Go(func() error { return gs.Serve(gl) })
	}
	eg.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.GracePeriod)
		defer cancel()
		err := hs.Shutdown(sctx)
		if gs != nil {
			done := make(chan struct{})
			go func() { gs.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-sctx.Done():
				gs.Stop()
			}
		}
		return err
	})
	return eg.Wait()
}

// apply installs a new routing table, carrying over the state of the
// replicas and revisions that did not change.
func (g *Gateway) apply(t *Table) {
	now := time.Now()
	old := g.routes.Load()
	nr := &routes{table: t, models: make(map[string]*model, len(t.Models))}
	g.mu.Lock()
	for name, spec := range t.Models {
		ctl := g.ctls[name]
		if ctl == nil {
			ctl = &modelCtl{name: name, budget: newBudget(g.cfg.RetryBudget, g.cfg.MinRetriesPerSecond)}
			g.ctls[name] = ctl
		}
		m := &model{name: name, spec: spec, byName: map[string]*revision{}, ctl: ctl, timeout: time.Duration(spec.Timeout)}
		if m.timeout == 0 {
			m.timeout = g.cfg.Timeout
		}
		switch spec.Policy {
		case "least_request":
			m.policy = balance.LeastRequest
		case "round_robin":
			m.policy = balance.RoundRobin()
		default:
			m.policy = balance.P2C
		}
		if om := old.models[name]; om != nil && om.spec.Policy == spec.Policy {
			m.policy = om.policy // keep round robin's position
		}
		limit := spec.MaxConcurrency
		if limit == 0 {
			limit = g.cfg.MaxConcurrency
		}
		for _, rs := range spec.Revisions {
			rev := g.buildRevision(old, m, rs, int64(limit), now)
			m.revs = append(m.revs, rev)
			m.byName[rs.Name] = rev
			if rs.Weight > 0 {
				m.total += rs.Weight
				m.weighted = append(m.weighted, rev)
				m.cumWeight = append(m.cumWeight, m.total)
			}
		}
		if spec.Mirror != nil && spec.Mirror.Percent > 0 {
			m.mirror, m.mirrorPct = m.byName[spec.Mirror.Revision], spec.Mirror.Percent
		}
		nr.models[name] = m
	}
	for name := range g.ctls {
		if _, ok := t.Models[name]; !ok {
			delete(g.ctls, name)
		}
	}
	// Close the gRPC connections of replicas that left, after the grace
	// period so that their in-flight calls finish.
	live := map[string]bool{}
	for _, m := range t.Models {
		for _, r := range m.Revisions {
			for _, rep := range r.Replicas {
				live[rep.GRPC] = true
			}
		}
	}
	for a, c := range g.conns {
		if !live[a] {
			delete(g.conns, a)
			time.AfterFunc(g.cfg.GracePeriod, func() { c.Close() })
		}
	}
	g.mu.Unlock()
	g.routes.Store(nr)
	g.once.Do(func() { close(g.loaded) })
	for _, m := range nr.models {
		if m.hasReady() {
			m.ctl.act.release()
		}
	}
	g.log.Info("routing table applied", "models", len(nr.models))
}

func (g *Gateway) buildRevision(old *routes, m *model, rs Revision, limit int64, now time.Time) *revision {
	var prev map[string]*replica
	var prevRev *revision
	if om := old.models[m.name]; om != nil {
		if prevRev = om.byName[rs.Name]; prevRev != nil {
			prev = map[string]*replica{}
			for _, r := range prevRev.replicas {
				prev[r.http] = r
			}
		}
	}
	rev := &revision{name: rs.Name, header: []string{rs.Name}, model: m, byB: map[*balance.Replica]*replica{}}
	addrs := make([]string, 0, len(rs.Replicas))
	for _, spec := range rs.Replicas {
		r := prev[spec.HTTP]
		if r == nil || r.grpc != spec.GRPC || r.b.Limit != limit {
			r = &replica{b: balance.NewReplica(spec.HTTP, limit), http: spec.HTTP, grpc: spec.GRPC}
			r.ready.Store(true)
		}
		rev.replicas = append(rev.replicas, r)
		rev.byB[r.b] = r
		addrs = append(addrs, spec.HTTP)
	}
	// Keep the ejection state when the replica set did not change.
	if prevRev != nil && slices.EqualFunc(prevRev.replicas, rev.replicas, func(a, b *replica) bool { return a == b }) {
		rev.outliers = prevRev.outliers
		rev.wake = prevRev.wake
	} else {
		rev.outliers = balance.NewOutliers(g.cfg.Eject, addrs)
		rev.wake = make(chan struct{}, max(g.cfg.QueueDepth, 1))
	}
	rev.okCount = g.metrics.requests.WithLabelValues(m.name, rs.Name, "200")
	rev.latency = g.metrics.latency.WithLabelValues(m.name, rs.Name)
	rev.refresh(now)
	return rev
}

// check probes every replica, expires ejections, judges latency
// outliers, and releases the activator of models that became ready.
func (g *Gateway) check(ctx context.Context, now time.Time) {
	rt := g.routes.Load()
	if g.cfg.ProbeInterval > 0 {
		var wg sync.WaitGroup
		for _, m := range rt.models {
			for _, rev := range m.revs {
				for _, r := range rev.replicas {
					wg.Add(1)
					go func() {
						defer wg.Done()
						r.ready.Store(g.probe(ctx, m.name, r.http))
					}()
				}
			}
		}
		wg.Wait()
	}
	for _, m := range rt.models {
		for _, rev := range m.revs {
			lat := map[string]time.Duration{}
			for _, r := range rev.replicas {
				if v := r.ewma.Load(); v > 0 {
					lat[r.http] = time.Duration(v)
				}
			}
			rev.mu.Lock()
			ej := rev.outliers.Latency(now, lat)
			rev.mu.Unlock()
			for _, a := range ej {
				g.log.Warn("replica ejected: latency outlier", "model", m.name, "revision", rev.name, "replica", a)
				g.metrics.ejections.WithLabelValues(m.name, rev.name, "latency").Inc()
			}
			rev.refresh(now)
			if h := m.spec.Hedge; h != nil && h.After == 0 {
				q := h.Percentile
				if q == 0 {
					q = 95
				}
				rev.hedgeAfter.Store(int64(rev.lat.percentile(q)))
			}
		}
		if m.hasReady() {
			m.ctl.act.release()
		}
	}
}

// probe asks a replica whether it can serve model.
func (g *Gateway) probe(ctx context.Context, model, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", g.scheme+"://"+addr+"/v2/models/"+model+"/ready", nil)
	if err != nil {
		return false
	}
	resp, err := g.cfg.Transport.RoundTrip(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// grpcConn returns the shared client connection to a replica's gRPC
// address.
func (g *Gateway) grpcConn(addr string) (*grpc.ClientConn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.conns[addr]; c != nil {
		return c, nil
	}
	creds := insecure.NewCredentials()
	if g.cfg.ReplicaTLS != nil {
		creds = credentials.NewTLS(g.cfg.ReplicaTLS)
	}
	c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(int(min(g.cfg.MaxBodyBytes*4, 1<<31-1)))))
	if err != nil {
		return nil, err
	}
	g.conns[addr] = c
	return c, nil
}

// rnd returns a random number for the policies.
func rnd() uint64 { return rand.Uint64() }

// newTransport returns a net/http transport tuned for replicas
// (keep-alive pools large enough for MaxConcurrency per replica, no proxy
// from the environment, no compression): the baseline the gateway's own
// client is benchmarked against.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: 0,
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
}
