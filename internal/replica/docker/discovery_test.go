package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/shoal-ml/shoal/internal/gateway"
)

// ctr describes a container as the engine's inspection shows it.
type ctr struct {
	name   string
	labels map[string]string
	state  string            // running (default), paused, restarting, exited
	health string            // the health check's status; empty: no check
	ports  map[int][]string  // container port -> published "HOSTIP:PORT"s
	nets   map[string]string // network -> IP
}

func (c ctr) inspect() container.InspectResponse {
	st := &container.State{Status: container.ContainerState(c.state)}
	switch c.state {
	case "", "running":
		st.Status, st.Running = container.StateRunning, true
	case "paused":
		st.Running, st.Paused = true, true
	case "restarting":
		st.Running, st.Restarting = true, true
	}
	if c.health != "" {
		st.Health = &container.Health{Status: container.HealthStatus(c.health)}
	}
	ns := &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{}}
	ns.Ports = nat.PortMap{}
	for p, bs := range c.ports {
		var pb []nat.PortBinding
		for _, b := range bs {
			i := strings.LastIndex(b, ":")
			pb = append(pb, nat.PortBinding{HostIP: b[:i], HostPort: b[i+1:]})
		}
		ns.Ports[nat.Port(strconv.Itoa(p)+"/tcp")] = pb
	}
	for n, ip := range c.nets {
		ns.Networks[n] = &network.EndpointSettings{IPAddress: ip}
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: "id-" + c.name, Name: "/" + c.name, State: st},
		Config:            &container.Config{Labels: c.labels},
		NetworkSettings:   ns,
	}
}

