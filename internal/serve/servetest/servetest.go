// Package servetest starts real shoal model servers on loopback listeners
// for the tests of other packages (backends, gateway), as net/http/httptest
// does for handlers. It is for tests only.
package servetest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-ml/shoal/internal/serve"
)

// Server is a running model server: REST at URL, gRPC through Conn. Stop
// shuts it down and reports a serving error to the test; it is idempotent
// and also runs at the end of the test.
type Server struct {
	URL  string
	Conn *grpc.ClientConn
	Stop func()
}

// Start serves cfg on 127.0.0.1 listeners and waits up to readyWithin for
// the server to turn ready.
func Start(t *testing.T, cfg serve.Config, readyWithin time.Duration) *Server {
	t.Helper()
	s, err := serve.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, gl) }()
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	srv := &Server{URL: "http://" + hl.Addr().String(), Conn: conn}
	srv.Stop = func() {
		once.Do(func() {
			cancel()
			conn.Close()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(srv.Stop)
	WaitFor(t, readyWithin, "server not ready", s.Ready)
	return srv
}

// Post sends a JSON body to path and returns the status and body.
func (s *Server) Post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(s.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Status returns the status of GET path, or 0 if the request failed.
func (s *Server) Status(path string) int {
	resp, err := http.Get(s.URL + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// WaitFor polls cond until it holds, failing the test with what after d.
func WaitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// SyncBuffer is a concurrency-safe buffer, for capturing logs.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
