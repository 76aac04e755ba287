package procsup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotStarted is wrapped by Supervisor.WaitReady when the first process
// exited, or failed its health check for Config.StartTimeout, before it was
// ever ready.
var ErrNotStarted = errors.New("procsup: process did not start")

// Config configures a Supervisor. Fields left zero take the documented
// default.
type Config struct {
	// Command is the process to run. Required.
	Command Command
	// Health reports whether the running process is ready to serve. It is
	// called every 50ms until it first succeeds, then every HealthInterval;
	// the process is ready from its first success and unready after any
	// failure until the next success. Nil means ready once started.
	Health func(ctx context.Context) error
	// HealthInterval is the time between health checks of a running process,
	// and the timeout of one check. Zero means 1s.
	HealthInterval time.Duration
	// StartTimeout bounds how long a started process may take to pass its
	// first health check; then it is stopped and restarted. Zero means 60s.
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before a restart: it starts
	// at MinBackoff, doubles after each exit up to MaxBackoff, and returns
	// to MinBackoff once a process has been ready for StableAfter. Zero
	// means 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a process must stay ready for the backoff to
	// reset. Zero means 10s.
	StableAfter time.Duration
	// Grace is the time between SIGTERM and SIGKILL when stopping. Zero
	// means 10s.
	Grace time.Duration
	// Logger receives supervision events (start, exit, restart). Nil
	// discards them. Command.Log receives the process's output.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Command.Path == "" {
		return errors.New("procsup: Config.Command.Path is empty")
	}
	if c.HealthInterval < 0 || c.StartTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.StableAfter < 0 || c.Grace < 0 {
		return errors.New("procsup: Config durations must not be negative")
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = time.Second
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.StableAfter == 0 {
		c.StableAfter = 10 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// startPoll is the health check period while a process starts.
const startPoll = 50 * time.Millisecond

// Supervisor keeps one process running: it starts it, checks its health,
// restarts it with backoff when it exits, and stops it on Close. Its
// methods are safe for concurrent use.
type Supervisor struct {
	cfg    Config
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned

	ready    atomic.Bool
	pid      atomic.Int64
	restarts atomic.Int64

	mu        sync.Mutex
	firstUp   chan struct{} // closed at the first ready
	firstFail chan struct{} // closed if the first process never got ready
	failErr   error         // why, set before firstFail closes
	closeOnce sync.Once
}

// Supervise validates cfg and starts supervising in the background. Call Close
// to stop.
func Supervise(cfg Config) (*Supervisor, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{
		cfg: cfg, cancel: cancel, done: make(chan struct{}),
		firstUp: make(chan struct{}), firstFail: make(chan struct{}),
	}
	go s.run(ctx)
	return s, nil
}

// Ready reports whether a process is running and passed its last health
// check.
func (s *Supervisor) Ready() bool { return s.ready.Load() }

// Pid returns the process id of the running process, or 0 when none runs.
func (s *Supervisor) Pid() int { return int(s.pid.Load()) }

// Restarts returns how many times a process was started after the first.
func (s *Supervisor) Restarts() int { return int(s.restarts.Load()) }

// WaitReady waits until the first process is ready. It returns an error
// wrapping ErrNotStarted if that process exited or timed out first (the
// Supervisor keeps retrying; Close it to give up), or ctx's error.
func (s *Supervisor) WaitReady(ctx context.Context) error {
	select {
	case <-s.firstUp:
		return nil
	case <-s.firstFail:
		return s.failErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the running process (SIGTERM to its group, SIGKILL after
// Config.Grace) and returns once it has exited and supervision has ended.
// It is idempotent.
func (s *Supervisor) Close() error {
	s.closeOnce.Do(s.cancel)
	<-s.done
	return nil
}

func (s *Supervisor) run(ctx context.Context) {
	defer close(s.done)
	log := s.cfg.Logger
	backoff := s.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			s.restarts.Add(1)
		}
		p, err := Start(s.cfg.Command)
		var readyFor time.Duration
		if err == nil {
			log.Info("process started", "pid", p.Pid(), "attempt", attempt+1)
			s.pid.Store(int64(p.Pid()))
			readyFor, err = s.watch(ctx, p)
			s.pid.Store(0)
			s.ready.Store(false)
		}
		if ctx.Err() != nil {
			return
		}
		if attempt == 0 && readyFor == 0 {
			s.failErr = fmt.Errorf("%w: %w", ErrNotStarted, err)
			close(s.firstFail)
		}
		if readyFor >= s.cfg.StableAfter {
			backoff = s.cfg.MinBackoff
		}
		log.Warn("process exited; restarting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// watch checks p's health until p exits (it returns why) or ctx is done (it
// stops p). readyFor is how long p was ready, counted from its first
// successful check.
func (s *Supervisor) watch(ctx context.Context, p *Process) (readyFor time.Duration, err error) {
	start := time.Now()
	var upSince time.Time
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.ready.Store(false)
			err := p.Stop(s.cfg.Grace)
			s.cfg.Logger.Info("process stopped", "pid", p.Pid(), "exit", err)
			return since(upSince), err
		case <-p.Done():
			if err = p.Err(); err == nil {
				err = errors.New("exited with status 0")
			}
			return since(upSince), err
		case <-t.C:
		}
		herr := s.check(ctx)
		switch {
		case herr == nil && upSince.IsZero():
			upSince = time.Now()
			s.ready.Store(true)
			s.cfg.Logger.Info("process ready", "pid", p.Pid(), "after", upSince.Sub(start).Round(time.Millisecond))
			s.mu.Lock()
			select {
			case <-s.firstUp:
			default:
				close(s.firstUp)
			}
			s.mu.Unlock()
		case herr == nil:
			if !s.ready.Swap(true) {
				s.cfg.Logger.Info("process healthy again", "pid", p.Pid())
			}
		case !upSince.IsZero():
			if s.ready.Swap(false) {
				s.cfg.Logger.Warn("process unhealthy", "pid", p.Pid(), "err", herr)
			}
		case time.Since(start) > s.cfg.StartTimeout:
			p.Stop(s.cfg.Grace)
			return 0, fmt.Errorf("not healthy after %v: %w", s.cfg.StartTimeout, herr)
		}
		if upSince.IsZero() {
			t.Reset(startPoll)
		} else {
			t.Reset(s.cfg.HealthInterval)
		}
	}
}

func (s *Supervisor) check(ctx context.Context) error {
	if s.cfg.Health == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthInterval)
	defer cancel()
	return s.cfg.Health(ctx)
}

func since(t time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return time.Since(t)
}
