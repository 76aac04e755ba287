package h1_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/gateway/h1"
)

// echo answers with what it was sent: method, URI, Host and protocol in
// X-* headers, the body it read as the body. Some paths behave otherwise:
//
//	/noread       answers "ok" without reading the body
//	/status/N     answers status N with body "x"
//	/big/N        answers N bytes of a pattern
//	/flush        writes "one", flushes, waits for release, writes "two"
//	/panic        panics
//	/inject       sets a header value with CR LF in it
//	/wrong-cl     sets Content-Length 100 and writes 5 bytes
//	/head-cl      sets Content-Length 42 and writes nothing
//	/block        waits for release, then answers "done"
func echo(release <-chan struct{}, seen *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen != nil {
			seen.Add(1)
		}
		h := w.Header()
		h.Set("X-Method", r.Method)
		h.Set("X-URI", r.RequestURI)
		h.Set("X-Host", r.Host)
		h.Set("X-Proto", r.Proto)
		switch p := r.URL.Path; {
		case p == "/noread":
			io.WriteString(w, "ok")
		case strings.HasPrefix(p, "/status/"):
			code, _ := strconv.Atoi(strings.TrimPrefix(p, "/status/"))
			w.WriteHeader(code)
			io.WriteString(w, "x")
		case strings.HasPrefix(p, "/big/"):
			n, _ := strconv.Atoi(strings.TrimPrefix(p, "/big/"))
			w.Write(pattern(n))
		case p == "/flush":
			io.WriteString(w, "one")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "two")
		case p == "/panic":
			panic("boom")
		case p == "/inject":
			h.Set("X-Evil", "a\r\nX-Injected: yes")
			io.WriteString(w, "ok")
		case p == "/wrong-cl":
			h.Set("Content-Length", "100")
			io.WriteString(w, "hello")
		case p == "/head-cl":
			h.Set("Content-Length", "42")
		case p == "/block":
			<-release
			io.WriteString(w, "done")
		default:
			b, err := io.ReadAll(r.Body)
			if err != nil {
				h.Set("X-Read-Error", err.Error())
			}
			h.Set("X-Trailer", r.Trailer.Get("T")) // set once the body is read
			w.Write(b)
		}
	})
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// start serves s (echo unless s.Handler is set) on 127.0.0.1, and
// checks at cleanup that Serve returned http.ErrServerClosed.
func start(t *testing.T, s *h1.Server) string {
	t.Helper()
	if s.Handler == nil {
		s.Handler = echo(nil, nil)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-done:
			if !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve: %v, want http.ErrServerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return l.Addr().String()
}

type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads one answer to a request with the given method, and its body.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// closed checks that the server closed the connection: nothing more
// comes but the end.
func (c *client) closed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.br.ReadByte()
	if err == nil {
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("connection not closed: got %q", append([]byte{b}, rest...))
	}
	if isTimeout(err) {
		c.t.Fatal("connection not closed after 5s")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func checkEcho(t *testing.T, resp *http.Response, body, method, uri, wantBody string) {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 (body %q)", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Method"); got != method {
		t.Errorf("method %q, want %q", got, method)
	}
	if got := resp.Header.Get("X-URI"); got != uri {
		t.Errorf("URI %q, want %q", got, uri)
	}
	if e := resp.Header.Get("X-Read-Error"); e != "" {
		t.Errorf("handler read error: %s", e)
	}
	if body != wantBody {
		t.Errorf("body %q, want %q", body, wantBody)
	}
}

func TestKeepAlive(t *testing.T) {
	addr := start(t, &h1.Server{})
	t.Run("sequential", func(t *testing.T) {
		c := dial(t, addr)
		for i := range 5 {
			uri := fmt.Sprintf("/r%d?q=%d", i, i)
			c.send("POST " + uri + " HTTP/1.1\r\nHost: h.example\r\nContent-Length: 3\r\n\r\nabc")
			resp, body := c.read("POST")
			checkEcho(t, resp, body, "POST", uri, "abc")
			if resp.Close {
				t.Fatalf("request %d: connection closed", i)
			}
			if got := resp.Header.Get("X-Host"); got != "h.example" {
				t.Errorf("host %q", got)
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date")
			}
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		c := dial(t, addr)
		var all strings.Builder
		for i := range 20 {
			fmt.Fprintf(&all, "POST /p%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%d", i, len(strconv.Itoa(i)), i)
		}
		all.WriteString("GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
		c.send(all.String())
		for i := range 20 {
			resp, body := c.read("POST")
			checkEcho(t, resp, body, "POST", fmt.Sprintf("/p%d", i), strconv.Itoa(i))
		}
		resp, body := c.read("GET")
		checkEcho(t, resp, body, "GET", "/last", "")
		if !resp.Close {
			t.Error("answer to Connection: close lacks Connection: close")
		}
		c.closed()
	})
	cases := []struct {
		name, req string
		keep      bool
	}{
		{"1.1 close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
		{"1.1 close token", "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", false},
		{"1.0", "GET / HTTP/1.0\r\n\r\n", false},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
		{"1.0 keep-alive any case", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(tc.req)
			resp, body := c.read("GET")
			checkEcho(t, resp, body, "GET", "/", "")
			if !tc.keep {
				if !resp.Close { // ReadResponse takes Connection: close out of the header
					t.Error("no Connection: close")
				}
				c.closed()
				return
			}
			conn := resp.Header.Get("Connection")
			if strings.HasPrefix(tc.req, "GET / HTTP/1.0") && !strings.EqualFold(conn, "keep-alive") {
				t.Errorf("Connection %q, want keep-alive", conn)
			}
			c.send(tc.req)
			resp, body = c.read("GET")
			checkEcho(t, resp, body, "GET", "/", "")
		})
	}
}

func TestBodies(t *testing.T) {
	addr := start(t, &h1.Server{})
	big := string(pattern(300 << 10)) // over the drain limit
	cases := []struct {
		name, req, path string
		body            string // what the echo reads
		trailer         string // value of trailer T
		keep            bool   // the connection serves a next request
	}{
		{name: "content-length", req: "Content-Length: 11\r\n\r\nhello world", path: "/", body: "hello world", keep: true},
		{name: "empty", req: "Content-Length: 0\r\n\r\n", path: "/", keep: true},
		{name: "chunked", req: "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", path: "/", body: "hello world", keep: true},
		{name: "chunked upper-case", req: "Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", path: "/", body: "abc", keep: true},
		{name: "chunk extensions and trailer", req: "Transfer-Encoding: chunked\r\nTrailer: T\r\n\r\n5;name=val\r\nhello\r\nA;x\r\n0123456789\r\n0;end\r\nT: tv\r\n\r\n", path: "/", body: "hello0123456789", trailer: "tv", keep: true},
		{name: "unread small", req: "Content-Length: 5\r\n\r\nhello", path: "/noread", body: "ok", keep: true},
		{name: "unread chunked", req: "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", path: "/noread", body: "ok", keep: true},
		{name: "unread over limit", req: "Content-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, path: "/noread", body: "ok", keep: false},
		{name: "read big", req: "Content-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big, path: "/", body: big, keep: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			go io.WriteString(c.nc, "POST "+tc.path+" HTTP/1.1\r\nHost: h\r\n"+tc.req)
			resp, body := c.read("POST")
			checkEcho(t, resp, body, "POST", tc.path, tc.body)
			if got := resp.Header.Get("X-Trailer"); got != tc.trailer {
				t.Errorf("trailer %q, want %q", got, tc.trailer)
			}
			if !tc.keep {
				if !resp.Close {
					t.Error("no Connection: close")
				}
				return // the server may reset: the body is still coming
			}
			if resp.Close {
				t.Fatal("connection closed")
			}
			c.send("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
			resp, body = c.read("GET")
			checkEcho(t, resp, body, "GET", "/next", "")
		})
	}
}

// TestBadRequests sends what must not be served: the server answers with
// its status and a JSON error, closes, and never runs the handler on
// anything (a request hidden in a body least of all).
// TestBadChunk checks that a malformed chunked body fails the handler's
// read and closes the connection: what follows is never a request.
func TestBadChunk(t *testing.T) {
	var seen atomic.Int64
	addr := start(t, &h1.Server{Handler: echo(nil, &seen)})
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, _ := c.read("POST")
	if resp.Header.Get("X-Read-Error") == "" {
		t.Error("the handler read a malformed chunked body without error")
	}
	if !resp.Close {
		t.Error("no Connection: close")
	}
	c.closed()
	if n := seen.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1", n)
	}
}

func TestBadRequests(t *testing.T) {
	var seen atomic.Int64
	addr := start(t, &h1.Server{Handler: echo(nil, &seen), MaxHeaderBytes: 4 << 10})
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
	cases := []struct {
		name, req string
		code      int
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"two content-lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
		{"content-length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!", 400},
		{"negative content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n" + smuggled, 400},
		{"signed content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello" + smuggled, 400},
		{"non-numeric content-length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello", 400},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n" + smuggled, 400},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
		{"TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n" + smuggled, 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", 400},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n\tContent-Length: 5\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\nhello", 400},
		{"space in name", "GET / HTTP/1.1\r\nHost: h\r\nX A: b\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", 400},
		{"CR in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rX-B: b\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad URI", "GET foo HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad URI escape", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"space in URI", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad version", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: h\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"HTTP/3.0", "GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505},
		{"header too large", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", 8<<10) + "\r\n\r\n", 431},
		{"too many small headers", "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-A: b\r\n", 2000) + "\r\n", 431},
		{"expect other", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx", 417},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := seen.Load()
			c := dial(t, addr)
			c.send(tc.req)
			resp, body := c.read("GET")
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d (body %q)", resp.StatusCode, tc.code, body)
			}
			if !resp.Close {
				t.Error("no Connection: close")
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var e struct{ Error string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Errorf("body %q is not a JSON error: %v", body, err)
			}
			c.closed()
			if n := seen.Load() - before; n != 0 && tc.code != 417 {
				t.Errorf("handler ran %d times", n)
			}
		})
	}
}

// TestErrorJSON checks that an error message quoting control bytes from
// the request is still valid JSON.
func TestErrorJSON(t *testing.T) {
	addr := start(t, &h1.Server{})
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\nX\x01\x7f\xff\x0b: v\r\n\r\n",
		"GET /\x01\x7f\xff HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		c := dial(t, addr)
		c.send(req)
		resp, body := c.read("GET")
		if resp.StatusCode != 400 {
			t.Errorf("%q: status %d", req, resp.StatusCode)
		}
		if !json.Valid([]byte(body)) {
			t.Errorf("%q: body %q is not JSON", req, body)
		}
		c.closed()
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("read header", func(t *testing.T) {
		addr := start(t, &h1.Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 10 * time.Second})
		c := dial(t, addr)
		t0 := time.Now()
		c.send("GET /some")
		c.closed()
		if d := time.Since(t0); d < 150*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %v, want about 200ms", d)
		}
	})
	t.Run("read header after keep-alive", func(t *testing.T) {
		addr := start(t, &h1.Server{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 10 * time.Second})
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		c.read("GET")
		t0 := time.Now()
		c.send("GET / HTTP/1.1\r\nHos")
		c.closed()
		if d := time.Since(t0); d > 3*time.Second {
			t.Errorf("closed after %v, want about 200ms", d)
		}
	})
	t.Run("idle", func(t *testing.T) {
		addr := start(t, &h1.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 200 * time.Millisecond})
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		c.read("GET")
		t0 := time.Now()
		c.closed()
		if d := time.Since(t0); d < 150*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %v, want about 200ms", d)
		}
	})
	t.Run("idle before first request", func(t *testing.T) {
		addr := start(t, &h1.Server{IdleTimeout: 200 * time.Millisecond})
		c := dial(t, addr)
		c.closed()
	})
}

