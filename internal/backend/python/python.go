// Package python is the python backend: shoal runs the model's Python for
// it, in a pool of worker processes. A model is either a pickled
// scikit-learn estimator (model.pkl; predict or predict_proba) or a user
// module defining a class with load() and predict(inputs), where inputs is
// a dict of numpy arrays by input name and the result is an array (or list)
// for one output, or a dict or tuple of them for several.
//
// The worker script ships inside the binary (worker.py, embedded) and needs
// only Python 3 and numpy. Workers speak a compact framed protocol over two
// pipes; tensors cross as raw little-endian bytes, never JSON. Each worker
// handles one request at a time; a worker that dies, hangs past the time
// limit or grows past the memory limit is killed and replaced, and the
// request it had fails with an error wrapping ErrWorkerFailed.
//
// Loading a pickle runs code it contains, so it is refused unless the
// model's parameters say allow_pickle: "true". The package does not batch
// itself: with batchable: "true" it lets the server batch (package batch).
// It does not sandbox the model's code.
package python

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/procsup"
	"github.com/shoal-ml/shoal/internal/tensor"
)

//go:embed worker.py
var workerScript []byte

// Errors returned by this package.
var (
	// ErrConfig is wrapped by Load for model.yaml settings it cannot use.
	ErrConfig = errors.New("python: bad configuration")
	// ErrPickleNotAllowed is wrapped by Load for a pickle whose model does
	// not set allow_pickle.
	ErrPickleNotAllowed = errors.New("python: loading a pickle runs code it contains")
	// ErrLoad is wrapped by Load when the model's Python failed to load
	// (load() raised, the pickle did not unpickle); the message is the
	// Python exception.
	ErrLoad = errors.New("python: model failed to load")
	// ErrWorkerFailed is wrapped by Infer when the worker handling the
	// request died, hung past the time limit or exceeded the memory limit;
	// it has been replaced. Servers answer 500.
	ErrWorkerFailed = errors.New("python: worker failed")
)

// settings are the model.yaml parameters of the python backend.
type settings struct {
	python       string
	pickle       string // artifact path, for a pickle
	module       string // module path, for a class
	class        string
	method       string
	allowPickle  bool
	batchable    bool
	workers      int
	timeout      time.Duration
	loadTimeout  time.Duration
	maxMemory    int64 // bytes; 0: no limit
	grace        time.Duration
	pollInterval time.Duration
}

const paramList = "python, module, class, method, allow_pickle, batchable, workers, timeout, load_timeout, max_memory_mb, grace_period"

func parseSettings(cfg backend.Config) (settings, error) {
	p := cfg.Parameters
	s := settings{
		python: "/usr/bin/python3", class: "Model", method: "predict",
		workers: runtime.NumCPU(), timeout: 60 * time.Second, loadTimeout: 120 * time.Second,
		grace: 5 * time.Second, pollInterval: 100 * time.Millisecond,
	}
	known := map[string]bool{}
	get := func(k string) string { known[k] = true; return p[k] }
	if v := get("python"); v != "" {
		s.python = v
	}
	if v := get("module"); v != "" {
		if filepath.IsAbs(v) || strings.Contains(filepath.ToSlash(v), "..") {
			return s, fmt.Errorf("parameters.module %q must be a file inside the version directory", v)
		}
		s.module = filepath.Join(cfg.Dir, v)
	}
	if v := get("class"); v != "" {
		s.class = v
	}
	if v := get("method"); v != "" {
		s.method = v
	}
	if v := get("allow_pickle"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("parameters.allow_pickle: want \"true\" or \"false\", got %q", v)
		}
		s.allowPickle = b
	}
	if v := get("batchable"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return s, fmt.Errorf("parameters.batchable: want \"true\" or \"false\", got %q", v)
		}
		s.batchable = b
	}
	if v := get("workers"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1024 {
			return s, fmt.Errorf("parameters.workers: want 1 to 1024, got %q", v)
		}
		s.workers = n
	}
	for k, dst := range map[string]*time.Duration{"timeout": &s.timeout, "load_timeout": &s.loadTimeout, "grace_period": &s.grace} {
		if v := get(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return s, fmt.Errorf("parameters.%s: want a positive duration like 30s, got %q", k, v)
			}
			*dst = d
		}
	}
	if v := get("max_memory_mb"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 1<<30 {
			return s, fmt.Errorf("parameters.max_memory_mb: want a positive number of MiB, got %q", v)
		}
		s.maxMemory = n << 20
	}
	for k := range p {
		if !known[k] {
			return s, fmt.Errorf("unknown parameter %q (known: %s)", k, paramList)
		}
	}
	if s.module == "" {
		s.pickle = cfg.Artifact
		if s.pickle == "" {
			s.pickle = filepath.Join(cfg.Dir, "model.pkl")
		}
		if known["class"] && p["class"] != "" {
			return s, errors.New("parameters.class goes with parameters.module")
		}
	} else if cfg.Artifact != "" {
		return s, errors.New("set either artifact (a pickle) or parameters.module (a class), not both")
	}
	return s, nil
}

