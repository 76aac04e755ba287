// Package h1 is a lean HTTP/1.1 server for the gateway's plain-text REST
// listener. It parses requests with net/http's own parser
// (http.ReadRequest) and serves them with an http.Handler, but runs one
// goroutine per connection and nothing else for quick requests: no
// background read per request, and a response writer that sends the
// status line, headers and a body of known length in one write. In the
// gateway's benchmark that took 16% off the gateway's CPU per request
// (docs/gateway.md, Benchmark).
//
// What it leaves out, against net/http's Server: HTTP/2, TLS (use
// net/http for that), Hijack and trailers. A request's context is
// cancelled when its client goes away, as with net/http, but only
// noticed once the request has run for WatchDelay with its body read
// (watch.go): quick requests pay no watching.
package h1

import (
	"bufio"
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
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 (and 1.0) over the connections of a listener.
// Set its fields before Serve.
type Server struct {
	// Handler answers every request. Required.
	Handler http.Handler
	// ReadHeaderTimeout bounds the reading of a request's line and
	// headers once its first byte arrived. Zero means 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a kept-alive
	// connection. Zero means 120s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers. Zero means
	// 1 MiB (net/http's default).
	MaxHeaderBytes int
	// Log receives handler panics and accept errors. Nil discards them.
	Log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   atomic.Bool
	active    sync.WaitGroup // connection goroutines
}

// Serve accepts connections on l and serves them until Shutdown or Close,
// when it returns http.ErrServerClosed, or until l fails.
func (s *Server) Serve(l net.Listener) error {
	if s.Handler == nil {
		return errors.New("h1: Server.Handler is nil")
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logf("accept", err)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{s: s, nc: nc}
		c.idle.Store(true)
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			return http.ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.active.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting, closes idle connections, and waits for the
// others to finish their request (they close after it) or for ctx, when
// it closes them and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.closeListeners()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() {
			s.active.Wait()
			return err
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	err := s.closeListeners()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	return err
}

func (s *Server) closeListeners() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	var err error
	for l := range s.listeners {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		delete(s.listeners, l)
	}
	return err
}

// closeIdle closes the idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) logf(what string, err error) {
	if s.Log != nil {
		s.Log.Warn("h1: "+what, "err", err)
	}
}

func (s *Server) timeouts() (header, idle time.Duration) {
	header, idle = s.ReadHeaderTimeout, s.IdleTimeout
	if header <= 0 {
		header = 10 * time.Second
	}
	if idle <= 0 {
		idle = 120 * time.Second
	}
	return header, idle
}

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	idle   atomic.Bool // waiting for a request: Shutdown may close it
	remote string      // the client's address, for Request.RemoteAddr
	linger bool        // close with lingeringClose: input may be left unread
	resp   response    // the answer in progress
	hdr    http.Header // its header map, cleared for each request
	body   []byte      // its body buffer
	lr     limitReader // the connection, with a byte budget for headers
	br     *bufio.Reader
	bw     *bufio.Writer
}

// limitReader reads from r while n > 0, and reports the budget spent
// with errHeaderTooBig. It keeps the last error, and while rec is on, a
// copy of what it reads.
type limitReader struct {
	r     io.Reader
	n     int64
	err   error
	rec   bool
	saved []byte
}

var errHeaderTooBig = errors.New("h1: request headers too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.err = errHeaderTooBig
		return 0, errHeaderTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.rec {
		l.saved = append(l.saved, p[:n]...)
	}
	if err != nil {
		l.err = err
	}
	return n, err
}

// bodyDrainLimit is how much of a body its handler left unread the
// server reads to keep the connection; beyond, it closes the connection.
const bodyDrainLimit = 256 << 10

var bufPool = sync.Pool{New: func() any { return new(bufs) }}

type bufs struct {
	br *bufio.Reader
	bw *bufio.Writer
}

