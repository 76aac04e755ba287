package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/pack"
)

// Labels that Discovery reads, besides LabelDeployment (the model name
// when LabelModel is absent) and LabelRevision (default "default").
const (
	// LabelModel is the model name clients use.
	LabelModel = "shoal.dev/model"
	// LabelWeight is the revision's weight (default 1).
	LabelWeight = "shoal.dev/weight"
	// LabelHTTPPort is the container port of the REST listener (default
	// 8080).
	LabelHTTPPort = "shoal.dev/http-port"
	// LabelGRPCPort is the container port of the gRPC listener (default:
	// none, REST only; 8081 for the docker backend's containers).
	LabelGRPCPort = "shoal.dev/grpc-port"
)

// ErrSkipped wraps Discovery's reports of the containers it leaves out of
// the routing table because of their labels or networks.
var ErrSkipped = errors.New("docker: container skipped")

// Discovery is a gateway.Source of the running containers of a Docker
// engine that carry LabelModel or LabelDeployment (`shoal gateway
// -docker`). RoutingTable says how containers become the table.
//
// Watch lists the containers, then follows the engine's container events
// and lists them again after each relevant one (debounced) and
// periodically. When the event stream breaks it keeps the last table and
// connects again with exponential backoff (and jitter), listing again
// once connected. Set the fields before the first call.
type Discovery struct {
	// Client talks to the engine. Nil means a client from the environment
	// (DOCKER_HOST or the default socket) that negotiates the API
	// version; Watch closes only a client it made.
	Client *client.Client
	// Network names the network on which a container's address is taken
	// when it does not publish the port on the host. Empty means the
	// container's only network (a container on several is skipped).
	Network string
	// Labels are further label filters ("KEY" or "KEY=VALUE") that every
	// container must match, such as "shoal.dev/managed-by=shoal". Empty
	// means none.
	Labels []string
	// Debounce is the delay between an event and the listing it causes;
	// events meanwhile share that listing. Zero means 100ms.
	Debounce time.Duration
	// Resync is the period of the listings that no event causes. Zero
	// means 30s.
	Resync time.Duration
	// MinBackoff and MaxBackoff bound the wait before the event stream is
	// opened again; it doubles after each failed attempt and starts over
	// once a listing succeeds. Zero means 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// OnError receives failed listings and event streams, skipped
	// containers (ErrSkipped, once until they change) and revisions whose
	// containers disagree on their weight. Nil ignores them.
	OnError func(error)
}

// watchActions are the container events after which Discovery lists the
// containers again (health_status matches its "health_status: ..." forms).
var watchActions = []string{"start", "die", "stop", "kill", "pause", "unpause", "destroy", "rename", "health_status"}

// Watch lists the containers and calls update with their table (it
// returns the error if that first listing fails: the engine cannot be
// reached), then follows the engine until ctx is done and returns nil.
// update is called again only when the table changes.
func (d *Discovery) Watch(ctx context.Context, update func(*gateway.Table)) error {
	if d.Debounce < 0 || d.Resync < 0 || d.MinBackoff < 0 || d.MaxBackoff < 0 {
		return errors.New("docker: Discovery durations must not be negative")
	}
	api := d.Client
	if api == nil {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return fmt.Errorf("docker: client: %w", err)
		}
		defer c.Close()
		api = c
	}
	w := &watcher{d: d, api: api, update: update}
	if err := w.relist(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("docker: engine: %w", err)
	}
	return gateway.Reconnect(ctx, d.MinBackoff, d.MaxBackoff, w.follow, func(err error) {
		w.report(fmt.Errorf("docker: discovery: %w", err))
	})
}

// watcher is the state of one Watch.
type watcher struct {
	d        *Discovery
	api      *client.Client
	update   func(*gateway.Table)
	last     *gateway.Table
	problems map[string]bool // the reports of the last listing
}

// follow opens the event stream, lists the containers, and lists them
// again after relevant events and at each resync until the stream breaks
// (it returns why) or ctx is done. listed says whether the listing after
// connecting succeeded.
func (w *watcher) follow(ctx context.Context) (listed bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for _, a := range watchActions {
		f.Add("event", a)
	}
	for _, l := range w.d.Labels {
		f.Add("label", l)
	}
	msgs, errs := w.api.Events(sctx, events.ListOptions{Filters: f})
	if err := w.relist(ctx); err != nil {
		return false, fmt.Errorf("list containers: %w", err)
	}
	resync := time.NewTicker(cmp.Or(w.d.Resync, 30*time.Second))
	defer resync.Stop()
	var debounce *time.Timer
	var due <-chan time.Time
	defer func() {
		if debounce != nil {
			debounce.Stop()
		}
	}()
	relist := func() {
		if err := w.relist(ctx); err != nil && ctx.Err() == nil {
			w.report(fmt.Errorf("docker: discovery: list containers: %w", err))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-errs:
			if err == nil {
				err = errors.New("stream closed")
			}
			return true, fmt.Errorf("events: %w", err)
		case m := <-msgs:
			if due != nil || !w.selected(m.Actor.Attributes) {
				continue
			}
			debounce = time.NewTimer(cmp.Or(w.d.Debounce, 100*time.Millisecond))
			due = debounce.C
		case <-due:
			due, debounce = nil, nil
			relist()
		case <-resync.C:
			relist()
		}
	}
}