// iris returns the labels of a replica of model iris with the extra
// key=value pairs.
func iris(kv ...string) map[string]string {
	l := map[string]string{LabelModel: "iris"}
	for i := 0; i < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// pub is a container publishing port 8080 at host.
func pub(name, host string, labels map[string]string) ctr {
	return ctr{name: name, labels: labels, ports: map[int][]string{8080: {host}}}
}

func rev(name string, weight int, reps ...gateway.Replica) gateway.Revision {
	return gateway.Revision{Name: name, Weight: weight, Replicas: reps}
}

func rep(addr string) gateway.Replica { return gateway.Replica{HTTP: addr} }

func models(m map[string][]gateway.Revision) *gateway.Table {
	t := &gateway.Table{Models: map[string]gateway.Model{}}
	for name, revs := range m {
		t.Models[name] = gateway.Model{Revisions: revs}
	}
	return t
}

func TestRoutingTable(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      []ctr
		network string
		want    *gateway.Table
		// problems: a substring of each problem, in order; a leading
		// "skip " means it must wrap ErrSkipped.
		problems []string
	}{
		{
			name: "none",
			want: models(nil),
		},
		{
			name: "published ports",
			in: []ctr{{name: "a", labels: iris(LabelGRPCPort, "8081"), ports: map[int][]string{
				8080: {"0.0.0.0:32768", ":::32768"}, 8081: {":32769"},
			}}},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, gateway.Replica{HTTP: "127.0.0.1:32768", GRPC: "127.0.0.1:32769"})}}),
		},
		{
			name: "host IPs",
			in: []ctr{
				pub("a", ":::32770", iris()),
				{name: "b", labels: iris(), ports: map[int][]string{8080: {"::1:40000", "127.0.0.1:40001"}}},
				pub("c", "192.0.2.7:40002", iris()),
				pub("d", "fd00::7:40003", iris()),
			},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1,
				rep("[::1]:32770"), rep("127.0.0.1:40001"), rep("192.0.2.7:40002"), rep("[fd00::7]:40003"))}}),
		},
		{
			name: "ports from labels",
			in: []ctr{{name: "a", labels: iris(LabelHTTPPort, "9000", LabelGRPCPort, "9001"), ports: map[int][]string{
				8080: {"127.0.0.1:1"}, 9000: {"127.0.0.1:2"}, 9001: {"127.0.0.1:3"},
			}}},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, gateway.Replica{HTTP: "127.0.0.1:2", GRPC: "127.0.0.1:3"})}}),
		},
		{
			name: "container IP on its only network",
			in:   []ctr{{name: "a", labels: iris(LabelGRPCPort, "8081"), nets: map[string]string{"shoal": "172.18.0.5"}}},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, gateway.Replica{HTTP: "172.18.0.5:8080", GRPC: "172.18.0.5:8081"})}}),
		},
		{
			name: "host network",
			in:   []ctr{{name: "a", labels: iris(), nets: map[string]string{"host": ""}}},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, rep("127.0.0.1:8080"))}}),
		},
		{
			name:    "named network",
			in:      []ctr{{name: "a", labels: iris(), nets: map[string]string{"front": "172.18.0.5", "back": "172.19.0.5"}}},
			network: "back",
			want:    models(map[string][]gateway.Revision{"iris": {rev("default", 1, rep("172.19.0.5:8080"))}}),
		},
		{
			name: "published port before the network",
			in: []ctr{{name: "a", labels: iris(), ports: map[int][]string{8080: {"127.0.0.1:5"}},
				nets: map[string]string{"front": "172.18.0.5", "back": "172.19.0.5"}}},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, rep("127.0.0.1:5"))}}),
		},
		{
			name: "several networks and none named",
			in: []ctr{
				{name: "a", labels: iris(), nets: map[string]string{"front": "172.18.0.5", "back": "172.19.0.5"}},
				pub("b", "127.0.0.1:5", iris()),
			},
			want:     models(map[string][]gateway.Revision{"iris": {rev("default", 1, rep("127.0.0.1:5"))}}),
			problems: []string{"skip a: REST port 8080: not published and on 2 networks (back, front)"},
		},
		{
			name:     "not on the named network",
			in:       []ctr{{name: "a", labels: iris(), nets: map[string]string{"front": "172.18.0.5"}}},
			network:  "back",
			want:     models(nil),
			problems: []string{`skip a: REST port 8080: not published and not on network "back"`},
		},
		{
			name:     "no network, nothing published",
			in:       []ctr{{name: "a", labels: iris()}},
			want:     models(nil),
			problems: []string{"skip a: REST port 8080: not published and on no network"},
		},
		{
			name:     "gRPC port not reachable",
			in:       []ctr{pub("a", "127.0.0.1:5", iris(LabelGRPCPort, "9001"))},
			want:     models(nil),
			problems: []string{"skip a: gRPC port 9001"},
		},
		{
			name: "the docker backend's containers",
			in: []ctr{{name: "shoal-iris-abc-000001",
				labels: map[string]string{LabelManagedBy: "shoal", LabelDeployment: "iris", LabelRevision: "iris-abc", LabelReplica: "iris-abc-000001"},
				ports:  map[int][]string{8080: {"127.0.0.1:40000"}, 8081: {"127.0.0.1:40001"}},
				nets:   map[string]string{"shoal": "172.18.0.2"},
			}},
			want: models(map[string][]gateway.Revision{"iris": {rev("iris-abc", 1, gateway.Replica{HTTP: "127.0.0.1:40000", GRPC: "127.0.0.1:40001"})}}),
		},
		{
			name: "model label before deployment label",
			in:   []ctr{pub("a", "127.0.0.1:1", map[string]string{LabelModel: "iris", LabelDeployment: "flowers"})},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, rep("127.0.0.1:1"))}}),
		},
		{
			name: "models, revisions and weights",
			in: []ctr{
				pub("iris-b-1", "127.0.0.1:3", iris(LabelRevision, "b")),
				pub("iris-a-2", "127.0.0.1:2", iris(LabelRevision, "a", LabelWeight, "3")),
				pub("iris-a-1", "127.0.0.1:1", iris(LabelRevision, "a", LabelWeight, "3")),
				pub("wine-1", "127.0.0.1:4", map[string]string{LabelModel: "wine", LabelWeight: "0"}),
			},
			want: models(map[string][]gateway.Revision{
				"iris": {rev("a", 3, rep("127.0.0.1:1"), rep("127.0.0.1:2")), rev("b", 1, rep("127.0.0.1:3"))},
				"wine": {rev("default", 0, rep("127.0.0.1:4"))},
			}),
		},
		{
			name: "weights that disagree: the first by name",
			in: []ctr{
				pub("c", "127.0.0.1:3", iris(LabelRevision, "a")),
				pub("b", "127.0.0.1:2", iris(LabelRevision, "a", LabelWeight, "5")),
				pub("a", "127.0.0.1:1", iris(LabelRevision, "a", LabelWeight, "3")),
			},
			want: models(map[string][]gateway.Revision{"iris": {rev("a", 3, rep("127.0.0.1:1"), rep("127.0.0.1:2"), rep("127.0.0.1:3"))}}),
			problems: []string{
				`container b: weight 5 of model "iris" revision "a" differs from 3 of container a; using 3`,
				`container c: weight 1 of model "iris" revision "a" differs from 3 of container a; using 3`,
			},
		},
		{
			name: "health and state",
			in: []ctr{
				{name: "healthy", labels: iris(), health: "healthy", ports: map[int][]string{8080: {"127.0.0.1:1"}}},
				{name: "no-check", labels: iris(), health: "none", ports: map[int][]string{8080: {"127.0.0.1:2"}}},
				{name: "starting", labels: iris(), health: "starting", ports: map[int][]string{8080: {"127.0.0.1:3"}}},
				{name: "unhealthy", labels: iris(), health: "unhealthy", ports: map[int][]string{8080: {"127.0.0.1:4"}}},
				{name: "paused", labels: iris(), state: "paused", ports: map[int][]string{8080: {"127.0.0.1:5"}}},
				{name: "restarting", labels: iris(), state: "restarting", ports: map[int][]string{8080: {"127.0.0.1:6"}}},
				{name: "exited", labels: iris(), state: "exited"},
				{name: "wine", labels: map[string]string{LabelModel: "wine"}, health: "starting"},
			},
			// A model whose containers are not ready stays, with no replica:
			// its requests wait in the activator.
			want: models(map[string][]gateway.Revision{
				"iris": {rev("default", 1, rep("127.0.0.1:1"), rep("127.0.0.1:2"))},
				"wine": {rev("default", 0)},
			}),
		},
		{
			name: "a revision with no ready replica takes no unpinned traffic",
			in: []ctr{
				pub("a", "127.0.0.1:1", iris(LabelRevision, "a", LabelWeight, "3")),
				{name: "b", labels: iris(LabelRevision, "b", LabelWeight, "2"), health: "starting", ports: map[int][]string{8080: {"127.0.0.1:2"}}},
			},
			want: models(map[string][]gateway.Revision{"iris": {rev("a", 3, rep("127.0.0.1:1")), rev("b", 0)}}),
		},
		{
			name: "bad labels",
			in: []ctr{
				pub("a-http", "127.0.0.1:1", iris(LabelHTTPPort, "http")),
				pub("b-grpc", "127.0.0.1:1", iris(LabelGRPCPort, "0")),
				pub("c-port", "127.0.0.1:1", iris(LabelHTTPPort, "70000")),
				pub("d-weight", "127.0.0.1:1", iris(LabelWeight, "x")),
				pub("e-weight", "127.0.0.1:1", iris(LabelWeight, "-1")),
				pub("f-model", "127.0.0.1:1", map[string]string{LabelModel: "a/b"}),
				pub("g-revision", "127.0.0.1:1", iris(LabelRevision, "x", LabelWeight, "")),
				pub("h-nolabel", "127.0.0.1:1", map[string]string{"other": "x"}),
				pub("i-good", "127.0.0.1:9", iris()),
			},
			want: models(map[string][]gateway.Revision{"iris": {rev("default", 1, rep("127.0.0.1:9"))}}),
			problems: []string{
				`skip a-http: shoal.dev/http-port "http": want a port number`,
				`skip b-grpc: shoal.dev/grpc-port "0": want a port number`,
				`skip c-port: shoal.dev/http-port "70000"`,
				`skip d-weight: shoal.dev/weight "x": want a whole number`,
				`skip e-weight: shoal.dev/weight "-1"`,
				`skip f-model: gateway: bad routing table: model "a/b"`,
				`skip g-revision: shoal.dev/weight ""`,
				`skip h-nolabel: no shoal.dev/model or shoal.dev/deployment label`,
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := make([]container.InspectResponse, len(c.in))
			for i, x := range c.in {
				in[i] = x.inspect()
			}
			got, problems := RoutingTable(in, c.network)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("RoutingTable() =\n%s\nwant\n%s", tableJSON(got), tableJSON(c.want))
			}
			if err := got.Validate(); err != nil {
				t.Errorf("RoutingTable() is not valid: %v", err)
			}
			if len(problems) != len(c.problems) {
				t.Fatalf("problems %q, want %d: %q", problems, len(c.problems), c.problems)
			}
			for i, p := range problems {
				want, skip := strings.CutPrefix(c.problems[i], "skip ")
				if errors.Is(p, ErrSkipped) != skip || !strings.Contains(p.Error(), want) {
					t.Errorf("problem %d = %q (skipped: %v), want %q", i, p, errors.Is(p, ErrSkipped), c.problems[i])
				}
			}
		})
	}
}