// Model is a model served by a pool of Python workers. It is safe for
// concurrent use; Close stops the workers.
type Model struct {
	sig    backend.Signature
	set    settings
	log    *slog.Logger
	cmd    procsup.Command
	load   []byte // the LOAD frame body
	script string // the worker script's temporary file

	jobs   chan *job
	alive  atomic.Int32
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type job struct {
	ctx    context.Context
	inputs []*tensor.Tensor
	done   chan result // buffered: the worker never blocks on it
}

type result struct {
	out []*tensor.Tensor
	err error
}

// Load starts the model's workers and returns once every one of them has
// loaded the model. It returns an error wrapping ErrConfig,
// ErrPickleNotAllowed, or ErrLoad with the Python exception.
func Load(ctx context.Context, cfg backend.Config) (backend.Model, error) {
	return load(ctx, cfg, nil)
}

// Loader returns Load with a logger for the workers' output and
// supervision events (Load discards them).
func Loader(log *slog.Logger) backend.Loader {
	return func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
		return load(ctx, cfg, log)
	}
}

// loadSettings is the LOAD frame's JSON, read by worker.py.
type loadSettings struct {
	Kind     string       `json:"kind"`
	Dir      string       `json:"dir"`
	Artifact string       `json:"artifact,omitempty"`
	Method   string       `json:"method,omitempty"`
	Module   string       `json:"module,omitempty"`
	Class    string       `json:"class,omitempty"`
	Outputs  []tensorHint `json:"outputs"`
}

