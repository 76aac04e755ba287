// Package process is the process backend for replicas: it runs each
// replica of a model revision as a child `shoal serve` process on free
// 127.0.0.1 ports, supervised by internal/procsup (restarted with backoff,
// ready while GET /v2/health/ready answers 200), and drains it (SIGTERM,
// then SIGKILL after the grace period) when it is stopped.
//
// Each replica is recorded in a JSON file of the state directory (its
// revision, pid, ports and start time), so a control plane that restarts
// adopts the replicas still running: New checks that each recorded pid is
// alive and its health endpoint answers, keeps the live ones (polling
// their health, since it is not their parent) and forgets the dead ones.
// Adopted replicas of revisions that no longer exist are the caller's to
// stop, like any other.
//
// A replica's CPU and memory limits (Spec.MilliCPU, Spec.Memory) become
// GOMAXPROCS and GOMEMLIMIT, and a replica whose resident set exceeds its
// memory limit is killed and restarted (see limits.go for exactly what is
// enforced and what is not).
//
// The backend only starts, stops and lists replicas and reports their
// readiness: how many replicas run, rollouts and routing are the control
// plane's. It runs on Unix only.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-ml/shoal/internal/procsup"
	"github.com/shoal-ml/shoal/internal/replica"
)

// ErrNotFound is returned by Stop for a replica the backend does not know.
var ErrNotFound = errors.New("process: no such replica")

// Config configures a Backend. Fields left zero take the documented
// default.
type Config struct {
	// StateDir holds the replica records (StateDir/replicas/*.json) and
	// their logs (StateDir/logs/*.log). Required; created if missing.
	StateDir string
	// Executable is the shoal binary run as `Executable serve ...`. Empty
	// means os.Executable().
	Executable string
	// Grace is the time between SIGTERM and SIGKILL when a replica stops;
	// it is also passed to the replica as -grace-period. Zero means 10s.
	Grace time.Duration
	// HealthInterval is the period of the health check of a ready
	// replica. Zero means 500ms.
	HealthInterval time.Duration
	// StartTimeout bounds how long a replica may take to become ready
	// before it is restarted. Zero means 60s.
	StartTimeout time.Duration
	// Logger receives supervision events. Nil discards them.
	Logger *slog.Logger
	// OnChange, when set, is called (from any goroutine, without locks
	// held) when a replica becomes ready for the first time or an adopted
	// replica goes away, so the caller can reconcile at once instead of at
	// its next tick. Nil means nobody is told.
	OnChange func()
	// OnEvent, when set, is told (from any goroutine, without locks held)
	// what happened to a replica that its deployment's events should
	// show: today, ReasonMemoryLimitExceeded. Nil means nobody is told.
	OnEvent func(deployment, reason, message string)
}

// ReasonMemoryLimitExceeded is the OnEvent reason of a replica killed for
// a resident set above its Spec.Memory.
const ReasonMemoryLimitExceeded = "MemoryLimitExceeded"

func (c *Config) validate() error {
	if c.StateDir == "" {
		return errors.New("process: Config.StateDir is empty")
	}
	if c.Grace < 0 || c.HealthInterval < 0 || c.StartTimeout < 0 {
		return errors.New("process: Config durations must not be negative")
	}
	if c.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("process: find own executable: %w", err)
		}
		c.Executable = exe
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 500 * time.Millisecond
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnChange == nil {
		c.OnChange = func() {}
	}
	if c.OnEvent == nil {
		c.OnEvent = func(string, string, string) {}
	}
	return nil
}

// Spec says what replica to start; see replica.Spec.
type Spec = replica.Spec

// Replica is one replica as the backend sees it now; see replica.Replica.
type Replica = replica.Replica

// Backend runs replicas as processes. Create it with New; its methods are
// safe for concurrent use. Close stops every replica.
type Backend struct {
	cfg    Config
	client *http.Client

	mu       sync.Mutex
	replicas map[string]*entry
	seq      int
}

type entry struct {
	rec      Replica
	memLimit int64               // bytes; 0 for none
	memStop  context.CancelFunc  // ends the memory watch; nil without a limit
	sup      *procsup.Supervisor // nil when adopted
	cancel   context.CancelFunc  // ends an adopted replica's health polling
	done     chan struct{}       // closed when that polling has returned
	ready    bool                // adopted only
	gone     bool                // adopted only: the process exited
	stopped  bool                // Stop was called
}

