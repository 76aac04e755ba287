package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/replica"
)

// fakeBackend runs no process: a replica is ready once started, unless its
// revision is listed in unready. The process backend is tested with real
// processes in internal/replica/process and internal/cli; these tests are
// about the controller's decisions, driven step by step.
type fakeBackend struct {
	mu       sync.Mutex
	replicas []Replica
	specs    map[string]replica.Spec // by replica ID
	unready  map[string]bool
	seq      int
	now      func() time.Time
	// serve, when set, gives each replica a real HTTP server that answers
	// every inference alike and counts them in infers, by revision.
	serve   bool
	servers []*httptest.Server
	infers  map[string]int
}

func (b *fakeBackend) inferCount(rev string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.infers[rev]
}

func (b *fakeBackend) resetInfers() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.infers)
}

func (b *fakeBackend) close() {
	for _, s := range b.servers {
		s.Close()
	}
}

// startUnready makes the replicas of rev started from now on not ready.
func (b *fakeBackend) startUnready(rev string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unready[rev] = true
}

// markReady makes the running replicas of rev ready.
func (b *fakeBackend) markReady(rev string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.replicas {
		if b.replicas[i].Revision == rev {
			b.replicas[i].Ready = true
		}
	}
}

// adoptAll marks every replica adopted, as a backend started again finds
// them.
func (b *fakeBackend) adoptAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.replicas {
		b.replicas[i].Adopted = true
	}
}

func (b *fakeBackend) Start(s replica.Spec) (Replica, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	r := Replica{ID: fmt.Sprintf("%s-%06d", s.Revision, b.seq), Deployment: s.Deployment, Revision: s.Revision,
		HTTP: fmt.Sprintf("127.0.0.1:%d", 10000+b.seq), Ready: !b.unready[s.Revision], Started: b.now()}
	if b.serve {
		rev := s.Revision
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			io.Copy(io.Discard, req.Body)
			if strings.HasSuffix(req.URL.Path, "/infer") {
				b.mu.Lock()
				if b.infers == nil {
					b.infers = map[string]int{}
				}
				b.infers[rev]++
				b.mu.Unlock()
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"model_name":"iris","outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1]}]}`)
		}))
		b.servers = append(b.servers, srv)
		r.HTTP = srv.Listener.Addr().String()
	}
	b.replicas = append(b.replicas, r)
	if b.specs == nil {
		b.specs = map[string]replica.Spec{}
	}
	b.specs[r.ID] = s
	return r, nil
}

func (b *fakeBackend) Stop(id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.replicas = slices.DeleteFunc(b.replicas, func(r Replica) bool { return r.ID == id })
	return nil
}

func (b *fakeBackend) List() []Replica {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.replicas)
}

func (b *fakeBackend) count(rev string) int {
	n := 0
	for _, r := range b.List() {
		if r.Revision == rev {
			n++
		}
	}
	return n
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeGateway holds the request counters a scrape of the gateway returns.
type fakeGateway struct {
	mu       sync.Mutex
	counters map[string]map[string]RevisionCounters
}

func (g *fakeGateway) add(model, rev string, requests int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.counters == nil {
		g.counters = map[string]map[string]RevisionCounters{}
	}
	if g.counters[model] == nil {
		g.counters[model] = map[string]RevisionCounters{}
	}
	c := g.counters[model][rev]
	c.Requests += requests
	g.counters[model][rev] = c
}

func (g *fakeGateway) scrape(context.Context) (map[string]map[string]RevisionCounters, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]map[string]RevisionCounters{}
	for m, revs := range g.counters {
		out[m] = map[string]RevisionCounters{}
		for r, c := range revs {
			out[m][r] = c
		}
	}
	return out, nil
}

// harness runs one controller over a store; run starts it, stop ends it
// (as a killed control plane: replicas stay with the backend).
type harness struct {
	t       *testing.T
	store   *store.Store
	backend *fakeBackend
	clock   *fakeClock
	gateway *fakeGateway
	cancel  context.CancelFunc
	done    chan error
	ctl     *Controller

	mu    sync.Mutex
	load  int64 // requests in flight the gateway reports for iris
	calls int   // of stats: one per autoscaler tick
}

func (h *harness) statsCalls() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls
}

func (h *harness) setLoad(n int64) {
	h.mu.Lock()
	h.load = n
	h.mu.Unlock()
}

func (h *harness) stats() []gateway.ModelStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	return []gateway.ModelStats{{Model: "iris", InFlight: h.load}}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, backend: &fakeBackend{unready: map[string]bool{}},
		clock: &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, gateway: &fakeGateway{}}
	h.backend.now = h.clock.Now
	t.Cleanup(func() {
		h.stop()
		st.Close()
		h.backend.close()
	})
	return h
}

