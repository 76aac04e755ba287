package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTransport drives the client against a net/http server through the
// answer shapes a replica may send.
func TestTransport(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/echo":
			fmt.Fprintf(w, "%s %s %s q=%s", r.Method, r.Header.Get("X-Test"), body, r.URL.Query().Get("q"))
		case "/chunked":
			for i := range 3 {
				fmt.Fprintf(w, "part%d;", i)
				w.(http.Flusher).Flush()
			}
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/status":
			w.WriteHeader(http.StatusTeapot)
			w.Write([]byte("short and stout"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	rt := New()
	defer rt.CloseIdleConnections()
	do := func(method, path, body string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("X-Test", "yes")
		if body != "" {
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		return resp.StatusCode, string(b), resp.Header
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/echo?q=1", "hello", 200, "POST yes hello q=1"},
		{"GET", "/echo", "", 200, "GET yes  q="},
		{"POST", "/echo", "", 200, "POST yes  q="},
		{"GET", "/chunked", "", 200, "part0;part1;part2;"},
		{"GET", "/empty", "", 204, ""},
		{"HEAD", "/echo", "", 200, ""},
		{"GET", "/status", "", 418, "short and stout"},
		{"GET", "/close", "", 200, "bye"},
		{"POST", "/echo", "again", 200, "POST yes again q="},
	} {
		code, got, _ := do(tc.method, tc.path, tc.body)
		if code != tc.code || got != tc.want {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, code, got, tc.code, tc.want)
		}
	}
	// One connection served everything up to /close, a second the rest.
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (kept alive, closed once on Connection: close)", n)
	}
	// The server closes the idle connection: the pooled one is stale,
	// and the request goes again on a new one.
	srv.CloseClientConnections()
	if code, got, _ := do("POST", "/echo", "after"); code != 200 || got != "POST yes after q=" {
		t.Errorf("after the server closed the connection: %d %q", code, got)
	}

	// A cancelled request fails with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/echo", nil)
	if _, err := rt.RoundTrip(req); err == nil {
		t.Error("cancelled request succeeded")
	}
}

// TestSend checks the request-free hop: the request line, Host, headers
// and body arrive as given, a stale pooled connection is replaced with
// the body sent again, and a request line that could split the request
// is refused before anything is sent.
func TestSend(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s host=%s x=%s len=%d body=%s", r.Method, r.RequestURI, r.Host, r.Header.Get("X-Test"), r.ContentLength, body)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	rt := New()
	defer rt.CloseIdleConnections()
	host := srv.Listener.Addr().String()
	h := http.Header{"X-Test": {"yes"}}
	send := func(method, uri, body string) (string, error) {
		t.Helper()
		resp, err := rt.Send(context.Background(), host, method, uri, h, []byte(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.Request != nil {
			t.Error("Send's answer has a Request")
		}
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for _, tc := range []struct{ method, uri, body, want string }{
		{"POST", "/v2/models/m/infer?q=%2F", `{"a":1}`, `POST /v2/models/m/infer?q=%2F host=` + host + ` x=yes len=7 body={"a":1}`},
		{"POST", "/v2/models/m/infer", "", "POST /v2/models/m/infer host=" + host + " x=yes len=0 body="},
		{"GET", "/v2/models/m%2Fx/ready", "", "GET /v2/models/m%2Fx/ready host=" + host + " x=yes len=0 body="},
	} {
		got, err := send(tc.method, tc.uri, tc.body)
		if err != nil || got != tc.want {
			t.Errorf("Send %s %s = %q, %v; want %q", tc.method, tc.uri, got, err, tc.want)
		}
	}
	srv.CloseClientConnections()
	if got, err := send("POST", "/again", "body"); err != nil || !strings.HasSuffix(got, "len=4 body=body") {
		t.Errorf("after the server closed the connection: %q, %v", got, err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	for _, bad := range [][2]string{{"GET", "/a b"}, {"GET", "/a\r\nX-Evil: 1"}, {"GE T", "/"}, {"GET", "http://elsewhere/"}, {"GET", ""}, {"", "/"}} {
		if _, err := send(bad[0], bad[1], ""); err == nil || !strings.Contains(err.Error(), "bad request line") {
			t.Errorf("Send %q %q: err %v, want a bad request line", bad[0], bad[1], err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("bad request lines opened connections: %d, want 2", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rt.Send(ctx, host, "GET", "/", nil, nil); err != context.Canceled {
		t.Errorf("cancelled Send: %v, want context.Canceled", err)
	}
}
