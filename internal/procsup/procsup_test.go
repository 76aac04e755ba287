package procsup

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuf is a concurrency-safe sink for a JSON slog handler.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewJSONHandler(b, nil)), b
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// childPid waits for a log line "child N" and returns N.
func childPid(t *testing.T, logs *logBuf) int {
	t.Helper()
	var pid int
	waitFor(t, 5*time.Second, "no child pid in the logs:\n"+logs.String(), func() bool {
		_, rest, ok := strings.Cut(logs.String(), `"msg":"child `)
		if !ok {
			return false
		}
		n, _, _ := strings.Cut(rest, `"`)
		pid, _ = strconv.Atoi(n)
		return pid > 0
	})
	return pid
}

func sh(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh in PATH")
	}
	return p
}

func TestProcessOutputLogged(t *testing.T) {
	log, logs := newLog()
	p, err := Start(Command{Path: sh(t), Args: []string{"-c", "echo to-out; echo to-err >&2; exit 3"}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Err() = %v, want exit status 3", err)
	}
	p.Stop(time.Second) // waits for the logs
	for _, want := range []string{`"msg":"to-out","pid":` + strconv.Itoa(p.Pid()) + `,"stream":"stdout"`, `"msg":"to-err","pid":` + strconv.Itoa(p.Pid()) + `,"stream":"stderr"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

func TestStopKillsTheGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
		grace  time.Duration
		// maxStop bounds how long Stop may take.
		maxStop time.Duration
	}{
		// The child ignores SIGTERM: it dies of SIGKILL after the grace.
		{"child ignores SIGTERM", `trap "" TERM; sleep 1000 & echo child $!; wait`, 300 * time.Millisecond, 5 * time.Second},
		// Everything exits on SIGTERM: Stop returns before the grace ends.
		{"group exits on SIGTERM", `sleep 1000 & echo child $!; wait`, time.Minute, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, logs := newLog()
			p, err := Start(Command{Path: sh(t), Args: []string{"-c", tt.script}, Log: log})
			if err != nil {
				t.Fatal(err)
			}
			child := childPid(t, logs)
			if !alive(child) {
				t.Fatalf("child %d not running", child)
			}
			t0 := time.Now()
			p.Stop(tt.grace)
			if d := time.Since(t0); d > tt.maxStop {
				t.Errorf("Stop took %v, want at most %v", d, tt.maxStop)
			}
			if alive(p.Pid()) {
				t.Errorf("after Stop: leader %d alive", p.Pid())
			}
			// Stop reaps the leader; the rest of the group got SIGKILL,
			// which the kernel delivers asynchronously, so the child dies
			// (and init reaps it) a moment later on a busy machine.
			waitFor(t, 5*time.Second, "the child outlived Stop", func() bool { return !alive(child) })
		})
	}
}

func TestLeaderExitKillsOrphans(t *testing.T) {
	log, logs := newLog()
	p, err := Start(Command{Path: sh(t), Args: []string{"-c", `sleep 1000 & echo child $!; read x; exit 0`}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	child := childPid(t, logs)
	p.Kill() // the leader and its child die at once
	<-p.Done()
	waitFor(t, 5*time.Second, "the child outlived its group", func() bool { return !alive(child) })

	// A leader that exits by itself takes its children with it too.
	p, err = Start(Command{Path: sh(t), Args: []string{"-c", `sleep 1000 & echo child $!; sleep 0.2; exit 0`}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	child2 := childPid2(t, logs, child)
	<-p.Done()
	waitFor(t, 5*time.Second, "an orphan survived its leader's exit", func() bool { return !alive(child2) })
}

// childPid2 is childPid for the second "child N" line, other than first.
func childPid2(t *testing.T, logs *logBuf, first int) int {
	t.Helper()
	var pid int
	waitFor(t, 5*time.Second, "no second child pid in the logs", func() bool {
		for _, part := range strings.Split(logs.String(), `"msg":"child `)[1:] {
			n, _, _ := strings.Cut(part, `"`)
			if p, _ := strconv.Atoi(n); p > 0 && p != first {
				pid = p
				return true
			}
		}
		return false
	})
	return pid
}

func TestSupervisorRestarts(t *testing.T) {
	log, logs := newLog()
	s, err := Supervise(Config{
		Command:    Command{Path: sh(t), Args: []string{"-c", "echo child $$; exec sleep 1000"}, Log: log},
		MinBackoff: 10 * time.Millisecond,
		Grace:      time.Second,
		Logger:     log,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !s.Ready() {
		t.Fatal("Ready() = false after WaitReady")
	}
	first := s.Pid()
	if err := syscallKill(first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "no restart", func() bool { return s.Pid() != 0 && s.Pid() != first && s.Ready() })
	if s.Restarts() != 1 {
		t.Errorf("Restarts() = %d, want 1", s.Restarts())
	}
	second := s.Pid()
	s.Close()
	if s.Ready() || alive(second) || s.Pid() != 0 {
		t.Errorf("after Close: Ready %v, process alive %v, Pid %d; want false, false, 0", s.Ready(), alive(second), s.Pid())
	}
	if !strings.Contains(logs.String(), "process exited; restarting") {
		t.Errorf("the restart is not logged:\n%s", logs.String())
	}
}

func TestSupervisorNotReadyWhileDown(t *testing.T) {
	// The process is healthy only while the file exists; it restarts slowly.
	dir := t.TempDir()
	flag := dir + "/up"
	s, err := Supervise(Config{
		Command:        Command{Path: sh(t), Args: []string{"-c", "touch " + flag + "; exec sleep 1000"}},
		Health:         func(context.Context) error { _, err := os.Stat(flag); return err },
		HealthInterval: 10 * time.Millisecond,
		MinBackoff:     time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	os.Remove(flag)
	waitFor(t, 5*time.Second, "still ready with a failing health check", func() bool { return !s.Ready() })
	os.WriteFile(flag, nil, 0o644)
	waitFor(t, 5*time.Second, "not ready again after the health check passed", s.Ready)
	syscallKill(s.Pid())
	waitFor(t, 5*time.Second, "still ready after the process died", func() bool { return !s.Ready() && s.Pid() == 0 })
}

func TestSupervisorFirstStartFails(t *testing.T) {
	tests := []struct {
		name   string
		script string
		health func(context.Context) error
		want   string
	}{
		{"exits", "exit 7", func(context.Context) error { return errors.New("down") }, "exit status 7"},
		{"never healthy", "exec sleep 1000", func(context.Context) error { return errors.New("nope") }, "not healthy after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Supervise(Config{
				Command:      Command{Path: sh(t), Args: []string{"-c", tt.script}},
				Health:       tt.health,
				StartTimeout: 200 * time.Millisecond,
				Grace:        time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.WaitReady(t.Context())
			if !errors.Is(err, ErrNotStarted) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WaitReady() = %v, want ErrNotStarted with %q", err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no path", Config{}},
		{"negative", Config{Command: Command{Path: "sh"}, Grace: -1}},
	}
	for _, tt := range tests {
		if _, err := Supervise(tt.cfg); err == nil {
			t.Errorf("%s: Supervise() = nil error, want one", tt.name)
		}
	}
}
