package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/serve"
	"github.com/shoal-ml/shoal/internal/serve/servetest"
)

const irisBody = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}`

// irisStore opens a store holding one ModelDeployment, iris.
func irisStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ds, err := v1alpha1.Decode([]byte("apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata:\n  name: iris\nspec:\n  model:\n    uri: /m/v1\n"))
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Default()
	if _, err := Apply(st, ds[0]); err != nil {
		t.Fatal(err)
	}
	return st
}

// startIris starts a real model server for the example iris model and
// returns its REST host:port.
func startIris(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src, err := fs.Sub(examples.Models, "models/iris/1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "iris", "1"), src); err != nil {
		t.Fatal(err)
	}
	s := servetest.Start(t, serve.Config{
		Repository: dir,
		Loaders:    map[string]backend.Loader{"xgboost": xgboost.Load},
		Logger:     slog.New(slog.DiscardHandler),
	}, 10*time.Second)
	return strings.TrimPrefix(s.URL, "http://")
}

// irisTable routes iris to one revision with the given replicas (none:
// scaled to zero).
func irisTable(rev string, replicas ...string) *gateway.Table {
	r := gateway.Revision{Name: rev, Weight: 1}
	for _, a := range replicas {
		r.Replicas = append(r.Replicas, gateway.Replica{HTTP: a})
	}
	return &gateway.Table{Models: map[string]gateway.Model{"iris": {Revisions: []gateway.Revision{r}}}}
}

// controlServer serves a control API on addr until stop, which closes
// every connection at once, as a control plane that dies does.
type controlServer struct {
	addr string
	srv  *http.Server
	done chan struct{}
}

func startControl(t *testing.T, addr string, cfg APIConfig) *controlServer {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &controlServer{addr: l.Addr().String(), srv: &http.Server{Handler: Handler(cfg)}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.srv.Serve(l)
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *controlServer) stop() {
	c.srv.Close()
	<-c.done
}

// errorLog collects a ControlSource's errors.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) has(target error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		if errors.Is(e, target) {
			return true
		}
	}
	return false
}

func (l *errorLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.errs)
}

// TestStandaloneGateway runs a gateway apart from a control API test
// server (as `shoal gateway -control URL` does) in front of real
// replicas: it follows route changes, skips a bad table, keeps the last
// good table while the control plane is down and catches up when it is
// back, and asks the control plane to scale up a model at zero.
func TestStandaloneGateway(t *testing.T) {
	st := irisStore(t)
	repA, repB := startIris(t), startIris(t)
	var ts TableSource
	ts.Set(irisTable("v1", repA))
	var activations atomic.Int32
	cfg := APIConfig{Store: st, Routes: &ts, ScaleUp: func(ctx context.Context, name string) error {
		// The activator's call: give iris a replica, as the reconciler would.
		activations.Add(1)
		ts.Set(irisTable("v4", repB))
		return nil
	}}
	ctl := startControl(t, "127.0.0.1:0", cfg)

	var errs errorLog
	cs := &gateway.ControlSource{URL: "http://" + ctl.addr, Heartbeat: 50 * time.Millisecond,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, OnError: errs.add}
	g, err := gateway.New(gateway.Config{Source: cs, ScaleUp: cs.ScaleUp, ProbeInterval: -1, ActivatorTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	gw := httptest.NewServer(g.Handler())
	defer gw.Close()

	infer := func() (int, string) {
		t.Helper()
		resp, err := http.Post(gw.URL+"/v2/models/iris/infer", "application/json", strings.NewReader(irisBody))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(gateway.HeaderRevision)
	}
	revision := func() string {
		if m, ok := g.Table().Models["iris"]; ok && len(m.Revisions) == 1 {
			return m.Revisions[0].Name
		}
		return ""
	}
	expect := func(step, rev string) {
		t.Helper()
		servetest.WaitFor(t, 10*time.Second, step+": gateway table never reached revision "+rev, func() bool { return revision() == rev })
		if code, got := infer(); code != 200 || got != rev {
			t.Errorf("%s: infer = %d from %q, want 200 from %q", step, code, got, rev)
		}
	}

	expect("first table", "v1")
	ts.Set(irisTable("v2", repB))
	expect("route change", "v2")

	bad := irisTable("v9", repA)
	m := bad.Models["iris"]
	m.Policy = "fastest"
	bad.Models["iris"] = m
	ts.Set(bad)
	servetest.WaitFor(t, 10*time.Second, "bad table not reported", func() bool { return errs.has(gateway.ErrBadTable) })
	if code, rev := infer(); code != 200 || rev != "v2" {
		t.Errorf("after a bad table: infer = %d from %q, want 200 from the last good v2", code, rev)
	}

	ctl.stop()
	ts.Set(irisTable("v3", repA))
	n := errs.count()
	servetest.WaitFor(t, 10*time.Second, "control plane down: no failed attempt reported", func() bool { return errs.count() > n+1 })
	if code, rev := infer(); code != 200 || rev != "v2" {
		t.Errorf("control plane down: infer = %d from %q, want 200 from the last good v2", code, rev)
	}
	startControl(t, ctl.addr, cfg)
	expect("control plane back", "v3")

	ts.Set(irisTable("v4")) // scaled to zero
	servetest.WaitFor(t, 10*time.Second, "scale to zero not seen", func() bool {
		m := g.Table().Models["iris"]
		return len(m.Revisions) == 1 && m.Revisions[0].Name == "v4" && len(m.Revisions[0].Replicas) == 0
	})
	if code, rev := infer(); code != 200 || rev != "v4" {
		t.Errorf("activation: infer = %d from %q, want 200 from v4", code, rev)
	}
	if activations.Load() == 0 {
		t.Errorf("the gateway never asked the control plane to scale up")
	}
}

// TestRoutesAPI checks the routing-table endpoints' answers and errors.
func TestRoutesAPI(t *testing.T) {
	st := irisStore(t)
	var ts TableSource
	ts.Set(irisTable("v1", "10.0.0.1:8080"))
	var mu sync.Mutex
	var asked []string
	full := httptest.NewServer(Handler(APIConfig{Store: st, Routes: &ts, ScaleUp: func(ctx context.Context, name string) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, name)
		return nil
	}}))
	defer full.Close()
	bare := httptest.NewServer(Handler(APIConfig{Store: st}))
	defer bare.Close()
	do := func(method, url string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		method, url string
		code        int
		contains    string
	}{
		{"GET", full.URL + "/v1/routes", 200, `"10.0.0.1:8080"`},
		{"GET", full.URL + "/v1/routes?watch=maybe", 400, "watch"},
		{"GET", full.URL + "/v1/routes?watch=true&heartbeat=1ns", 400, "heartbeat"},
		{"GET", full.URL + "/v1/routes?watch=true&heartbeat=soon", 400, "heartbeat"},
		{"POST", full.URL + "/v1/deployments/nope/activate", 404, "not found"},
		{"POST", full.URL + "/v1/deployments/iris/activate", 202, `"activating":"iris"`},
		{"GET", bare.URL + "/v1/routes", 501, "not served"},
		{"POST", bare.URL + "/v1/deployments/iris/activate", 501, "not served"},
	} {
		if code, body := do(c.method, c.url); code != c.code || !strings.Contains(body, c.contains) {
			t.Errorf("%s %s = %d %s, want %d containing %q", c.method, c.url, code, body, c.code, c.contains)
		}
	}
	mu.Lock()
	if len(asked) != 1 || asked[0] != "iris" {
		t.Errorf("ScaleUp calls = %q, want [iris]", asked)
	}
	mu.Unlock()
	code, body := do("GET", full.URL+"/v1/routes")
	if tb, err := gateway.DecodeTable([]byte(body)); code != 200 || err != nil || tb.Models["iris"].Revisions[0].Name != "v1" {
		t.Errorf("GET /v1/routes is not a valid table: %d %v %s", code, err, body)
	}

	// The watch: the table first, then heartbeats, then each change.
	resp, err := http.Get(full.URL + "/v1/routes?watch=true&heartbeat=10ms")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("watch Content-Type = %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() string {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("watch ended: %v", sc.Err())
		}
		return sc.Text()
	}
	if l := next(); !strings.HasPrefix(l, `{"type":"routes","routes":{"models":{"iris"`) || !strings.Contains(l, `"v1"`) {
		t.Errorf("first line = %s, want the table", l)
	}
	if l := next(); l != `{"type":"heartbeat"}` {
		t.Errorf("second line = %s, want a heartbeat", l)
	}
	ts.Set(irisTable("v2", "10.0.0.2:8080"))
	for l := next(); !strings.Contains(l, `"v2"`); l = next() {
		if l != `{"type":"heartbeat"}` {
			t.Fatalf("line = %s, want heartbeats until the v2 table", l)
		}
	}
}
