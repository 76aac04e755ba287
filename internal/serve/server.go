// Package serve is the model server: it loads the models of a model
// repository through backend loaders, keeps their versions, runs inference
// requests against them, and answers the Open Inference Protocol v2 over
// REST and gRPC (plus the KServe V1 and founding /predict paths). It does no
// routing between replicas (that is the gateway); batching across requests
// is package batch's, wired in here per model by model.yaml.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/oip"
)

// Errors returned by Server methods; the HTTP and gRPC adapters map each to
// a status code.
var (
	// ErrModelNotFound: no such model or version in the repository (404).
	ErrModelNotFound = errors.New("serve: model not found")
	// ErrModelNotReady: the model exists but has no ready version (503).
	ErrModelNotReady = errors.New("serve: model not ready")
	// ErrBadConfig: the model repository or model.yaml is invalid.
	ErrBadConfig = errors.New("serve: bad model configuration")
	// ErrTimeout: the request's timeout passed before it finished (504).
	ErrTimeout = errors.New("serve: request timed out")
)

// Model states reported by the repository index (Triton's names).
const (
	StateReady       = "READY"
	StateLoading     = "LOADING"
	StateUnloading   = "UNLOADING"
	StateUnavailable = "UNAVAILABLE"
)

// Server serves the models of one repository. Create it with New; it is safe
// for concurrent use. Close unloads every model.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	ready   atomic.Bool // initial load finished and not draining; set with setReady

	healthMu sync.Mutex
	health   []*health.Server // gRPC health servers to keep in step with ready

	mu     sync.RWMutex
	models map[string]*model

	loadMu sync.Mutex
	locks  map[string]*sync.Mutex // per model: serialises Load and Unload

	arriving sync.Map // model name -> *atomic.Int64, REST requests being read (batching.go)
}

// model is one model name: its serving versions and load status. Guarded by
// Server.mu.
type model struct {
	versions map[int64]*version // serving versions
	def      *version           // the highest serving version
	state    string             // of the model as a whole, for the index
	reason   string             // why it is not READY
}

// version is one loaded model version.
type version struct {
	name     string
	num      int64
	label    string // num as a string
	format   string
	m        backend.Model
	sig      backend.Signature
	inputs   map[string]int // input name -> index in sig.Inputs
	outputs  map[string]int
	sem      chan struct{}   // bounds concurrent executions; nil = unbounded
	batcher  *versionBatcher // nil: no batching
	metrics  *versionMetrics
	inflight sync.WaitGroup
}

// New returns a server for cfg. It loads nothing: call LoadAll (or Run,
// which does).
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:     cfg,
		log:     log,
		metrics: newMetrics(),
		models:  map[string]*model{},
		locks:   map[string]*sync.Mutex{},
	}, nil
}

// Live reports whether the server process is up; always true.
func (s *Server) Live() bool { return true }

// Ready reports whether the initial load has finished and the server is not
// shutting down.
func (s *Server) Ready() bool { return s.ready.Load() }