func TestExpectContinue(t *testing.T) {
	var seen atomic.Int64
	addr := start(t, &h1.Server{Handler: echo(nil, &seen)})
	t.Run("read", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		line, err := c.br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("got %q, %v; want 100 Continue", line, err)
		}
		if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("after 100 Continue: %q", blank)
		}
		c.send("hello")
		resp, body := c.read("POST")
		checkEcho(t, resp, body, "POST", "/", "hello")
		if resp.Close {
			t.Fatal("connection closed")
		}
		c.send("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body = c.read("GET")
		checkEcho(t, resp, body, "GET", "/next", "")
	})
	t.Run("not read", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /status/401 HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, body := c.read("POST")
		if resp.StatusCode != 401 || body != "x" {
			t.Fatalf("got %d %q, want 401", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Error("no Connection: close")
		}
		c.closed()
	})
	t.Run("not read, body sent anyway", func(t *testing.T) {
		before := seen.Load()
		c := dial(t, addr)
		// A client that does not wait for 100 Continue: what follows the
		// headers is a body, never a request.
		c.send("POST /noread HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: " +
			strconv.Itoa(len("GET /x HTTP/1.1\r\nHost: h\r\n\r\n")) + "\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, _ := c.read("POST")
		if resp.StatusCode != 200 || !resp.Close {
			t.Fatalf("got %d close=%v, want 200 and close", resp.StatusCode, resp.Close)
		}
		c.closed()
		if n := seen.Load() - before; n != 1 {
			t.Errorf("handler ran %d times, want 1", n)
		}
	})
	t.Run("flush then read", func(t *testing.T) {
		// The handler answers before it reads: no 100 Continue may land in
		// the body.
		s := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "head:")
			w.(http.Flusher).Flush()
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		})}
		c := dial(t, start(t, s))
		c.send("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "POST"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		c.send("hello")
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != "head:hello" {
			t.Fatalf("body %q, %v; want head:hello", b, err)
		}
	})
}

