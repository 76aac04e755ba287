package h1

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// WatchDelay is how long a request runs before the server starts
// watching its connection for the client going away. net/http's server
// watches every request from the end of its body (a goroutine and a read
// per request); h1 does it only for the requests still running after
// WatchDelay, so that quick answers cost nothing.
const WatchDelay = 50 * time.Millisecond

// reqContext is a request's context: cancelled when the server sees its
// client go away, or when the request ends. It carries no deadline and
// no values, and implements AfterFunc so that contexts derived from it
// (context.WithTimeout) register a function instead of starting a
// goroutine.
type reqContext struct {
	mu    sync.Mutex
	done  chan struct{} // made on the first Done
	err   error
	funcs []func() // AfterFunc's, nil once run or stopped
}

func (c *reqContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *reqContext) Value(any) any               { return nil }

func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err != nil {
			close(c.done)
		}
	}
	return c.done
}

func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// AfterFunc runs f in its own goroutine once c is cancelled; stop
// unregisters it, reporting whether it had not run.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	i := len(c.funcs)
	c.funcs = append(c.funcs, f)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.err != nil || c.funcs[i] == nil {
			return false
		}
		c.funcs[i] = nil
		return true
	}
}

func (c *reqContext) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	fs := c.funcs
	c.funcs = nil
	c.mu.Unlock()
	for _, f := range fs {
		if f != nil {
			go f()
		}
	}
}

// eofReader reports when a request's body was read to its end, from
// which point the connection may be watched.
type eofReader struct {
	r   io.ReadCloser
	eof atomic.Bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof.Store(true)
	}
	return n, err
}

func (e *eofReader) Close() error { return e.r.Close() }

// Watch states of a request.
const (
	watchArmed   = iota // the timer is set
	watchRunning        // the watcher reads the connection
	watchOver           // the watcher returned
	watchClosed         // the request ended: no watcher may start
)

// watcher watches one request's connection for its client going away,
// once the request has run for WatchDelay with its body read.
type watcher struct {
	c     *conn
	ctx   *reqContext
	body  *eofReader // nil: the request has no body
	state atomic.Int32
	exit  chan struct{} // the watcher returned
	timer *time.Timer
}

// watch arms the watcher of a request.
func (c *conn) watch(ctx *reqContext, body *eofReader) *watcher {
	w := &watcher{c: c, ctx: ctx, body: body, exit: make(chan struct{}, 1)}
	w.timer = time.AfterFunc(WatchDelay, w.run)
	return w
}

// run reads the connection until the client sends something (the next
// request, kept for it in the reader's buffer), closes it (the request
// is cancelled), or end interrupts the read.
func (w *watcher) run() {
	if w.body != nil && !w.body.eof.Load() {
		return // the handler still reads the body: the connection is its
	}
	if !w.state.CompareAndSwap(watchArmed, watchRunning) {
		return
	}
	_, err := w.c.br.Peek(1)
	if err != nil && !isTimeout(err) {
		w.ctx.cancel(context.Canceled) // EOF or a reset: the client left
	}
	w.state.CompareAndSwap(watchRunning, watchOver)
	w.exit <- struct{}{}
}

// end stops the watcher of a request that is over, waiting for a running
// one to return, and cancels the request's context.
func (w *watcher) end() {
	w.timer.Stop()
	switch w.state.Swap(watchClosed) {
	case watchRunning:
		w.c.nc.SetReadDeadline(aLongTimeAgo) // interrupts the Peek
		<-w.exit
		w.c.nc.SetReadDeadline(time.Time{})
	case watchOver:
		<-w.exit
	}
	w.ctx.cancel(context.Canceled)
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)