// New validates cfg, creates the state directory and adopts the replicas
// recorded there whose process is alive and healthy; records of the others
// are removed (a process that is alive but unhealthy is killed).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, d := range []string{"replicas", "logs"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("process: %w", err)
		}
	}
	b := &Backend{
		cfg:      cfg,
		client:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		replicas: map[string]*entry{},
	}
	files, err := filepath.Glob(filepath.Join(cfg.StateDir, "replicas", "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		var stored record
		if err == nil {
			err = json.Unmarshal(raw, &stored)
		}
		rec := stored.Replica
		if err != nil || rec.ID == "" || rec.PID <= 0 {
			cfg.Logger.Warn("replica record unreadable; removed", "file", f, "err", err)
			os.Remove(f)
			continue
		}
		if n, err := strconv.Atoi(rec.ID[max(0, len(rec.ID)-6):]); err == nil {
			b.seq = max(b.seq, n)
		}
		if !alive(rec.PID) {
			cfg.Logger.Info("recorded replica is gone", "replica", rec.ID, "pid", rec.PID)
			os.Remove(f)
			continue
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		herr := b.health(hctx, rec.HTTP)
		cancel()
		if herr != nil {
			cfg.Logger.Warn("recorded replica alive but unhealthy; killed", "replica", rec.ID, "pid", rec.PID, "err", herr)
			killGroup(rec.PID, cfg.Grace)
			os.Remove(f)
			continue
		}
		rec.Adopted, rec.Ready = true, true
		e := &entry{rec: rec, ready: true, memLimit: stored.MemoryLimit}
		b.watchAdopted(e)
		b.watchMemory(e)
		b.replicas[rec.ID] = e
		cfg.Logger.Info("replica adopted", "replica", rec.ID, "revision", rec.Revision, "pid", rec.PID, "http", rec.HTTP)
	}
	return b, nil
}

// Start starts a replica of s and returns at once, before it is ready.
func (b *Backend) Start(s Spec) (Replica, error) {
	if s.Deployment == "" || s.Revision == "" || s.Model == "" {
		return Replica{}, errors.New("process: Spec needs Deployment, Revision and Model")
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return Replica{}, err
	}
	grpcAddr, err := freeAddr()
	if err != nil {
		return Replica{}, err
	}
	b.mu.Lock()
	b.seq++
	id := fmt.Sprintf("%s-%06d", s.Revision, b.seq)
	b.mu.Unlock()
	logPath := b.LogPath(id)
	args := []string{"serve", "-http", httpAddr, "-grpc", grpcAddr, "-grace-period", b.cfg.Grace.String()}
	args = append(args, s.Args...)
	args = append(args, s.Model)
	// The replica must outlive this process (to be adopted), so its
	// output goes to a file of its own rather than to a pipe of ours: a
	// write to a pipe whose reader died would kill it with SIGPIPE. The
	// shell execs shoal in place, so the pid stays the replica's.
	cmd := procsup.Command{
		Path: "/bin/sh",
		Args: append([]string{"-c", `exec "$0" "$@" >>"$SHOAL_REPLICA_LOG" 2>&1`, b.cfg.Executable}, args...),
		Env:  append(append(slices.Clone(s.Env), limitEnv(s)...), "SHOAL_REPLICA_LOG="+logPath),
	}
	rec := Replica{ID: id, Deployment: s.Deployment, Revision: s.Revision, HTTP: httpAddr, GRPC: grpcAddr, Started: time.Now().UTC()}
	sup, err := procsup.Supervise(procsup.Config{
		Command:        cmd,
		Health:         startingHealth(b.health, httpAddr),
		HealthInterval: b.cfg.HealthInterval,
		StartTimeout:   b.cfg.StartTimeout,
		Grace:          b.cfg.Grace,
		Logger:         b.cfg.Logger.With("replica", id),
	})
	if err != nil {
		return Replica{}, err
	}
	e := &entry{rec: rec, sup: sup, memLimit: s.Memory}
	b.watchMemory(e)
	b.mu.Lock()
	b.replicas[id] = e
	b.mu.Unlock()
	go func() {
		if sup.WaitReady(context.Background()) == nil {
			b.cfg.OnChange()
		}
	}()
	b.cfg.Logger.Info("replica started", "replica", id, "revision", s.Revision, "http", httpAddr)
	return b.snapshot(e), nil
}

// Stop drains and stops the replica: SIGTERM to its process group (the
// replica stops taking requests and finishes those in flight), SIGKILL
// after Config.Grace. It returns once the process has exited and its
// record is removed. The caller takes the replica out of the routing table
// first.
func (b *Backend) Stop(id string) error {
	b.mu.Lock()
	e := b.replicas[id]
	if e != nil {
		e.stopped = true
	}
	b.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if e.memStop != nil {
		e.memStop()
	}
	if e.sup != nil {
		e.sup.Close()
	} else {
		e.cancel()
		<-e.done
		killGroup(e.rec.PID, b.cfg.Grace)
	}
	b.mu.Lock()
	delete(b.replicas, id)
	b.mu.Unlock()
	os.Remove(b.recordPath(id))
	b.cfg.Logger.Info("replica stopped", "replica", id)
	return nil
}

// List returns the replicas not being stopped, ordered by ID (start order
// within a revision), and records any pid that changed since (a restart).
func (b *Backend) List() []Replica {
	b.mu.Lock()
	var out []Replica
	var gone []string
	for id, e := range b.replicas {
		if e.stopped {
			continue
		}
		if e.sup == nil && e.gone {
			gone = append(gone, id)
			continue
		}
		r := b.snapshot(e)
		if r.PID != 0 && r.PID != e.rec.PID {
			e.rec.PID = r.PID
			b.writeRecord(e)
		}
		out = append(out, r)
	}
	for _, id := range gone {
		e := b.replicas[id]
		delete(b.replicas, id)
		e.cancel()
		if e.memStop != nil {
			e.memStop()
		}
		os.Remove(b.recordPath(id))
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y Replica) int { return cmpStr(x.ID, y.ID) })
	return out
}