func TestResponses(t *testing.T) {
	release := make(chan struct{})
	addr := start(t, &h1.Server{Handler: echo(release, nil)})
	t.Run("HEAD", func(t *testing.T) {
		c := dial(t, addr)
		c.send("HEAD /head-cl HTTP/1.1\r\nHost: h\r\n\r\nHEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("HEAD")
		if resp.ContentLength != 42 || body != "" {
			t.Errorf("HEAD /head-cl: length %d body %q, want 42 and none", resp.ContentLength, body)
		}
		resp, body = c.read("HEAD")
		if resp.StatusCode != 200 || body != "" {
			t.Errorf("HEAD /: %d %q", resp.StatusCode, body)
		}
		resp, body = c.read("GET")
		checkEcho(t, resp, body, "GET", "/next", "")
	})
	for _, code := range []int{204, 304} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			c := dial(t, addr)
			c.send(fmt.Sprintf("GET /status/%d HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n", code))
			head, err := c.br.ReadString('\n')
			if err != nil || !strings.HasPrefix(head, "HTTP/1.1 "+strconv.Itoa(code)+" ") {
				t.Fatalf("status line %q, %v", head, err)
			}
			for {
				line, err := c.br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				if line == "\r\n" {
					break
				}
				name, _, _ := strings.Cut(line, ":")
				if strings.EqualFold(name, "Content-Length") || strings.EqualFold(name, "Transfer-Encoding") {
					t.Errorf("%d has %q", code, line)
				}
			}
			resp, body := c.read("GET") // the next answer follows at once: no body
			checkEcho(t, resp, body, "GET", "/next", "")
		})
	}
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, 1 << 20} {
		t.Run(fmt.Sprintf("size %d", n), func(t *testing.T) {
			c := dial(t, addr)
			c.send(fmt.Sprintf("GET /big/%d HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n", n))
			resp, body := c.read("GET")
			if body != string(pattern(n)) {
				t.Fatalf("body of %d bytes differs from the %d written", len(body), n)
			}
			chunked := len(resp.TransferEncoding) > 0
			if want := n > 64<<10; chunked != want {
				t.Errorf("chunked %v, want %v", chunked, want)
			}
			if !chunked && resp.ContentLength != int64(n) {
				t.Errorf("Content-Length %d, want %d", resp.ContentLength, n)
			}
			resp, body = c.read("GET")
			checkEcho(t, resp, body, "GET", "/next", "")
		})
	}
	t.Run("big to HTTP/1.0", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /big/100000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := c.read("GET")
		if body != string(pattern(100000)) || !resp.Close || len(resp.TransferEncoding) > 0 {
			t.Fatalf("got %d bytes close=%v te=%v", len(body), resp.Close, resp.TransferEncoding)
		}
		c.closed()
	})
	t.Run("flush", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /flush HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "one" {
			t.Fatalf("before release: %q, %v", buf, err)
		}
		release <- struct{}{}
		rest, err := io.ReadAll(resp.Body)
		if err != nil || string(rest) != "two" {
			t.Fatalf("after release: %q, %v", rest, err)
		}
		c.send("GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		checkEcho(t, resp, body, "GET", "/next", "")
	})
	t.Run("header injection", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /inject HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if resp.Header.Get("X-Injected") != "" {
			t.Error("a handler header value injected a header")
		}
		if body != "ok" {
			t.Errorf("body %q", body)
		}
	})
	t.Run("wrong content-length", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET /wrong-cl HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, body := c.read("GET")
		if resp.ContentLength != 5 || body != "hello" {
			t.Errorf("length %d body %q, want 5 and hello", resp.ContentLength, body)
		}
		resp, body = c.read("GET")
		checkEcho(t, resp, body, "GET", "/next", "")
	})
	t.Run("date", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		resp, _ := c.read("GET")
		d, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil || time.Since(d).Abs() > time.Minute {
			t.Errorf("Date %q: %v", resp.Header.Get("Date"), err)
		}
	})
}

