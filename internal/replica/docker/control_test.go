package docker

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/replica/replicatest"
)

// plane is a control plane as `shoal up -docker` wires it, in process: the
// controller on the docker backend (behind control.Backends), the gateway
// and the control API.
type plane struct {
	t       *testing.T
	backend *control.Backends
	store   *store.Store
	gateway string // base URL
	api     string // base URL
}

func startPlane(t *testing.T, cfg Config) *plane {
	t.Helper()
	st, err := store.Open(t.TempDir() + "/store.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ctlp atomic.Pointer[control.Controller]
	cfg.OnChange = func() {
		if c := ctlp.Load(); c != nil {
			c.Wake()
		}
	}
	db, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	bs := &control.Backends{ByName: map[string]control.Backend{"docker": db}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gwURL := "http://" + l.Addr().String()
	var gw *gateway.Gateway
	ctl, err := control.New(control.Config{
		Store: st, Backend: bs, GatewayURL: gwURL, Logger: cfg.Logger.With("component", "control"),
		Stats:          func() []gateway.ModelStats { return gw.Stats() },
		GatewayMetrics: control.ScrapeGateway(gwURL + "/metrics"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctlp.Store(ctl)
	gw, err = gateway.New(gateway.Config{
		Source: ctl.Source(), ScaleUp: ctl.ScaleUp, GracePeriod: 2 * time.Second,
		Logger: cfg.Logger.With("component", "gateway"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); gw.Serve(ctx, l, nil) }()
	go func() { defer wg.Done(); ctl.Run(ctx) }()
	api := httptest.NewServer(control.Handler(control.APIConfig{Store: st, Replicas: bs.List, Logs: bs.Logs, GatewayURL: gwURL}))
	// Cleanups run last-in first-out: the control plane stops before
	// the backend closes.
	t.Cleanup(func() { api.Close(); cancel(); wg.Wait() })
	return &plane{t: t, backend: bs, store: st, gateway: gwURL, api: api.URL}
}

func (p *plane) do(method, path, body string) string {
	p.t.Helper()
	req, err := http.NewRequest(method, p.api+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		p.t.Fatalf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return string(b)
}

// settled reports whether the deployment runs only its current revision,
// with want ready replicas and no others.
func (p *plane) settled(name string, want int) bool {
	d, err := p.store.Get(name)
	if err != nil {
		p.t.Fatal(err)
	}
	d.Default()
	cur := control.RevisionName(&d)
	n := 0
	for _, r := range p.backend.List() {
		if r.Deployment != name {
			continue
		}
		if r.Revision != cur || !r.Ready {
			return false
		}
		n++
	}
	return n == want
}

// load sends iris predictions through the gateway from n clients until
// stop is called, which returns the counts of successes and failures and
// the first failures.
func (p *plane) load(n int) (stop func() (ok, failed int64, errs []string)) {
	return replicatest.Load(n, func() error { return predict(p.gateway) })
}

func irisDocker(model, args string) string {
	return fmt.Sprintf(`apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata:
  name: iris
spec:
  backend: docker
  model:
    uri: %s
  runtime:
    args: %s
  resources:
    cpu: "1"
    memory: 256Mi
  scaling:
    minReplicas: 2
    maxReplicas: 2
  rollout:
    maxSurge: "1"
    maxUnavailable: "0"
`, model, args)
}

// TestControlPlane: a ModelDeployment with backend: docker is applied,
// its replicas become ready and serve predictions through the gateway;
// a rolling update to a new revision under constant load fails no
// request; the replicas' logs come through the control API; deleting the
// deployment leaves no container.
func TestControlPlane(t *testing.T) {
	api := engine(t)
	cfg, _ := testConfig(t, api)
	p := startPlane(t, cfg)
	model := modelDir(t)

	start := time.Now()
	p.do("POST", "/v1/deployments", irisDocker(model, `["-default-timeout", "20s"]`))
	waitFor(t, 90*time.Second, "first prediction", func() bool { return predict(p.gateway) == nil })
	first := time.Since(start)
	waitFor(t, 60*time.Second, "two ready replicas", func() bool { return p.settled("iris", 2) })
	t.Logf("backend docker: apply -> first prediction %v, -> 2 ready replicas %v", first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	old, _ := p.store.Get("iris")
	old.Default()
	oldRev := control.RevisionName(&old)
	stop := p.load(4)
	time.Sleep(300 * time.Millisecond) // let load build up before the update
	start = time.Now()
	p.do("POST", "/v1/deployments", irisDocker(model, `["-default-timeout", "30s"]`))
	waitFor(t, 90*time.Second, "rolling update done", func() bool {
		d, _ := p.store.Get("iris")
		d.Default()
		return control.RevisionName(&d) != oldRev && p.settled("iris", 2)
	})
	ok, failed, errs := stop()
	t.Logf("rolling update in %v: %d requests ok, %d failed", time.Since(start).Round(time.Millisecond), ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("rolling update: %d ok, %d failed %q; want none failed", ok, failed, errs)
	}
	// The old revision's last container goes once its drain ends.
	waitFor(t, 30*time.Second, "two containers", func() bool { return len(containers(t, api, cfg.Owner)) == 2 })

	logs := p.do("GET", "/v1/deployments/iris/logs?tail=20", "")
	if !strings.Contains(logs, "] ") || !strings.Contains(logs, "model ready") {
		t.Errorf("logs = %q, want the replicas' output", logs)
	}

	p.do("DELETE", "/v1/deployments/iris", "")
	waitFor(t, 30*time.Second, "no replicas", func() bool { return len(p.backend.List()) == 0 })
	waitFor(t, 30*time.Second, "no containers", func() bool { return len(containers(t, api, cfg.Owner)) == 0 })
}