func load(ctx context.Context, cfg backend.Config, log *slog.Logger) (backend.Model, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("model", cfg.Name, "version", cfg.Version)
	set, err := parseSettings(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	ls := loadSettings{Kind: "module", Dir: cfg.Dir, Module: set.module, Class: set.class}
	if set.pickle != "" {
		if !set.allowPickle {
			return nil, fmt.Errorf("%w: %s is a pickle; set parameters.allow_pickle: \"true\" in model.yaml only if you trust whoever wrote it (docs/custom-code.md)", ErrPickleNotAllowed, filepath.Base(set.pickle))
		}
		if _, err := os.Stat(set.pickle); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		ls = loadSettings{Kind: "pickle", Dir: cfg.Dir, Artifact: set.pickle, Method: set.method}
	} else if _, err := os.Stat(set.module); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if set.pickle == "" && cfg.Outputs == nil {
		return nil, fmt.Errorf("%w: a module model must declare its outputs (name and datatype) in model.yaml", ErrConfig)
	}
	for _, o := range cfg.Outputs {
		ls.Outputs = append(ls.Outputs, tensorHint{Name: o.Name, Datatype: dtypeName(o.DType), Shape: o.Shape})
	}
	f, err := os.CreateTemp("", "shoal-worker-*.py")
	if err != nil {
		return nil, err
	}
	_, err = f.Write(workerScript)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	m := &Model{
		set: set, log: log, script: f.Name(), jobs: make(chan *job),
		ctx: mctx, cancel: cancel,
		cmd: procsup.Command{
			Path: set.python, Args: []string{f.Name()}, Dir: cfg.Dir,
			Env: []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1", "MKL_NUM_THREADS=1"},
		},
	}
	// Start every worker at once; the first one's hints complete the
	// signature (the others load the same model).
	type started struct {
		w   *worker
		h   hints
		err error
	}
	ch := make(chan started, set.workers)
	m.load, _ = json.Marshal(ls)
	for i := range set.workers {
		go func() {
			w, h, err := m.startWorker(i)
			ch <- started{w, h, err}
		}()
	}
	var (
		ws   []*worker
		h    hints
		errs []error
	)
	received := 0
	for received < set.workers && len(errs) == 0 {
		select {
		case s := <-ch:
			received++
			if s.err != nil {
				errs = append(errs, s.err)
				continue
			}
			if len(ws) == 0 {
				h = s.h
			}
			ws = append(ws, s.w)
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
	}
	if len(errs) == 0 {
		m.sig, err = signature(cfg, h, set.pickle != "")
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
		}
	}
	if len(errs) > 0 {
		// Stop what started, including the workers still loading.
		go func() {
			for range set.workers - received {
				if s := <-ch; s.w != nil {
					s.w.stop(set.grace)
				}
			}
		}()
		for _, w := range ws {
			w.stop(set.grace)
		}
		cancel()
		os.Remove(m.script)
		var le *loadError
		if errors.As(errs[0], &le) {
			return nil, fmt.Errorf("%w: %s", ErrLoad, le.msg)
		}
		return nil, errs[0]
	}
	// Ready from the moment Load returns, not once the slots have run.
	m.alive.Add(int32(len(ws)))
	for i, w := range ws {
		m.wg.Add(1)
		go m.slot(i, w)
	}
	log.Info("python workers ready", "workers", len(ws), "pids", pids(ws))
	return m, nil
}

func pids(ws []*worker) []int {
	out := make([]int, len(ws))
	for i, w := range ws {
		out[i] = w.p.Pid()
	}
	return out
}

func (m *Model) startWorker(i int) (*worker, hints, error) {
	c := m.cmd
	c.Log = m.log.With("worker", i)
	return startWorker(c, m.load, m.set.loadTimeout)
}

// slot keeps worker number i running and feeds it requests until Close.
// w is the first worker, already counted in alive.
func (m *Model) slot(i int, w *worker) {
	defer m.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		if w == nil {
			var err error
			w, _, err = m.startWorker(i)
			if m.ctx.Err() != nil {
				if w != nil {
					w.stop(m.set.grace)
				}
				return
			}
			if err != nil {
				m.log.Error("python worker failed to start; retrying", "worker", i, "err", err, "in", backoff)
				select {
				case <-m.ctx.Done():
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			backoff = 100 * time.Millisecond
			m.log.Info("python worker replaced", "worker", i, "pid", w.p.Pid())
			m.alive.Add(1)
		}
		m.serve(i, w)
		m.alive.Add(-1)
		w.stop(m.set.grace)
		w = nil
		if m.ctx.Err() != nil {
			return
		}
	}
}

// serve feeds w requests until it fails or Close.
func (m *Model) serve(i int, w *worker) {
	var poll <-chan time.Time
	if m.set.maxMemory > 0 {
		t := time.NewTicker(m.set.pollInterval)
		defer t.Stop()
		poll = t.C
		// The memory is checked while a request runs, too.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-poll:
					if rss, err := w.rssBytes(); err == nil && rss > m.set.maxMemory {
						why := fmt.Sprintf("resident memory %d MiB exceeds max_memory_mb %d", rss>>20, m.set.maxMemory>>20)
						m.log.Warn("killing python worker", "worker", i, "pid", w.p.Pid(), "why", why)
						w.kill(why)
					}
				}
			}
		}()
	}
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-w.p.Done():
			m.log.Warn("python worker exited; replacing it", "worker", i, "pid", w.p.Pid(), "exit", w.p.Err())
			return
		case j := <-m.jobs:
			if err := j.ctx.Err(); err != nil {
				j.done <- result{err: err}
				continue
			}
			out, err := w.call(j.inputs, m.set.timeout)
			j.done <- result{out, err}
			if errors.Is(err, ErrWorkerFailed) {
				m.log.Warn("python worker failed; replacing it", "worker", i, "err", err)
				return
			}
		}
	}
}

// Signature returns the model's signature: model.yaml's declarations,
// completed for a pickle from the estimator.
func (m *Model) Signature() backend.Signature { return m.sig }

// Batching declares the model batchable (rows concatenated and split on
// dimension 0) when its parameters say batchable: "true": shoal cannot see
// whether predict treats rows independently, so the model's owner says so.
func (m *Model) Batching() backend.Batching {
	if !m.set.batchable {
		return backend.Batching{}
	}
	return backend.Batching{Concat: true, Split: true}
}

// Ready reports whether at least one worker is running.
func (m *Model) Ready() bool { return m.alive.Load() > 0 }