// TestRoutingTableOddContainers: containers missing whole parts of their
// inspection are skipped or left without replicas, never a crash.
func TestRoutingTableOddContainers(t *testing.T) {
	in := []container.InspectResponse{
		{},
		{Config: &container.Config{Labels: iris()}},
		{ContainerJSONBase: &container.ContainerJSONBase{ID: "0123456789abcdef", State: &container.State{Running: true}}, Config: &container.Config{Labels: iris()}},
	}
	got, problems := RoutingTable(in, "")
	want := models(map[string][]gateway.Revision{"iris": {rev("default", 0)}})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RoutingTable() = %s, want %s", tableJSON(got), tableJSON(want))
	}
	if len(problems) != 2 || !strings.Contains(problems[1].Error(), "0123456789ab: REST port 8080: no network settings") {
		t.Errorf("problems = %q, want the label-less container and 0123456789ab's network", problems)
	}
}

func tableJSON(t *gateway.Table) string {
	b, _ := json.MarshalIndent(t, "", "  ")
	return string(b)
}

// TestDiscoveryNoEngine: the first listing's error is Watch's.
func TestDiscoveryNoEngine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	api, err := client.NewClientWithOpts(client.WithHost("tcp://"+addr), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	d := &Discovery{Client: api}
	err = d.Watch(t.Context(), func(*gateway.Table) { t.Error("update called") })
	if err == nil || !strings.Contains(err.Error(), "docker: engine") {
		t.Errorf("Watch() = %v, want the engine's error", err)
	}
	if err := (&Discovery{Client: api, Resync: -1}).Watch(t.Context(), nil); err == nil {
		t.Error("Watch with a negative Resync: want an error")
	}
}

