// Package upstream is the gateway's HTTP/1.1 client to replicas: a lean
// http.RoundTripper for hops to a few known hosts, in plain text or over
// TLS. Unlike net/http's Transport it runs no reader and writer goroutine
// per connection (the caller's goroutine writes the request and reads the
// answer) and writes each request with one system call, which makes the
// gateway's hop cheaper. It does not do HTTP/2, proxies, compression,
// 100-continue or request bodies of unknown length.
package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Transport is an http.RoundTripper to HTTP/1.1 hosts: plain text (http
// URLs) when TLS is nil, TLS (https URLs) otherwise.
// Connections are kept per host and reused while idle for less than 50s
// (under the 120s idle timeout of shoal serve). A request whose pooled
// connection turns out closed by the host goes again on a new one when
// its body can be replayed (GetBody). Safe for concurrent use; create it
// with New.
type Transport struct {
	// TLS, when set, dials hosts over TLS with it (its ServerName, when
	// empty, is each host's name or address) and takes https URLs only;
	// nil means plain text and http URLs. Set it before the first
	// RoundTrip.
	TLS *tls.Config

	dialer      net.Dialer
	maxIdle     int           // idle connections kept per host
	idleTimeout time.Duration // older idle connections are closed, not reused

	mu    sync.Mutex
	hosts map[string][]*pconn // idle connections, most recent last
}

// New returns a transport with no connection.
func New() *Transport {
	return &Transport{
		dialer:      net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle:     1024,
		idleTimeout: 50 * time.Second, // under the replicas' 120s idle timeout
		hosts:       map[string][]*pconn{},
	}
}

type pconn struct {
	t     *Transport
	host  string
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	tp    textproto.Reader
	idle  time.Time
	reuse bool // came from the pool
}

// errStale marks a reused connection that the replica had closed: the
// request was not taken and may go again on a new connection.
var errStale = errors.New("upstream: stale connection")

// RoundTrip sends req and reads the answer's status and headers; the
// body is read from the connection as the caller reads it.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if want := t.scheme(); req.URL.Scheme != want {
		return nil, fmt.Errorf("upstream: scheme %q (this transport takes %s)", req.URL.Scheme, want)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		// context.AfterFunc interrupts I/O only asynchronously: a request
		// already cancelled could otherwise complete on a pooled connection.
		return nil, err
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	o := out{method: req.Method, uri: req.URL.RequestURI(), host: host, header: req.Header, req: req}
	return t.exchange(ctx, req.URL.Host, &o, func(stale error) error {
		if req.Body == nil || req.Body == http.NoBody {
			return nil
		}
		if req.GetBody == nil {
			return stale
		}
		var err error
		req.Body, err = req.GetBody()
		return err
	})
}

// exchange sends o to addr on a pooled connection and reads the answer's
// head. When the connection turns out closed by the host before it took
// the request, o goes again on another (twice at most), after replay
// readied its body (or refused, with the error to return).
func (t *Transport) exchange(ctx context.Context, addr string, o *out, replay func(stale error) error) (*http.Response, error) {
	for tries := 0; ; tries++ {
		pc, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(ctx, o)
		if errors.Is(err, errStale) && tries < 2 && ctx.Err() == nil {
			if err := replay(err); err != nil {
				return nil, err
			}
			continue
		}
		return resp, err
	}
}

// Send is RoundTrip for a proxy's hop, without an http.Request of its
// own: it sends method and uri (origin form, such as the incoming
// request's RequestURI) with header h and body to host (also the Host
// header), and reads the answer's status and headers; the body is read
// from the connection as the caller reads it. ctx bounds the exchange as
// a request's context does in RoundTrip. The answer's Request is nil.
// Saving the request and its URL is what it is for: a few hundred bytes
// of garbage per hop.
func (t *Transport) Send(ctx context.Context, host, method, uri string, h http.Header, body []byte) (*http.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if method == "" || uri == "" || uri[0] != '/' || strings.ContainsAny(method, " \r\n") || strings.ContainsAny(uri, " \r\n") {
		return nil, fmt.Errorf("upstream: bad request line %q %q", method, uri)
	}
	o := out{method: method, uri: uri, host: host, header: h, body: body}
	// The body is in memory: it goes again as it is.
	return t.exchange(ctx, host, &o, func(error) error { return nil })
}

