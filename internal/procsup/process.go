// Package procsup starts, watches and stops the child processes of the
// backends that run code outside shoal (the http and python backends).
//
// Every child leads its own process group, so stopping it (SIGTERM, then
// SIGKILL after a grace period) stops the processes it started too, and
// whatever a child leaves behind in its group when it exits is killed. Its
// stdout and stderr go to a structured logger line by line. A Supervisor
// restarts a child that dies, with exponential backoff, and reports whether
// it is up and passing its health check.
//
// It is not a sandbox: a child that moves itself out of its process group
// (setsid, setpgid) escapes the group kill. It runs on Unix only.
package procsup

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Command describes a child process to start.
type Command struct {
	// Path is the program, looked up in PATH when it has no slash. A
	// relative path with a slash is relative to Dir. Required.
	Path string
	// Args are the arguments after the program name. Nil means none.
	Args []string
	// Dir is the working directory. Empty means shoal's own.
	Dir string
	// Env is added to shoal's environment (later entries win). Nil adds
	// nothing.
	Env []string
	// ExtraFiles become file descriptors 3, 4, ... of the child. The caller
	// keeps ownership and may close them once Start returns.
	ExtraFiles []*os.File
	// Log receives each line the child writes to stdout and stderr, at
	// level Info with the attribute stream=stdout|stderr and pid. Nil
	// discards the output.
	Log *slog.Logger
}

// Process is a started child process and its process group. Its methods
// are safe for concurrent use.
type Process struct {
	cmd      *exec.Cmd
	pid      int
	done     chan struct{} // closed once the leader has been reaped
	err      error         // the leader's exit error; set before done closes
	stopping atomic.Bool   // Stop was called: leave the group to Stop
	logs     sync.WaitGroup
	pipes    []*os.File // read ends of stdout and stderr
}

// Start starts c in a new process group. The caller must eventually call
// Stop (or Kill and wait on Done) to release it.
func Start(c Command) (*Process, error) {
	if c.Path == "" {
		return nil, errors.New("procsup: Command.Path is empty")
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.ExtraFiles = c.ExtraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Our own pipes, not io.Writers: exec would then wait for the copying to
	// end, which never happens while a grandchild holds the pipe open.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("start %s: %w", c.Path, err)
	}
	p := &Process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), pipes: []*os.File{outR, errR}}
	log = log.With("pid", p.pid)
	p.logs.Add(2)
	go p.copyLines(outR, log, "stdout")
	go p.copyLines(errR, log, "stderr")
	go func() {
		p.err = cmd.Wait()
		if !p.stopping.Load() {
			// Whatever the leader left behind in its group goes with it.
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		}
		close(p.done)
	}()
	return p, nil
}

// copyLines logs each line of r until it ends.
func (p *Process) copyLines(r *os.File, log *slog.Logger, stream string) {
	defer p.logs.Done()
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, isPrefix, err := br.ReadLine()
		if len(line) > 0 || (err == nil && !isPrefix) {
			log.Info(string(line), "stream", stream)
		}
		if err != nil {
			return
		}
	}
}

// Pid returns the process id of the child, which is also its process group
// id.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the child has exited and been reaped.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the child exited (nil for status 0, an *exec.ExitError
// otherwise). It is meaningful only once Done is closed.
func (p *Process) Err() error {
	<-p.done
	return p.err
}

// Kill sends SIGKILL to the child's whole process group at once. It does
// not wait; Done closes when the child has been reaped.
func (p *Process) Kill() {
	if !p.exited() { // once reaped, its group was killed already and the id may be reused
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// Stop stops the child's process group: SIGTERM to every process of the
// group, then, once grace has passed with any of them still running,
// SIGKILL. It returns once the child has been reaped and its output logged,
// with the child's exit error (a signal exit reads "signal: terminated").
// Calling Stop again, or after the child exited, is safe.
func (p *Process) Stop(grace time.Duration) error {
	if p.exited() {
		// Its group was killed when it exited (or by the Stop that saw it
		// exit), and its id may since have been reused: signal nothing.
		p.waitLogs()
		return p.err
	}
	p.stopping.Store(true)
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case <-deadline.C:
			break wait
		case <-tick.C:
			if p.exited() && syscall.Kill(-p.pid, 0) == syscall.ESRCH {
				break wait
			}
		}
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
	p.waitLogs()
	return p.err
}

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitLogs waits for the output to be logged, at most one second: a process
// that left the group may hold the pipes open for ever.
func (p *Process) waitLogs() {
	ch := make(chan struct{})
	go func() { p.logs.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(time.Second):
		for _, f := range p.pipes {
			f.Close()
		}
		<-ch
	}
}