// selected reports whether an event's attributes (the container's labels,
// among others) mark a container that Discovery lists.
func (w *watcher) selected(attrs map[string]string) bool {
	_, model := attrs[LabelModel]
	_, dep := attrs[LabelDeployment]
	return model || dep
}

// relist lists the containers and calls update if their table changed.
func (w *watcher) relist(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	cs, err := w.inspect(lctx)
	if err != nil {
		return err
	}
	t, problems := RoutingTable(cs, w.d.Network)
	seen := make(map[string]bool, len(problems))
	for _, p := range problems {
		seen[p.Error()] = true
		if !w.problems[p.Error()] {
			w.report(p)
		}
	}
	w.problems = seen
	if w.last != nil && reflect.DeepEqual(w.last, t) {
		return nil
	}
	w.last = t
	w.update(t)
	return nil
}

// inspect lists the running (and paused) containers that carry
// LabelModel or LabelDeployment, and the Labels filters, and inspects
// them. A container removed meanwhile is left out.
func (w *watcher) inspect(ctx context.Context) ([]container.InspectResponse, error) {
	var ids []string
	for _, key := range []string{LabelModel, LabelDeployment} {
		f := filters.NewArgs(filters.Arg("label", key))
		for _, l := range w.d.Labels {
			f.Add("label", l)
		}
		cs, err := w.api.ContainerList(ctx, container.ListOptions{Filters: f})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if !slices.Contains(ids, c.ID) {
				ids = append(ids, c.ID)
			}
		}
	}
	out := make([]container.InspectResponse, 0, len(ids))
	for _, id := range ids {
		info, err := w.api.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func (w *watcher) report(err error) {
	if w.d.OnError != nil {
		w.d.OnError(err)
	}
}

// RoutingTable is the routing table of containers, as Discovery builds it:
//
//   - The model is the container's LabelModel, else its LabelDeployment;
//     the revision its LabelRevision, else "default"; the revision's
//     weight its LabelWeight, else 1. When the containers of a revision
//     disagree on the weight, the first by name gives it (and a problem
//     says so).
//   - A replica's REST address is the host port published for the
//     container port of LabelHTTPPort (default 8080), its gRPC address
//     that of LabelGRPCPort (default none; 8081, the port of images made
//     by internal/pack, for containers with LabelManagedBy). A host IP
//     0.0.0.0 or empty becomes 127.0.0.1, :: becomes ::1. A port not
//     published is reached on the container's IP on network (default:
//     its only network; the host network means 127.0.0.1).
//   - Containers not running, paused, restarting, or with a health check
//     that is not healthy (yet) add no replica, but their model and
//     revision stay in the table. A revision without a replica has weight
//     0: unpinned requests go to the others, and, when no revision has a
//     replica, wait in the activator, as pinned requests to it do.
//   - A container with a bad label (a port or weight that is not a
//     number, a model or revision name the table refuses) or no address
//     is skipped, with a problem wrapping ErrSkipped.
//
// Revisions are ordered by name, replicas by container name. The table
// is valid; containers is not modified.
func RoutingTable(containers []container.InspectResponse, network string) (*gateway.Table, []error) {
	cs := slices.Clone(containers)
	slices.SortFunc(cs, func(a, b container.InspectResponse) int {
		return cmp.Or(strings.Compare(containerName(a), containerName(b)), strings.Compare(containerID(a), containerID(b)))
	})
	type revKey struct{ model, revision string }
	type revision struct {
		weight int
		first  string // the container that gave the weight
		reps   []gateway.Replica
	}
	revs := map[revKey]*revision{}
	var problems []error
	for _, c := range cs {
		r, err := route(c, network)
		name := containerName(c)
		if err != nil {
			problems = append(problems, fmt.Errorf("%w: %s: %v", ErrSkipped, name, err))
			continue
		}
		k := revKey{r.model, r.revision}
		rev := revs[k]
		if rev == nil {
			rev = &revision{weight: r.weight, first: name}
			revs[k] = rev
		} else if rev.weight != r.weight {
			problems = append(problems, fmt.Errorf("docker: container %s: weight %d of model %q revision %q differs from %d of container %s; using %d",
				name, r.weight, r.model, r.revision, rev.weight, rev.first, rev.weight))
		}
		if r.replica != nil {
			rev.reps = append(rev.reps, *r.replica)
		}
	}
	keys := slices.Collect(maps.Keys(revs))
	slices.SortFunc(keys, func(a, b revKey) int {
		return cmp.Or(strings.Compare(a.model, b.model), strings.Compare(a.revision, b.revision))
	})
	t := &gateway.Table{Models: map[string]gateway.Model{}}
	for _, k := range keys {
		m, rv := t.Models[k.model], revs[k]
		w := rv.weight
		if len(rv.reps) == 0 {
			w = 0 // unpinned requests would wait for it in the activator
		}
		m.Revisions = append(m.Revisions, gateway.Revision{Name: k.revision, Weight: w, Replicas: rv.reps})
		t.Models[k.model] = m
	}
	return t, problems
}

// containerRoute is what one container adds to the table.
type containerRoute struct {
	model, revision string
	weight          int
	replica         *gateway.Replica // nil when the container is not ready
}

// route reads one container's labels, state and addresses.
func route(c container.InspectResponse, network string) (containerRoute, error) {
	var labels map[string]string
	if c.Config != nil {
		labels = c.Config.Labels
	}
	r := containerRoute{model: cmp.Or(labels[LabelModel], labels[LabelDeployment]), revision: cmp.Or(labels[LabelRevision], "default"), weight: 1}
	if r.model == "" {
		return r, fmt.Errorf("no %s or %s label", LabelModel, LabelDeployment)
	}
	if v, ok := labels[LabelWeight]; ok {
		w, err := strconv.Atoi(v)
		if err != nil || w < 0 {
			return r, fmt.Errorf("%s %q: want a whole number, 0 or more", LabelWeight, v)
		}
		r.weight = w
	}
	httpPort, err := portLabel(labels, LabelHTTPPort, pack.HTTPPort)
	if err != nil {
		return r, err
	}
	grpcDefault := 0
	if labels[LabelManagedBy] != "" {
		grpcDefault = pack.GRPCPort
	}
	grpcPort, err := portLabel(labels, LabelGRPCPort, grpcDefault)
	if err != nil {
		return r, err
	}
	one := gateway.Table{Models: map[string]gateway.Model{r.model: {Revisions: []gateway.Revision{{Name: r.revision, Weight: r.weight}}}}}
	if err := one.Validate(); err != nil {
		return r, err
	}
	if !ready(c) {
		return r, nil
	}
	rep := gateway.Replica{}
	if rep.HTTP, err = address(c, httpPort, network); err != nil {
		return r, fmt.Errorf("REST port %d: %v", httpPort, err)
	}
	if grpcPort != 0 {
		if rep.GRPC, err = address(c, grpcPort, network); err != nil {
			return r, fmt.Errorf("gRPC port %d: %v", grpcPort, err)
		}
	}
	r.replica = &rep
	return r, nil
}

// portLabel reads a port label; def when absent.
func portLabel(labels map[string]string, key string, def int) (int, error) {
	v, ok := labels[key]
	if !ok {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("%s %q: want a port number, 1-65535", key, v)
	}
	return p, nil
}

// ready reports whether a container runs, unpaused, and its health check
// (if it has one) passes.
func ready(c container.InspectResponse) bool {
	if c.ContainerJSONBase == nil || c.State == nil {
		return false
	}
	s := c.State
	if !s.Running || s.Paused || s.Restarting {
		return false
	}
	return s.Health == nil || s.Health.Status == container.NoHealthcheck || s.Health.Status == container.Healthy || s.Health.Status == ""
}

// address returns where the gateway reaches container port p of c: the
// host port published for it, else the container's IP on network.
func address(c container.InspectResponse, p int, network string) (string, error) {
	port := strconv.Itoa(p)
	ns := c.NetworkSettings
	if ns == nil {
		return "", errors.New("no network settings")
	}
	if a := hostAddress(ns.Ports[nat.Port(port+"/tcp")]); a != "" {
		return a, nil
	}
	if network == "" {
		switch len(ns.Networks) {
		case 0:
			return "", errors.New("not published and on no network")
		case 1:
			for n := range ns.Networks {
				network = n
			}
		default:
			names := slices.Sorted(maps.Keys(ns.Networks))
			return "", fmt.Errorf("not published and on %d networks (%s): name one (-docker-network)", len(names), strings.Join(names, ", "))
		}
	}
	if network == "host" {
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ep := ns.Networks[network]
	if ep == nil {
		return "", fmt.Errorf("not published and not on network %q", network)
	}
	ip := cmp.Or(ep.IPAddress, ep.GlobalIPv6Address)
	if ip == "" {
		return "", fmt.Errorf("not published and no IP on network %q", network)
	}
	return net.JoinHostPort(ip, port), nil
}

// hostAddress returns the address of the first IPv4 binding with a host
// port, else of the first IPv6 one, else "". The unspecified addresses
// become loopback ones.
func hostAddress(bs []nat.PortBinding) string {
	v6 := ""
	for _, b := range bs {
		if b.HostPort == "" {
			continue
		}
		ip := b.HostIP
		switch ip {
		case "", "0.0.0.0":
			ip = "127.0.0.1"
		case "::":
			ip = "::1"
		}
		a := net.JoinHostPort(ip, b.HostPort)
		if !strings.Contains(ip, ":") {
			return a
		}
		if v6 == "" {
			v6 = a
		}
	}
	return v6
}

// containerName is c's name, else its short ID.
func containerName(c container.InspectResponse) string {
	if c.ContainerJSONBase == nil {
		return ""
	}
	return cmp.Or(strings.TrimPrefix(c.Name, "/"), shortID(c.ID))
}

func containerID(c container.InspectResponse) string {
	if c.ContainerJSONBase == nil {
		return ""
	}
	return c.ID
}
