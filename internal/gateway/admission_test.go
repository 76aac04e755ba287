package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestAdmission holds a replica's only slot with a slow request: the next
// request queues and is served when the slot frees, the one after that
// finds the queue full and gets 503 with Retry-After at once.
func TestAdmission(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Write([]byte(`{"outputs":[]}`))
	}))
	defer backend.Close()
	defer close(release) // before backend.Close: unblock handlers
	table := &Table{Models: map[string]Model{"slow": {
		MaxConcurrency: 1,
		Revisions:      []Revision{{Name: "r1", Weight: 1, Replicas: []Replica{{HTTP: backend.Listener.Addr().String()}}}},
	}}}
	tg := startGateway(t, Config{QueueDepth: 1, QueueTimeout: 10 * time.Second, ProbeInterval: -1}, table)

	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, _ = tg.post(t, "/v2/models/slow/infer", "{}")
		}()
		if i == 0 {
			<-arrived // the first holds the slot
		}
	}
	waitFor(t, func() bool { return tg.Stats()[0].InFlight == 2 }) // the second is queued
	start := time.Now()
	code, h, b := tg.post(t, "/v2/models/slow/infer", "{}")
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Errorf("third request = %d %s, want 503 with Retry-After", code, b)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("rejection took %v, want at once", d)
	}
	release <- struct{}{} // first done; the second takes the slot
	<-arrived
	release <- struct{}{}
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("held and queued requests = %v, want 200 200", codes)
	}
	if got := tg.metric(t, `shoal_gateway_rejected_total{model="slow",reason="queue_full"}`); got != 1 {
		t.Errorf("queue_full = %v, want 1", got)
	}
}

// TestNoRequestLeavesTheTable checks that neither the path nor the Host
// header can send a request anywhere but to a replica of the table.
func TestNoRequestLeavesTheTable(t *testing.T) {
	hits := make(chan string, 10)
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Secret-Hop") != "" || r.Header.Get("Keep-Alive") != "" {
			t.Errorf("hop-by-hop headers reached the replica: %v", r.Header)
		}
		hits <- r.Host + " " + r.URL.RequestURI()
	}))
	defer replica.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached a server outside the table: %s", r.URL)
	}))
	defer other.Close()
	addr := replica.Listener.Addr().String()
	tg := startGateway(t, Config{ProbeInterval: -1}, &Table{Models: map[string]Model{"m": {
		Revisions: []Revision{{Name: "r", Weight: 1, Replicas: []Replica{{HTTP: addr}}}},
	}}})
	otherAddr := other.Listener.Addr().String()
	for _, path := range []string{
		"/v2/models/m/infer",
		"/v2/models/m/../../x",
		"/v2/models/m/infer?host=" + otherAddr,
		"/v2/models/m%2F..%2F/infer",
	} {
		conn, err := net.Dial("tcp", tg.URL[len("http://"):])
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("POST " + path + " HTTP/1.1\r\nHost: " + otherAddr + "\r\nX-Forwarded-Host: " + otherAddr + "\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 0\r\nConnection: close, X-Secret-Hop\r\n\r\n"))
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		conn.Read(buf)
		conn.Close()
	}
	close(hits)
	if len(hits) == 0 {
		t.Fatal("no request reached the replica")
	}
	for h := range hits {
		if h[:len(addr)] != addr {
			t.Errorf("replica saw Host %q", h)
		}
	}
}

func TestParseTable(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		ok         bool
	}{
		{"minimal", "models: {m: {revisions: [{name: a, weight: 1, replicas: [{http: '127.0.0.1:1'}]}]}}", true},
		{"scaled to zero", "models: {m: {}}", true},
		{"full", `
models:
  iris:
    policy: round_robin
    timeout: 2s
    max_concurrency: 8
    sticky_header: x-user
    mirror: {revision: b, percent: 5}
    revisions:
      - {name: a, weight: 9, replicas: [{http: "10.0.0.1:8080", grpc: "10.0.0.1:8081"}]}
      - {name: b, weight: 1}
`, true},
		{"unknown field", "models: {m: {revisions: [], colour: red}}", false},
		{"bad policy", "models: {m: {policy: random}}", false},
		{"duplicate revision", "models: {m: {revisions: [{name: a}, {name: a}]}}", false},
		{"negative weight", "models: {m: {revisions: [{name: a, weight: -1}]}}", false},
		{"address without port", "models: {m: {revisions: [{name: a, replicas: [{http: example.com}]}]}}", false},
		{"address with path", "models: {m: {revisions: [{name: a, replicas: [{http: 'h:80/x'}]}]}}", false},
		{"mirror to nowhere", "models: {m: {mirror: {revision: z, percent: 1}, revisions: [{name: a}]}}", false},
		{"mirror over 100", "models: {m: {mirror: {revision: a, percent: 101}, revisions: [{name: a}]}}", false},
		{"bad duration", "models: {m: {timeout: soon}}", false},
		{"model name with a slash", "models: {a/b: {}}", false},
		{"model name with dots", "models: {'..': {}}", false},
	} {
		_, err := ParseTable([]byte(tc.yaml))
		if (err == nil) != tc.ok {
			t.Errorf("%s: ParseTable = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
