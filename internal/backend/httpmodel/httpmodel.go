// Package httpmodel is the http backend: it serves an existing JSON
// prediction server (a Flask app, say) as a shoal model. It starts the
// server's command under supervision (package procsup) or reaches a URL,
// waits for its health check, and translates each inference: the one input
// tensor becomes {"instances": [...]} (one JSON row per first-dimension
// entry) and the answer's "predictions" array becomes the one output tensor.
//
// It does not batch, retry or balance; a model with several inputs or
// outputs needs a real backend (or the python one).
package httpmodel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/procsup"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// ErrConfig is wrapped by Load for model.yaml settings it cannot use.
var ErrConfig = errors.New("httpmodel: bad configuration")

// settings are the model.yaml parameters of the http backend.
type settings struct {
	command        []string // program and arguments; empty with url
	url            string   // base URL of a server shoal does not start
	port           int
	healthPath     string
	predictPath    string
	instancesField string
	predsField     string
	startTimeout   time.Duration
	grace          time.Duration
	healthInterval time.Duration
	timeout        time.Duration
}

// parseSettings reads the parameters, filling in defaults.
func parseSettings(p map[string]string) (settings, error) {
	s := settings{
		healthPath: "/health", predictPath: "/predict",
		instancesField: "instances", predsField: "predictions",
		startTimeout: 60 * time.Second, grace: 10 * time.Second, healthInterval: time.Second,
	}
	known := map[string]bool{}
	get := func(k string) string { known[k] = true; return p[k] }
	var err error
	if c := get("command"); c != "" {
		if s.command, err = SplitCommand(c); err != nil {
			return s, fmt.Errorf("parameters.command: %w", err)
		}
	}
	s.url = strings.TrimSuffix(get("url"), "/")
	if (len(s.command) == 0) == (s.url == "") {
		return s, errors.New("set exactly one of parameters.command (a server to start) and parameters.url (one already running)")
	}
	if v := get("port"); v != "" {
		if s.port, err = strconv.Atoi(v); err != nil || s.port < 0 || s.port > 65535 {
			return s, fmt.Errorf("parameters.port: want a port number, got %q", v)
		}
	}
	if s.url != "" && s.port != 0 {
		return s, errors.New("parameters.port goes with command; with url, put the port in the URL")
	}
	for k, dst := range map[string]*string{
		"health_path": &s.healthPath, "predict_path": &s.predictPath,
		"instances_field": &s.instancesField, "predictions_field": &s.predsField,
	} {
		if v := get(k); v != "" {
			*dst = v
		}
	}
	if !strings.HasPrefix(s.healthPath, "/") || !strings.HasPrefix(s.predictPath, "/") {
		return s, errors.New("parameters.health_path and predict_path must start with /")
	}
	for k, dst := range map[string]*time.Duration{
		"start_timeout": &s.startTimeout, "grace_period": &s.grace,
		"health_interval": &s.healthInterval, "timeout": &s.timeout,
	} {
		if v := get(k); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return s, fmt.Errorf("parameters.%s: want a positive duration like 30s, got %q", k, v)
			}
			*dst = d
		}
	}
	for k := range p {
		if !known[k] {
			return s, fmt.Errorf("unknown parameter %q (known: command, url, port, health_path, predict_path, instances_field, predictions_field, start_timeout, grace_period, health_interval, timeout)", k)
		}
	}
	return s, nil
}

// signature returns the declared signature, or the default one: input
// "input" FP32 [-1, -1], output "predictions" FP64 [-1].
func signature(cfg backend.Config) (backend.Signature, error) {
	sig := backend.Signature{
		Inputs:  []backend.TensorSpec{{Name: "input", DType: tensor.FP32, Shape: []int64{-1, -1}}},
		Outputs: []backend.TensorSpec{{Name: "predictions", DType: tensor.FP64, Shape: []int64{-1}}},
	}
	if cfg.Inputs != nil {
		sig.Inputs = cfg.Inputs
	}
	if cfg.Outputs != nil {
		sig.Outputs = cfg.Outputs
	}
	if len(sig.Inputs) != 1 || len(sig.Outputs) != 1 {
		return sig, fmt.Errorf("the http backend maps one input to %q and one output to %q: model.yaml declares %d inputs and %d outputs", "instances", "predictions", len(sig.Inputs), len(sig.Outputs))
	}
	for _, t := range []backend.TensorSpec{sig.Inputs[0], sig.Outputs[0]} {
		if t.DType == tensor.Invalid {
			return sig, fmt.Errorf("tensor %q: set its datatype in model.yaml (the http backend cannot ask the server)", t.Name)
		}
	}
	if in := sig.Inputs[0]; in.Shape != nil && len(in.Shape) == 0 {
		return sig, fmt.Errorf("input %q: instances need a first (batch) dimension; shape [] has none", in.Name)
	}
	return sig, nil
}

// Model is a model served by an HTTP server. It is safe for concurrent use;
// Close stops the server it started.
type Model struct {
	sig        backend.Signature
	set        settings
	predictURL string
	client     *http.Client
	sup        *procsup.Supervisor // nil with url
	poll       *poller             // nil with command
}

// Load starts (or reaches) the server that cfg describes and returns once
// its health check passes. It returns an error wrapping ErrConfig for bad
// settings, or the server's failure to start (its output is in the logs).
func Load(ctx context.Context, cfg backend.Config) (backend.Model, error) {
	return load(ctx, cfg, nil)
}

// Loader returns Load with a logger for the server's output and
// supervision events (Load discards them).
func Loader(log *slog.Logger) backend.Loader {
	return func(ctx context.Context, cfg backend.Config) (backend.Model, error) {
		return load(ctx, cfg, log)
	}
}

