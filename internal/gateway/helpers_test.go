package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"sigs.k8s.io/yaml"

	"github.com/shoal-ml/shoal/examples"
	"github.com/shoal-ml/shoal/internal/backend"
	"github.com/shoal-ml/shoal/internal/backend/xgboost"
	"github.com/shoal-ml/shoal/internal/serve"
)

const irisBody = `{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}`

// testReplica is a real `shoal serve` in this process, serving the
// example iris model as version Version on loopback listeners.
type testReplica struct {
	HTTP, GRPC string
	Version    string
	stop       func()
}

// startReplica starts a replica serving iris as version version and
// waits until it is ready. It stops when the test ends or on Stop.
func startReplica(t testing.TB, version string) *testReplica {
	t.Helper()
	return startReplicaTLS(t, version, nil)
}

// startReplicaTLS is startReplica serving TLS with cfg (nil: plain text).
func startReplicaTLS(t testing.TB, version string, cfg *tls.Config) *testReplica {
	t.Helper()
	dir := t.TempDir()
	src, err := fs.Sub(examples.Models, "models/iris/1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "iris", version), src); err != nil {
		t.Fatal(err)
	}
	s, err := serve.New(serve.Config{
		Repository: dir,
		Loaders:    map[string]backend.Loader{"xgboost": xgboost.Load},
		Logger:     slog.New(slog.DiscardHandler),
		TLS:        cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	hl := listen(t)
	gl := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hl, gl) }()
	var once sync.Once
	r := &testReplica{HTTP: hl.Addr().String(), GRPC: gl.Addr().String(), Version: version}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("replica %s: %v", r.HTTP, err)
			}
		})
	}
	t.Cleanup(r.stop)
	for deadline := time.Now().Add(10 * time.Second); !s.Ready(); {
		if time.Now().After(deadline) {
			t.Fatal("replica not ready after 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	return r
}

// Stop shuts the replica down and waits until its listeners are closed.
func (r *testReplica) Stop() { r.stop() }

func (r *testReplica) replica() Replica { return Replica{HTTP: r.HTTP, GRPC: r.GRPC} }

func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testGateway is a real gateway on loopback listeners whose routing
// table is a file read by FileSource, reloaded on SetTable.
type testGateway struct {
	*Gateway
	URL    string
	GRPC   *grpc.ClientConn
	path   string
	tick   chan time.Time
	client *http.Client
}

// startGateway serves cfg (its Source replaced by a FileSource of table)
// until the test ends.
// leanHTTP makes startGateway serve REST with package h1's server
// (TestLeanHTTP sets it while its subtests run; no test is parallel).
var leanHTTP bool

func startGateway(t testing.TB, cfg Config, table *Table) *testGateway {
	t.Helper()
	tg := &testGateway{path: filepath.Join(t.TempDir(), "routes.yaml"), tick: make(chan time.Time)}
	tg.writeTable(t, table)
	cfg.Source = &FileSource{Path: tg.path, Tick: tg.tick}
	if (leanHTTP || os.Getenv("SHOAL_TEST_LEAN_HTTP") == "1") && cfg.TLS == nil {
		cfg.LeanHTTP = true // package h1's server; .ci/run runs the whole suite this way too
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tg.Gateway = g
	hl, gl := listen(t), listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, hl, gl) }()
	tg.URL = "http://" + hl.Addr().String()
	tg.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	tg.GRPC = conn
	t.Cleanup(func() {
		conn.Close()
		tg.client.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Serve: %v", err)
		}
	})
	select {
	case <-g.loaded:
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not load its table")
	}
	return tg
}

func (tg *testGateway) writeTable(t testing.TB, table *Table) {
	t.Helper()
	b, err := yaml.Marshal(table)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tg.path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// SetTable rewrites the routes file and returns once the gateway has
// applied it: the second tick is only received after the first reload.
func (tg *testGateway) SetTable(t testing.TB, table *Table) {
	t.Helper()
	tg.writeTable(t, table)
	tg.tick <- time.Now()
	tg.tick <- time.Now()
}

// post sends body to path with headers, returning status, headers and body.
func (tg *testGateway) post(t testing.TB, path, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", tg.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// infer posts the iris request and fails the test unless it gets 200;
// it returns the answering revision and model version.
func (tg *testGateway) infer(t testing.TB, hdr ...string) (revision, version string) {
	t.Helper()
	code, h, b := tg.post(t, "/v2/models/iris/infer", irisBody, hdr...)
	if code != http.StatusOK {
		t.Fatalf("infer = %d %s, want 200", code, b)
	}
	var resp struct {
		ModelVersion string `json:"model_version"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	return h.Get(HeaderRevision), resp.ModelVersion
}

// metric returns the value of the sample of the gateway's /metrics whose
// line starts with prefix (name and labels), or 0.
func (tg *testGateway) metric(t testing.TB, prefix string) float64 {
	t.Helper()
	resp, err := tg.client.Get(tg.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte(prefix+" ")) {
			var v float64
			fmt.Sscanf(string(line[len(prefix)+1:]), "%g", &v)
			return v
		}
	}
	return 0
}

// oneRevision is a table of model iris with one revision "r1" of reps.
func oneRevision(reps ...*testReplica) *Table {
	rev := Revision{Name: "r1", Weight: 1}
	for _, r := range reps {
		rev.Replicas = append(rev.Replicas, r.replica())
	}
	return &Table{Models: map[string]Model{"iris": {Revisions: []Revision{rev}}}}
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