// Close stops every replica (as Stop does), in parallel, and returns once
// they have exited.
func (b *Backend) Close() error {
	b.mu.Lock()
	ids := make([]string, 0, len(b.replicas))
	for id := range b.replicas {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() { defer wg.Done(); b.Stop(id) }()
	}
	wg.Wait()
	return nil
}

// LogPath returns the file the replica's output is appended to.
func (b *Backend) LogPath(id string) string {
	return filepath.Join(b.cfg.StateDir, "logs", id+".log")
}

func (b *Backend) recordPath(id string) string {
	return filepath.Join(b.cfg.StateDir, "replicas", id+".json")
}

// snapshot reads e's state; for a supervised replica it also writes the
// record the first time a pid is known. b.mu may be held or not.
func (b *Backend) snapshot(e *entry) Replica {
	r := e.rec
	if e.sup != nil {
		r.PID, r.Ready, r.Restarts = e.sup.Pid(), e.sup.Ready(), e.sup.Restarts()
		if r.PID == 0 {
			r.PID = e.rec.PID
		}
		if e.rec.PID == 0 && r.PID != 0 {
			e.rec.PID = r.PID
			b.writeRecord(e)
		}
	} else {
		r.Ready = e.ready && !e.gone
	}
	return r
}

// record is what the state directory keeps of a replica: enough to adopt
// it and go on enforcing its memory limit.
type record struct {
	Replica
	MemoryLimit int64 `json:"memoryLimit,omitempty"`
}

func (b *Backend) writeRecord(e *entry) {
	r := e.rec
	r.Ready = false
	raw, _ := json.Marshal(record{Replica: r, MemoryLimit: e.memLimit})
	tmp := b.recordPath(r.ID) + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err == nil {
		err = os.Rename(tmp, b.recordPath(r.ID))
		if err != nil {
			b.cfg.Logger.Warn("replica record not written", "replica", r.ID, "err", err)
		}
	}
}

// watchAdopted polls an adopted replica's pid and health until Stop.
func (b *Backend) watchAdopted(e *entry) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		t := time.NewTicker(b.cfg.HealthInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if !alive(e.rec.PID) {
				b.mu.Lock()
				e.gone = true
				b.mu.Unlock()
				b.cfg.Logger.Warn("adopted replica exited", "replica", e.rec.ID, "pid", e.rec.PID)
				b.cfg.OnChange()
				return
			}
			hctx, hcancel := context.WithTimeout(ctx, b.cfg.HealthInterval)
			err := b.health(hctx, e.rec.HTTP)
			hcancel()
			b.mu.Lock()
			e.ready = err == nil
			b.mu.Unlock()
		}
	}()
}

func (b *Backend) health(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/health/ready", nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// freeAddr returns a 127.0.0.1 address with a port free now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("process: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// alive reports whether pid is a process (that is not a zombie we could
// see: adopted replicas are reaped by init).
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// killGroup sends SIGTERM to pid's process group and SIGKILL once grace
// has passed with it still alive.
func killGroup(pid int, grace time.Duration) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && alive(pid) {
		time.Sleep(20 * time.Millisecond) // polling a process we are not the parent of
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