// out is what goes to the replica: the request line, the Host header,
// the other headers and the body, which comes from req.Body when req is
// set (RoundTrip) and from body otherwise (Send).
type out struct {
	method, uri, host string
	header            http.Header
	body              []byte
	req               *http.Request
}

func (t *Transport) scheme() string {
	if t.TLS != nil {
		return "https"
	}
	return "http"
}

// CloseIdleConnections closes every idle connection.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	hosts := t.hosts
	t.hosts = map[string][]*pconn{}
	t.mu.Unlock()
	for _, cs := range hosts {
		for _, pc := range cs {
			pc.c.Close()
		}
	}
}

func (t *Transport) get(ctx context.Context, host string) (*pconn, error) {
	now := time.Now()
	t.mu.Lock()
	for cs := t.hosts[host]; len(cs) > 0; cs = t.hosts[host] {
		pc := cs[len(cs)-1]
		cs[len(cs)-1] = nil
		t.hosts[host] = cs[:len(cs)-1]
		if now.Sub(pc.idle) < t.idleTimeout {
			t.mu.Unlock()
			pc.reuse = true
			return pc, nil
		}
		pc.c.Close()
	}
	t.mu.Unlock()
	var c net.Conn
	var err error
	if t.TLS != nil {
		d := tls.Dialer{NetDialer: &t.dialer, Config: t.TLS}
		c, err = d.DialContext(ctx, "tcp", host) // and the handshake
	} else {
		c, err = t.dialer.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return nil, err
	}
	pc := &pconn{t: t, host: host, c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}
	pc.tp.R = pc.br
	return pc, nil
}

// put returns pc to the pool, or closes it when the pool is full.
func (t *Transport) put(pc *pconn) {
	pc.idle = time.Now()
	t.mu.Lock()
	if cs := t.hosts[pc.host]; len(cs) < t.maxIdle {
		t.hosts[pc.host] = append(cs, pc)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	pc.c.Close()
}

// aLongTimeAgo is a deadline in the past, to interrupt blocked I/O.
var aLongTimeAgo = time.Unix(1, 0)

func (pc *pconn) roundTrip(ctx context.Context, o *out) (*http.Response, error) {
	// Cancelling ctx interrupts the I/O; the connection is then closed.
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(aLongTimeAgo) })
	fail := func(err error) (*http.Response, error) {
		stop()
		pc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := pc.writeRequest(o); err != nil {
		if pc.reuse && isReset(err) {
			return fail(fmt.Errorf("%w: %v", errStale, err))
		}
		return fail(err)
	}
	var resp *http.Response
	var a *answer
	for {
		line, err := pc.tp.ReadLine()
		if err != nil {
			if pc.reuse && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
				return fail(fmt.Errorf("%w: %v", errStale, err))
			}
			return fail(err)
		}
		proto, status, ok := strings.Cut(line, " ")
		codeStr, _, _ := strings.Cut(status, " ")
		code, cerr := strconv.Atoi(codeStr)
		if !ok || !strings.HasPrefix(proto, "HTTP/1.") || cerr != nil || code < 100 || code > 999 {
			return fail(fmt.Errorf("upstream: malformed status line %q", line))
		}
		hdr, err := pc.tp.ReadMIMEHeader()
		if err != nil {
			return fail(err)
		}
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			continue // informational: the answer follows
		}
		a = &answer{resp: http.Response{
			Status: status, StatusCode: code,
			Proto: proto, ProtoMajor: 1, ProtoMinor: int(proto[len(proto)-1] - '0'),
			Header: http.Header(hdr), Request: o.req, ContentLength: -1,
		}}
		resp = &a.resp
		break
	}
	keep := !strings.EqualFold(resp.Header.Get("Connection"), "close")
	if resp.ProtoMinor == 0 {
		keep = strings.EqualFold(resp.Header.Get("Connection"), "keep-alive")
	}
	b := &a.body
	*b = bodyReader{pc: pc, stop: stop, keep: keep}
	switch {
	case o.method == http.MethodHead || resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified:
		resp.ContentLength = 0
		b.r = http.NoBody
	case strings.EqualFold(resp.Header.Get("Transfer-Encoding"), "chunked"):
		resp.Header.Del("Transfer-Encoding")
		resp.TransferEncoding = []string{"chunked"}
		b.r = httputil.NewChunkedReader(pc.br)
		b.chunked = true
	case resp.Header.Get("Content-Length") != "":
		n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return fail(fmt.Errorf("upstream: bad Content-Length %q", resp.Header.Get("Content-Length")))
		}
		resp.ContentLength = n
		b.lr = io.LimitedReader{R: pc.br, N: n}
		b.r = &b.lr
	default: // until the connection closes
		b.keep = false
		b.r = pc.br
	}
	resp.Body = b
	if resp.ContentLength == 0 {
		b.finish(nil)
	}
	return resp, nil
}