func (h *harness) run() {
	h.t.Helper()
	ctl, err := New(Config{Store: h.store, Backend: h.backend, Now: h.clock.Now, Stats: h.stats,
		Resync: 2 * time.Millisecond, AutoscaleInterval: 5 * time.Millisecond, GatewayMetrics: h.gateway.scrape})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.ctl, h.cancel, h.done = ctl, cancel, make(chan error, 1)
	go func() { h.done <- ctl.Run(ctx) }()
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run = %v", err)
	}
	h.cancel = nil
}

func (h *harness) apply(yamlDoc string) v1alpha1.ModelDeployment {
	h.t.Helper()
	ds, err := v1alpha1.Decode([]byte(yamlDoc))
	if err != nil {
		h.t.Fatal(err)
	}
	d := ds[0]
	d.Default()
	if err := d.Validate(); err != nil {
		h.t.Fatal(err)
	}
	out, err := Apply(h.store, d)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds; the bound only keeps a broken test
// from hanging, it measures nothing.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (h *harness) memo(name string) memo {
	var m memo
	if _, err := h.store.State(name, &m); err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) events(name string) string {
	ev, err := h.store.Events(name)
	if err != nil {
		h.t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ev {
		fmt.Fprintf(&b, "%s: %s\n", e.Reason, e.Message)
	}
	return b.String()
}

const canaryDoc = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  model: {uri: /m/%s}
  rollout:
    strategy: canary
    steps: [{weight: 10, pause: 1h}, {weight: 50, pause: 1h}]
    analysis: {minRequests: 10}
`

// TestCanaryResumesAfterRestart kills the control plane in the middle of
// a canary's second step and starts another on the same store: it resumes
// the same step, with the same start and the requests already analysed.
func TestCanaryResumesAfterRestart(t *testing.T) {
	h := newHarness(t)
	v1 := h.apply(fmt.Sprintf(canaryDoc, "v1"))
	stable := RevisionName(&v1)
	h.run()
	h.waitFor("a stable replica", func() bool { return h.backend.count(stable) == 1 })

	v2 := h.apply(fmt.Sprintf(canaryDoc, "v2"))
	canary := RevisionName(&v2)
	h.waitFor("the canary at step 1", func() bool {
		m := h.memo("iris")
		return m.Canary != nil && m.Canary.Revision == canary && h.backend.count(canary) == 1
	})
	// Step 1 passes: enough healthy requests and its hour is over.
	h.gateway.add("iris", canary, 20)
	h.gateway.add("iris", stable, 200)
	h.clock.Add(time.Hour)
	h.waitFor("step 2", func() bool { m := h.memo("iris"); return m.Canary.Status.Step == 1 })
	started := h.memo("iris").Canary.Status.StepStarted
	// Five requests into step 2, the control plane dies.
	h.gateway.add("iris", canary, 5)
	h.waitFor("5 requests analysed in step 2", func() bool {
		return h.memo("iris").Canary.Seen[canary].Requests == 5
	})
	h.stop()

	// A new control plane and a new gateway (counting from zero).
	h.gateway = &fakeGateway{}
	h.clock.Add(time.Minute)
	h.run()
	h.waitFor("CanaryResumed", func() bool { return strings.Contains(h.events("iris"), "CanaryResumed") })
	h.gateway.add("iris", stable, 100) // first: the tick that sees the canary's sees these too
	h.gateway.add("iris", canary, 10)
	h.waitFor("15 canary requests analysed", func() bool {
		return h.memo("iris").Canary.Seen[canary].Requests == 15
	})
	m := h.memo("iris")
	if m.Canary.Status.Step != 1 || !m.Canary.Status.StepStarted.Equal(started) || m.Canary.Weight != 50 {
		t.Errorf("after restart: step %d started %v weight %d, want step 1 (the second) started %v at 50%%",
			m.Canary.Status.Step, m.Canary.Status.StepStarted, m.Canary.Weight, started)
	}
	if !strings.Contains(m.Canary.Reason, "over 15 requests") {
		t.Errorf("after restart the step is judged on %q, want the 5 requests before and the 10 after (15)", m.Canary.Reason)
	}
	if n := h.backend.count(canary); n != 1 {
		t.Errorf("canary replicas after restart = %d, want 1 (50%% of 1 desired)", n)
	}
	// The step ends as if the control plane had never stopped: promoted.
	h.clock.Add(time.Hour)
	h.waitFor("promotion", func() bool { return h.memo("iris").Canary.Status.Phase == "Promoted" })
	h.waitFor("the stable replica gone", func() bool { return h.backend.count(stable) == 0 })
	if ev := h.events("iris"); strings.Count(ev, "CanaryStarted") != 1 {
		t.Errorf("events:\n%s\nwant one CanaryStarted (the restart resumes, it does not start again)", ev)
	}
}

const rollingDoc = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  model: {uri: /m/%s}
  scaling: {minReplicas: 1, maxReplicas: 4, target: 1}
  rollout: {progressDeadline: 30s}
`

// TestTimeToReadyIsTheLeadTime: the controller measures a revision's start
// to ready, keeps it in the store, and gives it to the autoscaler, whose
// decision is an event with its inputs.
func TestTimeToReadyIsTheLeadTime(t *testing.T) {
	h := newHarness(t)
	d := h.apply(fmt.Sprintf(rollingDoc, "v1"))
	rev := RevisionName(&d)
	h.backend.startUnready(rev)
	h.run()
	h.waitFor("a replica started", func() bool { return h.backend.count(rev) == 1 })
	h.clock.Add(3 * time.Second)
	h.backend.markReady(rev)
	h.waitFor("its time to ready stored", func() bool { return len(h.memo("iris").ReadyTimes[rev]) == 1 })
	if got := h.memo("iris").ReadyTimes[rev]; got[0] != 3*time.Second {
		t.Errorf("ReadyTimes = %v, want [3s]", got)
	}
	// A load of 3 from now on: past the stable window every sample says 3.
	h.setLoad(3)
	h.clock.Add(61 * time.Second)
	h.waitFor("ScaledUp", func() bool { return h.backend.count(rev) == 3 })
	if ev := h.events("iris"); !strings.Contains(ev, "lead time 3s") || !strings.Contains(ev, "inputs: ready 1, current 1") {
		t.Errorf("events:\n%s\nwant a ScaledUp with its inputs, lead time 3s among them", ev)
	}
	h.clock.Add(5 * time.Second)
	h.backend.markReady(rev)
	h.waitFor("three times to ready", func() bool { return len(h.memo("iris").ReadyTimes[rev]) == 3 })
	if got := h.memo("iris").ReadyTimes[rev]; got[1] != 5*time.Second || got[2] != 5*time.Second {
		t.Errorf("ReadyTimes = %v, want [3s 5s 5s]", got)
	}
	// A restarted control plane knows the median (5s); the replicas it
	// adopts are not measured again.
	h.stop()
	h.backend.adoptAll()
	h.setLoad(5)
	h.run()
	h.waitFor("desired 4", func() bool { return h.backend.count(rev) == 4 })
	if ev := h.events("iris"); !strings.Contains(ev, "lead time 5s") {
		t.Errorf("events:\n%s\nwant the ScaledUp after the restart with lead time 5s", ev)
	}
	if got := h.memo("iris").ReadyTimes[rev]; len(got) != 3 {
		t.Errorf("ReadyTimes after the restart = %v, want the same 3 (adopted replicas are not measured)", got)
	}
}

func mustRev(t *testing.T, doc string) string {
	t.Helper()
	ds, err := v1alpha1.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Default()
	return ds[0].Spec.RevisionHash()
}

// TestRollingStall: a new revision that never gets ready stalls the rolling
// update: past spec.rollout.progressDeadline that is a Warning event and
// the condition RolloutProgressing False, ProgressDeadlineExceeded. The old
// revision keeps serving and, the load gone, is not scaled down while the
// rollout is in progress.
func TestRollingStall(t *testing.T) {
	h := newHarness(t)
	v1 := h.apply(fmt.Sprintf(rollingDoc, "v1"))
	old := RevisionName(&v1)
	h.setLoad(3)
	h.run()
	h.waitFor("3 replicas for a load of 3", func() bool { return h.backend.count(old) == 3 })

	h.backend.startUnready("iris-" + mustRev(t, fmt.Sprintf(rollingDoc, "v2")))
	d := h.apply(fmt.Sprintf(rollingDoc, "v2"))
	v2 := RevisionName(&d)
	h.waitFor("a new replica (surge 1)", func() bool { return h.backend.count(v2) == 1 })
	h.setLoad(0)
	h.clock.Add(61 * time.Second) // past the deadline and the stable window
	h.waitFor(ReasonProgressDeadlineExceeded, func() bool {
		return strings.Contains(h.events("iris"), ReasonProgressDeadlineExceeded)
	})
	h.waitFor("the condition", func() bool {
		got, err := h.store.Get("iris")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got.Status.Conditions {
			if c.Type == "RolloutProgressing" && c.Status == "False" && c.Reason == ReasonProgressDeadlineExceeded {
				return true
			}
		}
		return false
	})
	// Let the autoscaler decide on the idle load a while longer.
	h.clock.Add(2 * time.Second)
	calls := h.statsCalls()
	h.waitFor("five more autoscaler ticks", func() bool { return h.statsCalls() >= calls+5 })
	if n := h.backend.count(old); n != 3 {
		t.Errorf("old replicas = %d, want 3 (serving while the update is stalled)", n)
	}
	if ev := h.events("iris"); strings.Contains(ev, "ScaledDown") {
		t.Errorf("events:\n%s\nwant no ScaledDown during the rollout", ev)
	}
	// The new revision gets ready: the update finishes, and only then may
	// the autoscaler scale down.
	h.backend.mu.Lock()
	delete(h.backend.unready, v2) // replicas started from now on are ready at once
	h.backend.mu.Unlock()
	h.backend.markReady(v2)
	h.waitFor("RolloutDone", func() bool { return strings.Contains(h.events("iris"), "RolloutDone") })
	h.waitFor("ScaledDown", func() bool { return strings.Contains(h.events("iris"), "ScaledDown") })
}

const trafficDoc = `apiVersion: shoal.dev/v1alpha1
kind: ModelDeployment
metadata: {name: iris}
spec:
  model: {uri: /m/%s}
  scaling: {minReplicas: 2, maxReplicas: 2}
  traffic: %s
`

// TestTraffic applies spec.traffic and sends requests through a real
// gateway: a pinned 30/70 split between the previous and the latest
// revision, then a mirror of every request to the previous one, then a
// split to an unknown revision (refused, naming the field).
func TestTraffic(t *testing.T) {
	h := newHarness(t)
	h.backend.serve = true
	v1 := h.apply(fmt.Sprintf(trafficDoc, "v1", "{}"))
	old := RevisionName(&v1)
	h.run()
	gw, err := gateway.New(gateway.Config{Source: h.ctl.Source()})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, l, nil) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("gateway Serve = %v", err)
		}
	}()
	infer := func() string {
		resp, err := http.Post("http://"+l.Addr().String()+"/v2/models/iris/infer", "application/json",
			strings.NewReader(`{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("infer = %s; route %+v", resp.Status, h.ctl.Source().(*TableSource).Table().Models["iris"])
		}
		return resp.Header.Get(gateway.HeaderRevision)
	}
	route := func() gateway.Model { return h.ctl.Source().(*TableSource).Table().Models["iris"] }

	v2 := h.apply(fmt.Sprintf(trafficDoc, "v2", "{}"))
	cur := RevisionName(&v2)
	h.waitFor("the rolling update to v2", func() bool { return h.backend.count(cur) == 2 && h.backend.count(old) == 0 })

	// A pinned split brings the previous revision back at its share.
	h.apply(fmt.Sprintf(trafficDoc, "v2", "{split: [{revision: previous, weight: 30}, {revision: latest, weight: 70}]}"))
	h.waitFor("both revisions routed 30/70", func() bool {
		w := map[string]int{}
		for _, r := range route().Revisions {
			w[r.Name] = r.Weight
		}
		return len(w) == 2 && w[old] == 30 && w[cur] == 70
	})
	if n, m := h.backend.count(old), h.backend.count(cur); n != 1 || m != 2 {
		t.Errorf("replicas = %d of %s and %d of %s, want 1 (30%% of 2, rounded up) and 2", n, old, m, cur)
	}
	const n = 1000
	got := map[string]int{}
	for range n {
		got[infer()]++
	}
	// The gateway picks at random by weight: 300 expected, sd 14.5, so
	// the bounds are 4 sd away.
	if share := float64(got[old]) / n; share < 0.24 || share > 0.36 || got[old]+got[cur] != n {
		t.Errorf("answers by revision = %v, want %s near 30%% of %d", got, old, n)
	}

	// A mirror: all traffic to the latest, a copy of each request to the
	// previous one.
	h.apply(fmt.Sprintf(trafficDoc, "v2", "{mirror: {revision: previous, percent: 100}}"))
	h.waitFor("the mirror routed", func() bool {
		m := route()
		return m.Mirror != nil && m.Mirror.Revision == old && m.Mirror.Percent == 100 && len(m.Revisions) == 2
	})
	for _, r := range route().Revisions {
		if r.Name == old && r.Weight != 0 {
			t.Errorf("mirror revision %s has weight %d, want 0 (copies only)", old, r.Weight)
		}
	}
	h.backend.resetInfers()
	for range 100 {
		if rev := infer(); rev != cur {
			t.Fatalf("answered by %q with a mirror, want %s", rev, cur)
		}
	}
	h.waitFor("100 copies at the mirror", func() bool { return h.backend.inferCount(old) == 100 })

	// A split to a revision the control plane cannot run is refused.
	ds, err := v1alpha1.Decode([]byte(fmt.Sprintf(trafficDoc, "v2", "{split: [{revision: iris-0000000000, weight: 100}]}")))
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Default()
	if _, err := Apply(h.store, ds[0]); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "spec.traffic.split[0].revision") {
		t.Errorf("Apply(split to an unknown revision) = %v, want a bad request naming spec.traffic.split[0].revision", err)
	}
}
