package upstream

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTLS sends requests over TLS, reusing one connection, and checks that
// a transport takes only the scheme of its mode.
func TestTLS(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write([]byte(r.Proto + " " + string(b)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	tr := New()
	tr.TLS = &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		req, _ := http.NewRequest("POST", srv.URL+"/", strings.NewReader("hello"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "HTTP/1.1 hello" {
			t.Errorf("request %d = %d %q, want 200 %q", i, resp.StatusCode, b, "HTTP/1.1 hello")
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("3 requests used %d connections, want 1", n)
	}
	plainURL := strings.Replace(srv.URL, "https://", "http://", 1)
	for _, c := range []struct {
		name string
		tr   *Transport
		url  string
	}{
		{"http URL to a TLS transport", tr, plainURL},
		{"https URL to a plain transport", New(), srv.URL},
	} {
		req, _ := http.NewRequest("GET", c.url+"/", nil)
		if _, err := c.tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "scheme") {
			t.Errorf("%s: err = %v, want a scheme error", c.name, err)
		}
	}
	untrusting := New()
	untrusting.TLS = &tls.Config{}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	if _, err := untrusting.RoundTrip(req); err == nil {
		t.Errorf("a transport that does not trust the server's certificate got through")
	}
}