func (c *conn) serve() {
	s := c.s
	defer func() {
		if c.linger {
			c.lingeringClose()
		}
		c.nc.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.active.Done()
	}()
	c.lr.r = c.nc
	b := bufPool.Get().(*bufs)
	if b.br == nil {
		b.br, b.bw = bufio.NewReaderSize(&c.lr, 4<<10), bufio.NewWriterSize(c.nc, 4<<10)
	} else {
		b.br.Reset(&c.lr)
		b.bw.Reset(c.nc)
	}
	c.br, c.bw = b.br, b.bw
	defer func() {
		b.br.Reset(nil)
		b.bw.Reset(nil)
		bufPool.Put(b)
	}()
	maxHeader := int64(s.MaxHeaderBytes)
	if maxHeader <= 0 {
		maxHeader = http.DefaultMaxHeaderBytes
	}
	headerTimeout, idleTimeout := s.timeouts()
	for {
		c.idle.Store(true)
		if s.closing.Load() {
			return
		}
		c.lr.n = maxHeader + 4096 // the request line and bufio's read-ahead too
		c.nc.SetReadDeadline(time.Now().Add(idleTimeout))
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		c.idle.Store(false)
		c.nc.SetReadDeadline(time.Now().Add(headerTimeout))
		// ReadRequest hides some of what it read (a Content-Length beside
		// a chunked Transfer-Encoding, a Transfer-Encoding in HTTP/1.0,
		// folded lines): keep the raw header to look for them.
		buffered, _ := c.br.Peek(c.br.Buffered())
		c.lr.saved = append(c.lr.saved[:0], buffered...)
		c.lr.rec, c.lr.err = true, nil
		req, err := http.ReadRequest(c.br)
		c.lr.rec = false
		if err != nil {
			// bufio hands over a partial line without the error that cut
			// it: the connection's own error, if any, is the cause.
			if c.lr.err != nil {
				err = c.lr.err
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isTimeout(err) {
				return
			}
			code, msg := http.StatusBadRequest, err.Error()
			if errors.Is(err, errHeaderTooBig) {
				code, msg = http.StatusRequestHeaderFieldsTooLarge, "request headers too large"
			}
			c.fail(code, msg)
			return
		}
		c.lr.n = 1<<63 - 1
		c.nc.SetReadDeadline(time.Time{})
		if req.ProtoMajor != 1 {
			c.fail(http.StatusHTTPVersionNotSupported, "only HTTP/1.x")
			return
		}
		if msg := checkRequest(req, c.lr.saved); msg != "" {
			c.fail(http.StatusBadRequest, msg)
			return
		}
		if cap(c.lr.saved) > 64<<10 {
			c.lr.saved = nil
		}
		if !c.handle(req) {
			return
		}
	}
}

// checkRequest reports what makes req unfit to serve, or "": raw is the
// text it was read from (with maybe more after). Like net/http's server,
// it refuses what http.ReadRequest lets through: a missing or malformed
// Host, a space in a header name; unlike it, it also refuses
// what a proxy in front could frame otherwise: folded header lines,
// Content-Length beside Transfer-Encoding, Transfer-Encoding in HTTP/1.0.
func checkRequest(req *http.Request, raw []byte) string {
	// ReadRequest refuses two Hosts, and moves the one to req.Host.
	if req.Host == "" && req.ProtoMinor >= 1 {
		return "missing required Host header"
	}
	if !validHost(req.Host) {
		return "malformed Host header"
	}
	for k := range req.Header {
		if strings.IndexByte(k, ' ') >= 0 { // the only invalid byte ReadRequest lets through
			return fmt.Sprintf("invalid header name %q", k)
		}
	}
	end := bytes.Index(raw, []byte("\n\r\n"))
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 && (end < 0 || i < end) {
		end = i
	}
	if end < 0 { // cannot be: ReadRequest read the blank line
		return "no end of headers"
	}
	head := raw[:end+1]
	if bytes.Contains(head, []byte("\n ")) || bytes.Contains(head, []byte("\n\t")) {
		return "folded header line"
	}
	// ReadRequest deletes Transfer-Encoding, and Content-Length when the
	// body is chunked.
	chunked := len(req.TransferEncoding) > 0
	if !chunked && req.ProtoMinor >= 1 {
		return ""
	}
	var cl, te bool
	for _, line := range bytes.Split(head, []byte("\n"))[1:] {
		name, _, _ := bytes.Cut(line, []byte(":"))
		cl = cl || bytes.EqualFold(name, []byte("Content-Length"))
		te = te || bytes.EqualFold(name, []byte("Transfer-Encoding"))
	}
	switch {
	case te && req.ProtoMinor == 0:
		return "Transfer-Encoding in an HTTP/1.0 request"
	case te && cl:
		return "both Transfer-Encoding and Content-Length"
	}
	return ""
}

func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0) {
			return false
		}
	}
	return true
}