// fakeEngine is the part of the Engine API that Discovery uses, with
// containers and an event stream the test controls: the real engine's
// event stream cannot be broken from a test.
type fakeEngine struct {
	mu    sync.Mutex
	cs    map[string]container.InspectResponse
	down  bool          // answer 500 to everything
	drop  chan struct{} // closed to end the open event streams
	send  chan events.Message
	lists atomic.Int64 // container listings served
}

func newFakeEngine(t *testing.T) (*fakeEngine, *client.Client) {
	f := &fakeEngine{cs: map[string]container.InspectResponse{}, drop: make(chan struct{}), send: make(chan events.Message)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	api, err := client.NewClientWithOpts(client.WithHost("tcp://"+srv.Listener.Addr().String()), client.WithVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	return f, api
}

func (f *fakeEngine) set(c ctr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cs["id-"+c.name] = c.inspect()
}

func (f *fakeEngine) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	if down {
		close(f.drop)
		f.drop = make(chan struct{})
	}
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1.41")
	id, ok1 := strings.CutPrefix(path, "/containers/")
	id, ok2 := strings.CutSuffix(id, "/json")
	inspect := ok1 && ok2 && id != ""
	f.mu.Lock()
	down, drop := f.down, f.drop
	var list []container.Summary
	for id := range f.cs {
		list = append(list, container.Summary{ID: id})
	}
	info, found := f.cs[id]
	f.mu.Unlock()
	if down {
		http.Error(w, `{"message": "engine down"}`, http.StatusInternalServerError)
		return
	}
	switch {
	case path == "/containers/json":
		f.lists.Add(1)
		json.NewEncoder(w).Encode(list)
	case inspect:
		if !found {
			http.Error(w, `{"message": "no such container"}`, http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(info)
	case path == "/events":
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		enc := json.NewEncoder(w)
		for {
			select {
			case <-drop:
				return
			case <-r.Context().Done():
				return
			case m := <-f.send:
				enc.Encode(m)
				w.(http.Flusher).Flush()
			}
		}
	default:
		http.Error(w, `{"message": "not found"}`, http.StatusNotFound)
	}
}

// TestDiscoveryWatch follows a fake engine: an event causes a listing
// (and an update only when the table changed); while the engine is down
// the last table stays and each failed attempt is reported; once it is
// back, the table changed meanwhile arrives without any event.
func TestDiscoveryWatch(t *testing.T) {
	f, api := newFakeEngine(t)
	f.set(pub("a", "127.0.0.1:1", iris(LabelRevision, "a")))
	f.set(pub("bad", "127.0.0.1:1", iris(LabelWeight, "x")))
	var mu sync.Mutex
	var tables []*gateway.Table
	var errs []error
	d := &Discovery{Client: api, Debounce: 10 * time.Millisecond, Resync: time.Hour, MinBackoff: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond,
		OnError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		done <- d.Watch(ctx, func(tb *gateway.Table) { mu.Lock(); tables = append(tables, tb); mu.Unlock() })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch() = %v", err)
		}
	}()
	state := func() (int, *gateway.Table, []error) {
		mu.Lock()
		defer mu.Unlock()
		if len(tables) == 0 {
			return 0, nil, append([]error(nil), errs...)
		}
		return len(tables), tables[len(tables)-1], append([]error(nil), errs...)
	}
	want := func(reps ...string) *gateway.Table {
		var revs []gateway.Revision
		for _, r := range reps {
			revs = append(revs, rev(r, 1, rep("127.0.0.1:1")))
		}
		return models(map[string][]gateway.Revision{"iris": revs})
	}
	waitFor(t, 5*time.Second, "first table", func() bool { n, _, _ := state(); return n == 1 })
	if _, tb, errs := state(); !reflect.DeepEqual(tb, want("a")) || len(errs) != 1 || !errors.Is(errs[0], ErrSkipped) {
		t.Fatalf("first table %s, errors %q; want revision a and the bad container reported once", tableJSON(tb), errs)
	}

	// An event for another container: listed again, but the table is the
	// same: no update. One for a shoal container with a change: updated.
	lists := f.lists.Load()
	f.send <- events.Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{Attributes: map[string]string{LabelModel: "iris"}}}
	waitFor(t, 5*time.Second, "a listing after the event", func() bool { return f.lists.Load() > lists })
	f.set(pub("b", "127.0.0.1:1", iris(LabelRevision, "b")))
	f.send <- events.Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{Attributes: map[string]string{"other": "x"}}}
	f.send <- events.Message{Type: events.ContainerEventType, Action: "start", Actor: events.Actor{Attributes: map[string]string{LabelDeployment: "iris"}}}
	waitFor(t, 5*time.Second, "revision b", func() bool { _, tb, _ := state(); return reflect.DeepEqual(tb, want("a", "b")) })
	if n, _, errs := state(); n != 2 || len(errs) != 1 {
		t.Errorf("%d updates and errors %q after two changes, want 2 updates and the one report of the bad container", n, errs)
	}

	// The engine goes down: the last table stays, attempts are reported.
	f.setDown(true)
	waitFor(t, 5*time.Second, "failed attempts", func() bool { _, _, errs := state(); return len(errs) >= 4 })
	f.set(pub("c", "127.0.0.1:1", iris(LabelRevision, "c")))
	if n, tb, _ := state(); n != 2 || !reflect.DeepEqual(tb, want("a", "b")) {
		t.Errorf("while the engine is down: %d updates, last %s; want the last table kept", n, tableJSON(tb))
	}
	f.setDown(false)
	waitFor(t, 5*time.Second, "revision c after the engine is back", func() bool { _, tb, _ := state(); return reflect.DeepEqual(tb, want("a", "b", "c")) })
}

