package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentCallers mixes, on one transport and one host, POSTs with
// bodies (the gateway's requests and mirrored copies) and body-less GETs
// under short deadlines that often expire mid-exchange (its readiness
// probes). Every answer must be the one to its own request: a connection
// handed to two callers at once, or given back while a deadline could
// still interrupt it, shows up as a foreign or missing answer.
func TestConcurrentCallers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Query().Get("id"), body)
	}))
	defer srv.Close()
	rt := New()
	defer rt.CloseIdleConnections()
	const workers, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for w := range workers {
		wg.Go(func() { // requests
			for i := range each {
				id := fmt.Sprintf("%d-%d", w, i)
				body := strings.Repeat("x", i%7) + id
				req, _ := http.NewRequest("POST", srv.URL+"/infer?id="+id, strings.NewReader(body))
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
				resp, err := rt.RoundTrip(req)
				if err != nil {
					errs <- fmt.Errorf("POST %s: %v", id, err)
					continue
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if want := "POST " + id + " " + body; err != nil || string(got) != want {
					errs <- fmt.Errorf("POST %s = %q, %v; want %q", id, got, err, want)
				}
			}
		})
		wg.Go(func() { // probes, some cancelled in flight
			for i := range each {
				id := fmt.Sprintf("p%d-%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*20*time.Microsecond+time.Microsecond)
				req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/ready?id="+id, nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					cancel()
					continue // the deadline passed: any error may be right
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				if want := "GET " + id + " "; err == nil && string(got) != want {
					errs <- fmt.Errorf("GET %s = %q, want %q", id, got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Errorf("%d exchanges went wrong", n)
	}
}
