package h1_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/gateway/h1"
)

// TestClientGone closes the connection of a client whose request is
// running: the request's context is cancelled soon after WatchDelay, not
// when the handler gives up.
func TestClientGone(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	addr := start(t, &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		t0 := time.Now()
		select {
		case <-r.Context().Done():
			cancelled <- time.Since(t0)
		case <-time.After(5 * time.Second):
			cancelled <- -1
		}
	})})
	c := dial(t, addr)
	c.send("POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	time.Sleep(10 * time.Millisecond)
	c.nc.Close()
	if d := <-cancelled; d < 0 || d > 2*time.Second {
		t.Errorf("the request's context was cancelled after %v, want soon after %v (-1: never)", d, h1.WatchDelay)
	}
}

// TestWatchPipelined sends a second request while a slow first one runs:
// the watcher sees bytes, not a departure, so the first request is not
// cancelled and both answers come in order. Under -race it also checks
// that the watcher leaves the connection to the handler while the body
// is still being read (the body comes late here).
func TestWatchPipelined(t *testing.T) {
	addr := start(t, &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/slow" {
			time.Sleep(3 * h1.WatchDelay)
		}
		w.Header().Set("X-Ctx-Err", errString(r.Context().Err()))
		w.Write(b)
	})})
	c := dial(t, addr)
	c.send("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
	time.Sleep(2 * h1.WatchDelay) // the timer fires while the handler waits for the body
	c.send("slow" + "POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nfast")
	for _, want := range []string{"slow", "fast"} {
		resp, body := c.read("POST")
		if body != want || resp.Header.Get("X-Ctx-Err") != "" {
			t.Errorf("answer %q (context error %q), want %q and none", body, resp.Header.Get("X-Ctx-Err"), want)
		}
	}
}

// TestContextEnds checks that a request's context is done once its
// handler returned, as with net/http, so goroutines tied to it end.
func TestContextEnds(t *testing.T) {
	ctxs := make(chan context.Context, 1)
	addr := start(t, &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Hour) // registers with AfterFunc
		defer cancel()
		go func() { <-ctx.Done() }()
		ctxs <- r.Context()
		io.WriteString(w, "ok")
	})})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := c.read("GET"); body != "ok" {
		t.Fatalf("answer %q", body)
	}
	select {
	case <-(<-ctxs).Done():
	case <-time.After(2 * time.Second):
		t.Error("the request's context is not done after its answer")
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimSpace(err.Error())
}