// handle runs the handler on req and finishes the answer, reporting
// whether the connection may carry another request.
func (c *conn) handle(req *http.Request) bool {
	if c.remote == "" {
		c.remote = c.nc.RemoteAddr().String()
	}
	req.RemoteAddr = c.remote
	keep := !req.Close
	if req.ProtoMinor == 0 {
		keep = strings.EqualFold(req.Header.Get("Connection"), "keep-alive")
	}
	expect := req.Header.Get("Expect")
	if expect != "" && (!strings.EqualFold(expect, "100-continue") || req.ProtoMinor == 0) {
		c.fail(http.StatusExpectationFailed, "unsupported Expect: "+expect)
		return false
	}
	body := req.Body
	// The answer's writer, header map and body buffer are the
	// connection's, reused from one request to the next (a handler may
	// not use its ResponseWriter after it returned).
	if c.hdr == nil {
		c.hdr = make(http.Header, 8)
	} else {
		clear(c.hdr)
	}
	c.resp = response{c: c, req: req, header: c.hdr, keep: keep, buf: c.body[:0]}
	w := &c.resp
	defer func() {
		if cap(w.buf) <= bufferLimit {
			c.body = w.buf[:0]
		}
	}()
	var eof *eofReader
	if req.Body != http.NoBody {
		eof = &eofReader{r: req.Body}
		req.Body = eof
	}
	var ec *expectContinue
	if expect != "" && req.Body != http.NoBody {
		ec = &expectContinue{r: req.Body, w: w}
		req.Body = ec
	}
	ctx := &reqContext{}
	req = req.WithContext(ctx)
	w.req = req
	wt := c.watch(ctx, eof)
	ok := c.run(w, req)
	wt.end()
	if !ok {
		return false
	}
	if ec != nil && !ec.sent {
		// The client waits for 100 Continue or the answer before it sends
		// the body: the body never comes, so the connection cannot go on.
		w.keep = false
		c.linger = true
	}
	if w.keep && !drain(body) {
		w.keep = false
		c.linger = true
	}
	if err := w.finish(); err != nil {
		return false
	}
	return w.keep && !c.s.closing.Load()
}

// run calls the handler, reporting false when it panicked.
func (c *conn) run(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler && c.s.Log != nil {
				c.s.Log.Error("h1: handler panic", "panic", fmt.Sprint(v), "path", req.URL.Path)
			}
			ok = false
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	return true
}

// drain reads what the handler left of body, up to bodyDrainLimit,
// reporting whether the body ended.
func drain(body io.Reader) bool {
	if body == http.NoBody {
		return true
	}
	n, err := io.CopyN(io.Discard, body, bodyDrainLimit+1)
	return err == io.EOF && n <= bodyDrainLimit
}

// lingerTime bounds lingeringClose.
const lingerTime = 500 * time.Millisecond

// lingeringClose closes the sending side and reads what the client still
// sends, until it closes or lingerTime passed, before the connection is
// closed: closing a socket with unread input makes the kernel send a
// reset, which can destroy the answer before the client read it (as
// net/http's server does, for the same reason).
func (c *conn) lingeringClose() {
	tc, ok := c.nc.(interface{ CloseWrite() error })
	if !ok || tc.CloseWrite() != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, c.nc)
}

// fail answers a request that could not be read, and the connection
// closes after it.
func (c *conn) fail(code int, msg string) {
	c.linger = true
	b, _ := jsonError(msg)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n", code, http.StatusText(code), len(b))
	c.bw.Write(b)
	c.bw.Flush()
}

func jsonError(msg string) ([]byte, error) {
	return []byte(`{"error":` + strconv.Quote("h1: "+msg) + `}`), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// expectContinue sends "100 Continue" before the first read of a body
// whose client asked for it.
type expectContinue struct {
	r    io.ReadCloser
	w    *response
	sent bool
}

func (e *expectContinue) Read(p []byte) (int, error) {
	if !e.sent {
		e.sent = true
		if e.w.sent {
			// The answer's head is out: a 100 now would land in its
			// body. The client may send the body or not: close after.
			e.w.keep = false
		} else {
			bw := e.w.c.bw
			bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	return e.r.Read(p)
}

func (e *expectContinue) Close() error { return e.r.Close() }