// LoadAll loads every model of the repository concurrently and then marks
// the server ready. A model that fails to load is reported in the index and
// does not stop the others; LoadAll returns the joined errors only for
// information.
func (s *Server) LoadAll(ctx context.Context) error {
	srcs, err := scanRepository(s.cfg.Repository)
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for name := range srcs {
		wg.Go(func() {
			if err := s.Load(ctx, name); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.setReady(true)
	return errors.Join(errs...)
}

func (s *Server) lockModel(name string) func() {
	s.loadMu.Lock()
	l, ok := s.locks[name]
	if !ok {
		l = &sync.Mutex{}
		s.locks[name] = l
	}
	s.loadMu.Unlock()
	l.Lock()
	return l.Unlock
}

// Load (re)loads the model name from the repository: every version its
// version policy selects. The versions already serving keep serving until
// the new set is ready, then are swapped out atomically and drained. If any
// version fails to load, the old set keeps serving and Load returns the
// error. It returns ErrModelNotFound if the repository has no such model.
func (s *Server) Load(ctx context.Context, name string) error {
	defer s.lockModel(name)()
	srcs, err := scanRepository(s.cfg.Repository)
	if err != nil {
		return err
	}
	src, ok := srcs[name]
	if !ok {
		return fmt.Errorf("%w: %q is not in the repository", ErrModelNotFound, name)
	}
	s.setState(name, StateLoading, "")
	plans, err := src.plan()
	if err != nil {
		err = fmt.Errorf("%w: model %q: %w", ErrBadConfig, name, err)
		s.loadFailed(name, err)
		return err
	}
	loaded := make(map[int64]*version, len(plans))
	for _, p := range plans {
		v, err := s.loadVersion(ctx, p)
		if err != nil {
			for _, v := range loaded {
				s.closeVersion(v)
			}
			err = fmt.Errorf("load model %q version %d: %w", name, p.version, err)
			s.loadFailed(name, err)
			return err
		}
		loaded[p.version] = v
	}
	s.mu.Lock()
	m := s.models[name]
	old := m.versions
	m.versions = loaded
	m.def = nil
	for _, v := range loaded {
		if m.def == nil || v.num > m.def.num {
			m.def = v
		}
	}
	m.state, m.reason = StateReady, ""
	s.mu.Unlock()
	for _, v := range old {
		s.drain(v)
	}
	s.log.Info("model ready", "model", name, "versions", versionList(loaded))
	return nil
}

func (s *Server) loadVersion(ctx context.Context, p versionPlan) (*version, error) {
	load, ok := s.cfg.Loaders[p.cfg.Format]
	if !ok {
		return nil, fmt.Errorf("%w: unknown format %q (known: %v)", ErrBadConfig, p.cfg.Format, s.cfg.formats())
	}
	start := time.Now()
	bm, err := load(ctx, p.cfg)
	if err != nil {
		return nil, err
	}
	sig := bm.Signature()
	v := &version{
		name: p.cfg.Name, num: p.version, label: strconv.FormatInt(p.version, 10),
		format: p.cfg.Format, m: bm, sig: sig,
		inputs: map[string]int{}, outputs: map[string]int{},
	}
	for i, t := range sig.Inputs {
		v.inputs[t.Name] = i
	}
	for i, t := range sig.Outputs {
		v.outputs[t.Name] = i
	}
	v.metrics = s.metrics.forVersion(v.name, v.label)
	switch {
	case p.batching != nil:
		// The batcher bounds the concurrent executions itself.
		if v.batcher, err = s.newBatcher(v, p.batching, p.limit); err != nil {
			s.closeVersion(v)
			return nil, err
		}
	case p.limit > 0:
		v.sem = make(chan struct{}, p.limit)
	}
	s.metrics.loadSeconds.WithLabelValues(v.name, v.label).Set(time.Since(start).Seconds())
	return v, nil
}

func (s *Server) setState(name, state, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.models[name]
	if !ok {
		m = &model{}
		s.models[name] = m
	}
	if len(m.versions) == 0 || state != StateLoading {
		m.state, m.reason = state, reason
	}
}

func (s *Server) loadFailed(name string, err error) {
	s.log.Error("model load failed", "model", name, "err", err)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.models[name]
	if len(m.versions) == 0 {
		m.state = StateUnavailable
	}
	m.reason = err.Error()
}

// Unload stops serving model name. Requests already running finish first;
// Unload returns after they have, or when ctx is done. It returns
// ErrModelNotFound if the model is not known.
func (s *Server) Unload(ctx context.Context, name string) error {
	defer s.lockModel(name)()
	s.mu.Lock()
	m, ok := s.models[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	old := m.versions
	m.versions, m.def = nil, nil
	m.state, m.reason = StateUnavailable, "unloaded"
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, v := range old {
			s.drain(v)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.log.Info("model unloaded", "model", name)
	return nil
}

// drain waits for v's in-flight requests and closes it. v must already be
// unreachable from s.models.
func (s *Server) drain(v *version) {
	v.inflight.Wait()
	s.closeVersion(v)
}

func (s *Server) closeVersion(v *version) {
	if v.batcher != nil {
		v.batcher.close()
	}
	if c, ok := v.m.(backend.Closer); ok {
		if err := c.Close(); err != nil {
			s.log.Warn("model close", "model", v.name, "version", v.num, "err", err)
		}
	}
}

// acquire finds the serving version and counts a request in flight on it;
// the caller must call v.inflight.Done.
func (s *Server) acquire(name, ver string) (*version, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, err := s.lookupLocked(name, ver)
	if err != nil {
		return nil, err
	}
	v.inflight.Add(1)
	return v, nil
}

func (s *Server) lookupLocked(name, ver string) (*version, error) {
	m, ok := s.models[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	if ver == "" {
		if m.def == nil {
			return nil, notReady(name, m)
		}
		return m.def, nil
	}
	n, err := strconv.ParseInt(ver, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: model %q has no version %q (versions are integers)", ErrModelNotFound, name, ver)
	}
	v, ok := m.versions[n]
	if !ok {
		if m.def == nil {
			return nil, notReady(name, m)
		}
		return nil, fmt.Errorf("%w: model %q has no version %q serving (serving: %v)", ErrModelNotFound, name, ver, versionList(m.versions))
	}
	return v, nil
}

func notReady(name string, m *model) error {
	if m.reason != "" {
		return fmt.Errorf("%w: %q is %s: %s", ErrModelNotReady, name, m.state, m.reason)
	}
	return fmt.Errorf("%w: %q is %s", ErrModelNotReady, name, m.state)
}

func versionList(vs map[int64]*version) []int64 {
	out := make([]int64, 0, len(vs))
	for n := range vs {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// readier is implemented by backend models whose readiness can change
// after load (a supervised process restarting, a worker pool empty).
type readier interface{ Ready() bool }

// ModelReady reports whether the model (and version, if not empty) is
// serving, and, for a backend model with a Ready method, whether that says
// ready now. It returns ErrModelNotFound for a model the server never saw.
func (s *Server) ModelReady(name, ver string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, err := s.lookupLocked(name, ver)
	if errors.Is(err, ErrModelNotReady) {
		return false, nil
	}
	if err == nil {
		if r, ok := v.m.(readier); ok && !r.Ready() {
			return false, nil
		}
	}
	if err != nil && ver != "" {
		if _, known := s.models[name]; known {
			return false, nil
		}
	}
	return err == nil, err
}

// signature returns the signature of model name's default version. It is
// ModelMetadata without the version list, for the V1 paths that need it on
// every request.
func (s *Server) signature(name string) (backend.Signature, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, err := s.lookupLocked(name, "")
	if err != nil {
		return backend.Signature{}, err
	}
	return v.sig, nil
}

// ServerMetadata is the answer to GET /v2.
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// Metadata returns the server metadata.
func (s *Server) Metadata() ServerMetadata {
	return ServerMetadata{Name: "shoal", Version: s.cfg.Version, Extensions: oip.Extensions}
}

// ModelMetadata describes a model version (the default one if ver is empty).
type ModelMetadata struct {
	Name     string
	Versions []string
	Platform string
	Inputs   []backend.TensorSpec
	Outputs  []backend.TensorSpec
}

// ModelMetadata returns the metadata of a serving model version.
func (s *Server) ModelMetadata(name, ver string) (ModelMetadata, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, err := s.lookupLocked(name, ver)
	if err != nil {
		return ModelMetadata{}, err
	}
	md := ModelMetadata{Name: name, Platform: v.format, Inputs: v.sig.Inputs, Outputs: v.sig.Outputs}
	if ver != "" {
		md.Versions = []string{v.label}
	} else {
		for _, n := range versionList(s.models[name].versions) {
			md.Versions = append(md.Versions, strconv.FormatInt(n, 10))
		}
	}
	return md, nil
}

// IndexEntry is one row of the repository index.
type IndexEntry struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	State   string `json:"state,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Index lists the models of the repository and their state; with readyOnly
// only the serving versions.
func (s *Server) Index(readyOnly bool) ([]IndexEntry, error) {
	srcs, err := scanRepository(s.cfg.Repository)
	if err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []IndexEntry
	names := make([]string, 0, len(srcs))
	for n := range srcs {
		names = append(names, n)
	}
	for n := range s.models {
		if _, ok := srcs[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		m, ok := s.models[n]
		if !ok {
			if !readyOnly {
				out = append(out, IndexEntry{Name: n, State: StateUnavailable, Reason: "not loaded"})
			}
			continue
		}
		for _, num := range versionList(m.versions) {
			out = append(out, IndexEntry{Name: n, Version: strconv.FormatInt(num, 10), State: StateReady})
		}
		if len(m.versions) == 0 && !readyOnly {
			out = append(out, IndexEntry{Name: n, State: m.state, Reason: m.reason})
		}
	}
	return out, nil
}

// Close stops serving: the server turns unready and every model is drained
// and closed. It returns when all are closed or ctx is done.
func (s *Server) Close(ctx context.Context) error {
	s.setReady(false)
	s.mu.RLock()
	names := make([]string, 0, len(s.models))
	for n := range s.models {
		names = append(names, n)
	}
	s.mu.RUnlock()
	var errs []error
	for _, n := range names {
		if err := s.Unload(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
