package python

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-ml/shoal/internal/procsup"
	"github.com/shoal-ml/shoal/internal/tensor"
)

// worker is one running worker process and our ends of its pipes. It is
// used by one goroutine at a time (its slot's).
type worker struct {
	p    *procsup.Process
	w    *os.File // requests: the worker's fd 3
	r    *os.File // answers: the worker's fd 4
	br   *bufio.Reader
	out  []byte // request buffer, reused
	in   []byte // answer buffer, reused
	mu   sync.Mutex
	why  string // why we killed it, for the error of the request it had
	done chan struct{}
}

// tensorHint is a tensor as worker.py reports it in READY.
type tensorHint struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// hints is the body of READY.
type hints struct {
	Inputs  []tensorHint `json:"inputs"`
	Outputs []tensorHint `json:"outputs"`
}

// loadError is a LOAD failure reported by the worker (load() raised, the
// pickle would not load): the model's fault, not the process's.
type loadError struct{ msg string }

func (e *loadError) Error() string { return e.msg }

// startWorker starts a worker process, sends it the LOAD settings and waits
// up to timeout for READY.
func startWorker(c procsup.Command, load []byte, timeout time.Duration) (*worker, hints, error) {
	var h hints
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, h, err
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, h, err
	}
	c.ExtraFiles = []*os.File{reqR, respW}
	c.Args = append(c.Args, "3", "4")
	p, err := procsup.Start(c)
	reqR.Close()
	respW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		return nil, h, err
	}
	w := &worker{p: p, w: reqW, r: respR, br: bufio.NewReaderSize(respR, 64<<10), done: make(chan struct{})}
	// A read or write in progress ends as soon as the process exits, even
	// if a process it started holds the pipes open.
	go func() {
		select {
		case <-p.Done():
			w.r.SetReadDeadline(time.Now())
			w.w.SetWriteDeadline(time.Now())
		case <-w.done:
		}
	}()
	deadline := time.Now().Add(timeout)
	w.w.SetWriteDeadline(deadline)
	w.r.SetReadDeadline(deadline)
	if _, err := w.w.Write(appendFrame(nil, kindLoad, load)); err != nil {
		return nil, h, w.fail("send LOAD", err)
	}
	kind, body, buf, err := readFrame(w.br, nil)
	w.in = buf
	switch {
	case err != nil:
		return nil, h, w.fail("load", err)
	case kind == kindError && len(body) > 0 && body[0] == errLoad:
		w.stop(time.Second)
		return nil, h, &loadError{msg: string(body[1:])}
	case kind != kindReady:
		return nil, h, w.fail("load", fmt.Errorf("%w: kind %d, want READY", errFrame, kind))
	}
	if err := json.Unmarshal(body, &h); err != nil {
		return nil, h, w.fail("load", fmt.Errorf("%w: READY: %w", errFrame, err))
	}
	return w, h, nil
}

// fail stops the worker and returns an error saying what happened to it
// during what.
func (w *worker) fail(what string, err error) error {
	w.mu.Lock()
	why := w.why
	w.mu.Unlock()
	// The pipe closes a moment before the process is reaped.
	wait := time.Duration(0)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) {
		wait = 500 * time.Millisecond
	}
	exited := false
	select {
	case <-w.p.Done():
		exited = true
	default:
		select {
		case <-w.p.Done():
			exited = true
		case <-time.After(wait):
		}
	}
	if !exited && why == "" && errors.Is(err, os.ErrDeadlineExceeded) {
		why = "it exceeded the time limit"
	}
	w.p.Kill()
	perr := w.stop(time.Second)
	switch {
	case why != "":
		return fmt.Errorf("%w: worker (pid %d) killed during %s: %s", ErrWorkerFailed, w.p.Pid(), what, why)
	case exited:
		return fmt.Errorf("%w: worker (pid %d) died during %s: %v", ErrWorkerFailed, w.p.Pid(), what, perr)
	}
	return fmt.Errorf("%w: worker (pid %d) during %s: %w", ErrWorkerFailed, w.p.Pid(), what, err)
}

// kill kills the worker for the reason why (memory, a timeout); the request
// in progress fails with that reason.
func (w *worker) kill(why string) {
	w.mu.Lock()
	if w.why == "" {
		w.why = why
	}
	w.mu.Unlock()
	w.p.Kill()
}

// stop stops the process (closing its request pipe first, so an idle worker
// exits by itself) and releases the pipes. It is idempotent.
func (w *worker) stop(grace time.Duration) error {
	w.w.Close()
	select {
	case <-w.p.Done():
	case <-time.After(min(grace, 200*time.Millisecond)):
	}
	err := w.p.Stop(grace)
	w.r.Close()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	return err
}

// call sends one request and waits, at most limit, for its answer. A
// returned error wrapping ErrWorkerFailed means the worker is gone (killed,
// dead or out of step); others are the model's answer.
func (w *worker) call(inputs []*tensor.Tensor, limit time.Duration) ([]*tensor.Tensor, error) {
	var err error
	if w.out, err = appendTensorFrame(w.out[:0], kindInfer, inputs); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(limit)
	w.w.SetWriteDeadline(deadline)
	w.r.SetReadDeadline(deadline)
	if _, err := w.w.Write(w.out); err != nil {
		return nil, w.fail("the request", err)
	}
	if cap(w.out) > 16<<20 {
		w.out = nil // don't keep a huge buffer for ever
	}
	kind, body, buf, err := readFrame(w.br, w.in)
	w.in = buf
	if err != nil {
		return nil, w.fail("the request", err)
	}
	switch kind {
	case kindResult:
		out, err := decodeTensors(body)
		if err != nil {
			return nil, w.fail("the request", err)
		}
		if cap(w.in) > 16<<20 {
			w.in = nil
		}
		return out, nil
	case kindError:
		if len(body) == 0 {
			return nil, w.fail("the request", fmt.Errorf("%w: empty ERROR", errFrame))
		}
		msg := string(body[1:])
		if body[0] == errBadInput {
			return nil, &modelError{msg: msg, badInput: true}
		}
		return nil, &modelError{msg: msg}
	}
	return nil, w.fail("the request", fmt.Errorf("%w: kind %d", errFrame, kind))
}

// modelError is an exception predict raised.
type modelError struct {
	msg      string
	badInput bool
}

func (e *modelError) Error() string { return "predict raised " + e.msg }

// rssBytes returns the resident memory of the worker process.
func (w *worker) rssBytes() (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(w.p.Pid()) + "/statm")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0, fmt.Errorf("statm: %q", data)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()), err
}