// Infer runs predict in a free worker. Errors: ErrInvalidInput when
// predict raised ValueError, TypeError, KeyError or IndexError;
// ErrUnavailable when no worker is running; ErrWorkerFailed when the
// worker failed during the request; a plain error for other exceptions.
func (m *Model) Infer(ctx context.Context, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if !m.Ready() {
		return nil, fmt.Errorf("%w: no python worker is running (they are restarting; see the logs)", backend.ErrUnavailable)
	}
	j := &job{ctx: ctx, inputs: inputs, done: make(chan result, 1)}
	select {
	case m.jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-m.ctx.Done():
		return nil, fmt.Errorf("%w: model closed", backend.ErrUnavailable)
	}
	var r result
	select {
	case r = <-j.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var me *modelError
	switch {
	case errors.As(r.err, &me) && me.badInput:
		return nil, fmt.Errorf("%w: %w", backend.ErrInvalidInput, r.err)
	case r.err != nil:
		return nil, r.err
	}
	return m.checkOutputs(r.out)
}

// checkOutputs checks the worker's answer against the signature.
func (m *Model) checkOutputs(out []*tensor.Tensor) ([]*tensor.Tensor, error) {
	if len(out) != len(m.sig.Outputs) {
		return nil, fmt.Errorf("predict returned %d outputs, the model has %d", len(out), len(m.sig.Outputs))
	}
	for i, spec := range m.sig.Outputs {
		t := out[i]
		if t.Name != spec.Name || t.DType != spec.DType || !shapeFits(t.Shape, spec.Shape) {
			return nil, fmt.Errorf("predict returned %s %s %v for output %s %s %v", t.Name, t.DType, t.Shape, spec.Name, spec.DType, spec.Shape)
		}
	}
	return out, nil
}

// Close stops every worker (closing its pipe, then SIGTERM and SIGKILL to
// its process group after grace_period) and returns once they have exited.
// The server calls it after the last Infer returned.
func (m *Model) Close() error {
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
		os.Remove(m.script)
	})
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

func dtypeName(d tensor.DType) string {
	if d == tensor.Invalid {
		return ""
	}
	return d.String()
}

// signature merges model.yaml's declarations with the worker's hints.
func signature(cfg backend.Config, h hints, pickle bool) (backend.Signature, error) {
	var sig backend.Signature
	fromHints := func(hs []tensorHint) ([]backend.TensorSpec, error) {
		var out []backend.TensorSpec
		for _, t := range hs {
			spec := backend.TensorSpec{Name: t.Name, Shape: t.Shape}
			if t.Datatype != "" {
				d, err := tensor.ParseDType(t.Datatype)
				if err != nil {
					return nil, err
				}
				spec.DType = d
			}
			out = append(out, spec)
		}
		return out, nil
	}
	var err error
	if sig.Inputs, err = fromHints(h.Inputs); err != nil {
		return sig, err
	}
	if sig.Outputs, err = fromHints(h.Outputs); err != nil {
		return sig, err
	}
	if cfg.Inputs != nil {
		sig.Inputs = mergeSpecs(cfg.Inputs, sig.Inputs)
	}
	if cfg.Outputs != nil {
		sig.Outputs = mergeSpecs(cfg.Outputs, sig.Outputs)
	}
	if len(sig.Inputs) == 0 {
		sig.Inputs = []backend.TensorSpec{{Name: "input", DType: tensor.FP32, Shape: []int64{-1, -1}}}
	}
	if pickle && len(sig.Inputs) != 1 {
		return sig, fmt.Errorf("a pickled estimator takes one input, model.yaml declares %d", len(sig.Inputs))
	}
	for _, t := range append(slicesClone(sig.Inputs), sig.Outputs...) {
		if t.DType == tensor.Invalid {
			return sig, fmt.Errorf("tensor %q: set its datatype in model.yaml", t.Name)
		}
	}
	return sig, nil
}

// mergeSpecs returns declared, each completed (datatype, shape) from the
// hint at the same index.
func mergeSpecs(declared, hinted []backend.TensorSpec) []backend.TensorSpec {
	out := slicesClone(declared)
	for i := range out {
		if i < len(hinted) {
			if out[i].DType == tensor.Invalid {
				out[i].DType = hinted[i].DType
			}
			if out[i].Shape == nil {
				out[i].Shape = hinted[i].Shape
			}
		}
	}
	return out
}

func slicesClone(s []backend.TensorSpec) []backend.TensorSpec {
	return append([]backend.TensorSpec(nil), s...)
}