func TestPanic(t *testing.T) {
	addr := start(t, &h1.Server{})
	c := dial(t, addr)
	c.send("GET /panic HTTP/1.1\r\nHost: h\r\n\r\n")
	c.closed()
	other := dial(t, addr)
	other.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	resp, body := other.read("GET")
	checkEcho(t, resp, body, "GET", "/", "")
}

func TestShutdown(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		release := make(chan struct{})
		s := &h1.Server{Handler: echo(release, nil)}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		addr := l.Addr().String()

		idle := dial(t, addr)
		idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		idle.read("GET")
		busy := dial(t, addr)
		busy.send("GET /block HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(50 * time.Millisecond) // let /block start

		shut := make(chan error, 1)
		go func() { shut <- s.Shutdown(context.Background()) }()
		idle.closed()
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a request in flight", err)
		case <-time.After(100 * time.Millisecond):
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
		if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			t.Error("listener still accepts")
		}
		close(release)
		resp, body := busy.read("GET")
		if body != "done" || !resp.Close {
			t.Errorf("in-flight answer %q close=%v, want done and close", body, resp.Close)
		}
		busy.closed()
		if err := <-shut; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		s := &h1.Server{Handler: echo(release, nil)}
		addr := start(t, s)
		busy := dial(t, addr)
		busy.send("GET /block HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
		}
		busy.closed()
	})
	t.Run("close", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		s := &h1.Server{Handler: echo(release, nil)}
		addr := start(t, s)
		idle := dial(t, addr)
		idle.send("GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		idle.read("GET")
		busy := dial(t, addr)
		busy.send("GET /block HTTP/1.1\r\nHost: h\r\n\r\n")
		time.Sleep(50 * time.Millisecond)
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		idle.closed()
		busy.closed()
	})
}

// TestNoHandler checks that Serve refuses a Server without a handler.
func TestNoHandler(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var s h1.Server
	if err := s.Serve(l); err == nil {
		t.Fatal("Serve with no Handler returned nil")
	}
}

// TestLingeringClose answers a request whose large body the handler
// did not read, then checks that the server closed only its sending side
// and goes on reading (and discarding) what the client still sends for a
// while: a full close with input unread would make the kernel reset the
// connection, which on a real network can destroy the answer before the
// client read it.
func TestLingeringClose(t *testing.T) {
	addr := start(t, &h1.Server{})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /noread HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 1<<20)
	c.Write(pattern(512 << 10)) // over the drain limit: the server gives up on the body
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "ok" || !resp.Close {
		t.Fatalf("answer %q, %v, close %v; want ok and Connection: close", b, err, resp.Close)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the answer: %d bytes, %v; want EOF (the server's side closed)", n, err)
	}
	// The rest of the body still goes: the server reads it.
	for i := range 8 {
		time.Sleep(10 * time.Millisecond)
		if _, err := c.Write(pattern(16 << 10)); err != nil {
			t.Fatalf("write %d after the answer: %v (the server closed before reading)", i, err)
		}
	}
}