// recorder is a gateway.Source that passes on another's tables and keeps
// the last.
type recorder struct {
	gateway.Source
	last atomic.Pointer[gateway.Table]
}

func (r *recorder) Watch(ctx context.Context, update func(*gateway.Table)) error {
	return r.Source.Watch(ctx, func(t *gateway.Table) {
		r.last.Store(t)
		update(t)
	})
}

// revisions returns the revisions of model iris in the last table and
// their replica counts.
func (r *recorder) revisions() map[string]int {
	out := map[string]int{}
	if t := r.last.Load(); t != nil {
		for _, rv := range t.Models["iris"].Revisions {
			out[rv.Name] = len(rv.Replicas)
		}
	}
	return out
}

// TestDiscoveryEngine runs labelled containers of the iris image on the
// real engine and a gateway on a Discovery of them: predictions reach
// both revisions by weight (3:1); a stopped container's revision leaves
// the table, a started one joins it.
func TestDiscoveryEngine(t *testing.T) {
	api := engine(t)
	owner := uniqueName()
	t.Cleanup(func() { cleanup(t, api, owner) })
	loopback := []nat.PortBinding{{HostIP: "127.0.0.1"}}
	run := func(name, revision, weight string) string {
		t.Helper()
		resp, err := api.ContainerCreate(t.Context(), &container.Config{
			Image:        irisImage,
			ExposedPorts: nat.PortSet{httpPort: {}, grpcPort: {}},
			Labels: map[string]string{
				LabelManagedBy: owner, LabelModel: "iris", LabelRevision: revision, LabelWeight: weight, LabelGRPCPort: "8081",
			},
		}, &container.HostConfig{PortBindings: nat.PortMap{httpPort: loopback, grpcPort: loopback}}, nil, nil, owner+"-"+name)
		if err != nil {
			t.Fatal(err)
		}
		if err := api.ContainerStart(t.Context(), resp.ID, container.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		return resp.ID
	}
	run("a", "a", "3")
	b := run("b", "b", "1")

	var errsMu sync.Mutex
	var errs []string
	src := &recorder{Source: &Discovery{
		Client: api, Labels: []string{LabelManagedBy + "=" + owner}, Debounce: 50 * time.Millisecond,
		OnError: func(err error) { errsMu.Lock(); errs = append(errs, err.Error()); errsMu.Unlock() },
	}}
	gw, err := gateway.New(gateway.Config{Source: src, ProbeInterval: 100 * time.Millisecond, GracePeriod: time.Second})
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
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve() = %v", err)
		}
		errsMu.Lock()
		defer errsMu.Unlock()
		if len(errs) > 0 {
			t.Errorf("Discovery reported %q, want nothing", errs)
		}
	})
	base := "http://" + l.Addr().String()
	// infer sends one prediction, pinned to revision pin unless it is
	// empty, and returns the revision that answered.
	infer := func(pin string) (string, error) {
		req, err := http.NewRequest(http.MethodPost, base+"/v2/models/iris/infer", strings.NewReader(irisRequest))
		if err != nil {
			return "", err
		}
		if pin != "" {
			req.Header.Set("x-shoal-revision", pin)
		}
		resp, err := predictClient.Do(req)
		if err != nil {
			return "", err
		}
		var body strings.Builder
		_, err = io.Copy(&body, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(body.String(), `"data":[0]`) {
			return "", fmt.Errorf("infer: %s %s %v", resp.Status, body.String(), err)
		}
		return resp.Header.Get("x-shoal-revision"), nil
	}
	serves := func(rev string) func() bool {
		return func() bool { got, err := infer(rev); return err == nil && got == rev }
	}
	waitFor(t, 30*time.Second, "revision a serving", serves("a"))
	waitFor(t, 30*time.Second, "revision b serving", serves("b"))

	const n = 400
	count := map[string]int{}
	for range n {
		rev, err := infer("")
		if err != nil {
			t.Fatal(err)
		}
		count[rev]++
	}
	if count["a"]+count["b"] != n || count["a"] < n*65/100 || count["a"] > n*85/100 {
		t.Errorf("%d requests answered by %v, want about 3:1 for a and b", n, count)
	}
	t.Logf("%d requests: %v", n, count)

	// Stopped, b leaves the table; a new container of revision c joins it.
	stopped := time.Now()
	timeout := 1
	if err := api.ContainerStop(t.Context(), b, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "revision b gone", func() bool { _, ok := src.revisions()["b"]; return !ok })
	t.Logf("revision b left the table %v after the stop began", time.Since(stopped).Round(time.Millisecond))
	for range 20 {
		if rev, err := infer(""); err != nil || rev != "a" {
			t.Fatalf("after b stopped: %q, %v; want a", rev, err)
		}
	}
	started := time.Now()
	run("c", "c", "1")
	waitFor(t, 5*time.Second, "revision c in the table", func() bool { return src.revisions()["c"] == 1 })
	t.Logf("revision c joined the table %v after its start", time.Since(started).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "revision c serving", serves("c"))
	if got := src.revisions(); len(got) != 2 || got["a"] != 1 {
		t.Errorf("revisions %v, want a and c with one replica each", got)
	}
}