func load(ctx context.Context, cfg backend.Config, log *slog.Logger) (backend.Model, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("model", cfg.Name, "version", cfg.Version)
	set, err := parseSettings(cfg.Parameters)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	sig, err := signature(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	base := set.url
	if len(set.command) > 0 {
		if set.port == 0 {
			if set.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		base = "http://127.0.0.1:" + strconv.Itoa(set.port)
	}
	m := &Model{
		sig: sig, set: set, predictURL: base + set.predictPath,
		client: &http.Client{
			Timeout: set.timeout,
			Transport: &http.Transport{
				Proxy:               nil,
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxIdleConns:        256,
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}
	health := func(ctx context.Context) error { return m.health(ctx, base+set.healthPath) }
	if set.url != "" {
		m.poll = startPoller(health, set.healthInterval)
		ctx, cancel := context.WithTimeout(ctx, set.startTimeout)
		defer cancel()
		if err := m.poll.waitReady(ctx); err != nil {
			m.Close()
			return nil, fmt.Errorf("%s not healthy: %w", base+set.healthPath, err)
		}
		return m, nil
	}
	port := strconv.Itoa(set.port)
	args := make([]string, len(set.command)-1)
	for i, a := range set.command[1:] {
		args[i] = strings.ReplaceAll(a, "{port}", port)
	}
	m.sup, err = procsup.Supervise(procsup.Config{
		Command: procsup.Command{
			Path: set.command[0], Args: args, Dir: cfg.Dir,
			Env: []string{"HOST=127.0.0.1", "PORT=" + port, "PYTHONUNBUFFERED=1"},
			Log: log,
		},
		Health:         health,
		HealthInterval: set.healthInterval,
		StartTimeout:   set.startTimeout,
		Grace:          set.grace,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	if err := m.sup.WaitReady(ctx); err != nil {
		m.Close()
		return nil, fmt.Errorf("start %q: %w (its output is in the logs)", strings.Join(set.command, " "), err)
	}
	return m, nil
}

// freePort returns a TCP port free on the loopback interface now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (m *Model) health(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}

// Signature returns the signature declared in model.yaml (or the default).
func (m *Model) Signature() backend.Signature { return m.sig }

// Ready reports whether the server is up and passed its last health check.
func (m *Model) Ready() bool {
	if m.sup != nil {
		return m.sup.Ready()
	}
	return m.poll.ready()
}

// Pid returns the process id of the server shoal started, 0 when none runs.
func (m *Model) Pid() int {
	if m.sup == nil {
		return 0
	}
	return m.sup.Pid()
}

// Close stops the server shoal started (SIGTERM to its process group, then
// SIGKILL after grace_period) and returns once it has exited.
func (m *Model) Close() error {
	if m.sup != nil {
		return m.sup.Close()
	}
	m.poll.close()
	return nil
}

// Infer posts the input as instances and decodes the predictions. Errors:
// ErrInvalidInput for a 4xx answer, ErrUnavailable while the server is down
// or unreachable, a plain error for a 5xx or malformed answer.
func (m *Model) Infer(ctx context.Context, inputs []*tensor.Tensor) ([]*tensor.Tensor, error) {
	in, ok := backend.FindInput(inputs, m.sig.Inputs[0].Name)
	if !ok {
		return nil, fmt.Errorf("%w: missing input %q", backend.ErrInvalidInput, m.sig.Inputs[0].Name)
	}
	if !m.Ready() {
		return nil, fmt.Errorf("%w: the model's server is not ready (restarting or failing its health check)", backend.ErrUnavailable)
	}
	body, err := AppendInstances(nil, m.set.instancesField, in)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", backend.ErrInvalidInput, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.predictURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: read the answer: %w", backend.ErrUnavailable, err)
	}
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return nil, fmt.Errorf("%w: the model's server answered %s: %s", backend.ErrInvalidInput, resp.Status, snippet(data))
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("the model's server answered %s: %s", resp.Status, snippet(data))
	}
	out := m.sig.Outputs[0]
	t, err := DecodePredictions(data, m.set.predsField, out.Name, out.DType)
	if err != nil {
		return nil, fmt.Errorf("the model's server answered: %w", err)
	}
	if !shapeFits(t.Shape, out.Shape) {
		return nil, fmt.Errorf("the model's server answered predictions of shape %v, model.yaml declares %v", t.Shape, out.Shape)
	}
	if len(t.Shape) > 0 && len(in.Shape) > 0 && t.Shape[0] != in.Shape[0] {
		return nil, fmt.Errorf("the model's server answered %d predictions for %d instances", t.Shape[0], in.Shape[0])
	}
	return []*tensor.Tensor{t}, nil
}

// snippet returns the start of an error answer, for messages.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
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

// poller checks the health of a server shoal does not start.
type poller struct {
	mu      sync.Mutex
	ok      bool
	first   chan struct{} // closed at the first success
	lastErr error
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

func startPoller(check func(context.Context) error, every time.Duration) *poller {
	p := &poller{first: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		wait := time.Duration(0)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := check(ctx)
			cancel()
			p.mu.Lock()
			p.ok, p.lastErr = err == nil, err
			if err == nil {
				select {
				case <-p.first:
				default:
					close(p.first)
				}
			}
			p.mu.Unlock()
			wait = every
			if err != nil {
				wait = min(every, 50*time.Millisecond)
			}
		}
	}()
	return p
}

func (p *poller) ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok
}

func (p *poller) waitReady(ctx context.Context) error {
	select {
	case <-p.first:
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.lastErr != nil {
			return p.lastErr
		}
		return ctx.Err()
	}
}

func (p *poller) close() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}