// writeRequest writes o in one flush.
func (pc *pconn) writeRequest(o *out) error {
	w := pc.bw
	w.WriteString(o.method)
	w.WriteByte(' ')
	w.WriteString(o.uri)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(o.host)
	w.WriteString("\r\n")
	for k, vs := range o.header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection":
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				return fmt.Errorf("upstream: header %s: invalid value", k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	req := o.req
	n, hasBody := int64(len(o.body)), len(o.body) > 0
	if req != nil {
		n, hasBody = req.ContentLength, req.Body != nil && req.Body != http.NoBody
	}
	if hasBody && n < 0 {
		return errors.New("upstream: request body of unknown length")
	}
	if hasBody || o.method == http.MethodPost || o.method == http.MethodPut || o.method == http.MethodPatch {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(max(n, 0), 10))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if hasBody && req == nil {
		w.Write(o.body)
	} else if hasBody {
		var src io.Reader = req.Body
		if l, ok := req.Body.(interface{ Len() int }); !ok || int64(l.Len()) != n {
			src = io.LimitReader(req.Body, n) // never more than announced
		}
		m, err := io.Copy(w, src)
		req.Body.Close()
		if err != nil {
			return err
		}
		if m != n {
			return fmt.Errorf("upstream: request body: %d of %d bytes", m, n)
		}
	}
	return w.Flush()
}

// answer is one allocation for an answer and its body reader.
type answer struct {
	resp http.Response
	body bodyReader
}

// bodyReader reads an answer's body from its connection and gives the
// connection back once the body is read to the end.
type bodyReader struct {
	pc      *pconn
	r       io.Reader
	lr      io.LimitedReader // r, for a body of known length
	stop    func() bool
	keep    bool
	done    bool
	chunked bool // trailers and the final CRLF follow the last chunk
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		if lr, ok := b.r.(*io.LimitedReader); ok && lr.N > 0 {
			err = io.ErrUnexpectedEOF
		}
	}
	if err == nil {
		if lr, ok := b.r.(*io.LimitedReader); ok && lr.N == 0 {
			err = io.EOF
		}
	}
	if err == io.EOF && b.chunked {
		if _, terr := b.pc.tp.ReadMIMEHeader(); terr != nil { // trailers, discarded
			err = terr
		}
	}
	if err != nil {
		if err != io.EOF {
			b.finish(err)
			return n, err
		}
		b.finish(nil)
	}
	return n, err
}

// finish ends the exchange: the connection goes back to the pool after a
// complete body, and is closed otherwise.
func (b *bodyReader) finish(err error) {
	if b.done {
		return
	}
	b.done = true
	if !b.stop() { // ctx was cancelled: the deadline was set
		b.keep = false
	}
	if err == nil && b.keep {
		b.pc.reuse = false
		b.pc.t.put(b.pc)
		return
	}
	b.pc.c.Close()
}

// Close closes the connection unless the body was read to the end.
func (b *bodyReader) Close() error {
	if !b.done {
		b.done = true
		b.stop()
		b.pc.c.Close()
	}
	return nil
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
