// Package docker is the docker backend for replicas: it runs each replica
// of a model revision as a container on a Docker engine, through the
// Engine API (the official Go client, not the docker CLI).
//
// The image of a revision is built by internal/pack from the revision's
// model repository and the static shoal binary, tagged
// <ImageRepository>/<deployment>:<source> (source: a digest of the model
// files and the binary) and streamed into the engine, unless the engine
// already holds that tag: revisions that differ only in flags, environment
// or limits share an image, and a restarted control plane builds nothing
// again. Each replica is a container of that
// image on a user-defined bridge network (created if missing), with its
// REST and gRPC ports published on 127.0.0.1 random host ports (the
// gateway runs on the host), the deployment's CPU and memory limits, and
// labels naming its deployment, revision, replica and owner. The backend
// polls GET /v2/health/ready on the published port for readiness, starts
// the container again (with backoff) when it exits, and stops a replica
// gracefully (SIGTERM, SIGKILL after the grace period) before removing
// its container.
//
// The labels are the backend's only state: a control plane that restarts
// adopts the running containers of its owner (New), and removes the ones
// that are not running.
//
// The backend only starts, stops and lists replicas and reports their
// readiness: how many replicas run, rollouts and routing are the control
// plane's. It cannot run custom code (the python and http backends need an
// interpreter that a scratch image lacks; see internal/pack).
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/shoal-ml/shoal/internal/registry"
	"github.com/shoal-ml/shoal/internal/replica"
)

// Labels the backend sets on its containers (and its network), and reads
// back to adopt them.
const (
	LabelManagedBy  = "shoal.dev/managed-by"
	LabelDeployment = "shoal.dev/deployment"
	LabelRevision   = "shoal.dev/revision"
	LabelReplica    = "shoal.dev/replica"
)

// ErrNotFound is returned by Stop and Logs for a replica the backend does
// not know.
var ErrNotFound = errors.New("docker: no such replica")

// Config configures a Backend. Fields left zero take the documented
// default.
type Config struct {
	// Client talks to the engine. Nil means a client from the environment
	// (DOCKER_HOST, DOCKER_CERT_PATH, ...) that negotiates the API
	// version; New closes only a client it made.
	Client *client.Client
	// Binary is the static linux shoal binary put in the images. Empty
	// means the running executable. A dynamically linked binary is
	// refused by New.
	Binary string
	// Owner is the value of the shoal.dev/managed-by label: the backend
	// adopts, lists and removes only containers with its own owner, so two
	// control planes on one engine need different owners. Empty means
	// "shoal".
	Owner string
	// Network is the user-defined bridge network the containers join;
	// New creates it if missing. Empty means "shoal".
	Network string
	// ImageRepository prefixes the image names:
	// <ImageRepository>/<deployment>:<source digest>. Empty means
	// "shoal-model".
	ImageRepository string
	// Grace is the time between SIGTERM and SIGKILL when a replica stops;
	// it is also passed to the replica as -grace-period. Docker counts it
	// in whole seconds (rounded up). Zero means 10s.
	Grace time.Duration
	// HealthInterval is the period of the health check of a ready
	// replica; a check fails after HealthInterval or 1s, whichever is
	// longer. Zero means 500ms.
	HealthInterval time.Duration
	// StartTimeout bounds how long a container may take to become ready
	// before it is killed and started again. It does not count the image
	// build. Zero means 60s.
	StartTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before a container that
	// exited (or an image that failed to build) is tried again: it starts
	// at MinBackoff, doubles after each failure up to MaxBackoff, and
	// returns to MinBackoff once a container has been ready for 10s.
	// Zero means 200ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Models pulls oci:// model references (internal/registry) into a
	// cache on this host, from which their images are built. Nil refuses
	// them: a replica's model must then be a local directory or file.
	Models *registry.Cache
	// Logger receives supervision events. Nil discards them.
	Logger *slog.Logger
	// OnChange, when set, is called (from any goroutine, without locks
	// held) when a replica becomes ready for the first time or goes away,
	// so the caller can reconcile at once instead of at its next tick. Nil
	// means nobody is told.
	OnChange func()
}

func (c *Config) validate() error {
	if c.Grace < 0 || c.HealthInterval < 0 || c.StartTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("docker: Config durations must not be negative")
	}
	if c.Owner == "" {
		c.Owner = "shoal"
	}
	if c.Network == "" {
		c.Network = "shoal"
	}
	if c.ImageRepository == "" {
		c.ImageRepository = "shoal-model"
	}
	if c.ImageRepository != strings.ToLower(c.ImageRepository) {
		return fmt.Errorf("docker: Config.ImageRepository %q must be lower case", c.ImageRepository)
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = 500 * time.Millisecond
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 60 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 200 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.OnChange == nil {
		c.OnChange = func() {}
	}
	return nil
}

// Spec says what replica to start; see replica.Spec.
type Spec = replica.Spec

// Replica is one replica as the backend sees it now; see replica.Replica.
type Replica = replica.Replica

// Backend runs replicas as containers. Create it with New; its methods are
// safe for concurrent use. Close stops every replica; Detach leaves them
// running for the next Backend to adopt.
type Backend struct {
	cfg        Config
	api        *client.Client
	ownsClient bool
	health     *http.Client

	mu       sync.Mutex
	replicas map[string]*entry
	seq      int

	imgMu  sync.Mutex
	images map[string]*revisionImage // by revision
}

// entry is one replica and its supervision. The fields below mu are
// guarded by Backend.mu.
type entry struct {
	spec   Spec // zero for an adopted replica
	cancel context.CancelFunc
	done   chan struct{} // closed when supervision has returned

	rec      Replica // ID, Deployment, Revision, Container, HTTP, GRPC, Started, Adopted
	ready    bool
	restarts int
	lastErr  error // why the last attempt failed; nil once ready
	stopped  bool  // Stop was called
	gone     bool  // the container vanished and cannot be made again
}

// New validates cfg, checks the engine answers and the binary is static,
// creates the network if missing and adopts the running containers of
// Config.Owner; its containers that are not running are removed.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkBinary(&cfg.Binary); err != nil {
		return nil, err
	}
	b := &Backend{
		cfg: cfg, api: cfg.Client,
		health:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		replicas: map[string]*entry{}, images: map[string]*revisionImage{},
	}
	if b.api == nil {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, fmt.Errorf("docker: client: %w", err)
		}
		b.api, b.ownsClient = c, true
	}
	if err := b.init(ctx); err != nil {
		b.closeClient()
		return nil, err
	}
	return b, nil
}

func (b *Backend) init(ctx context.Context) error {
	if _, err := b.api.Ping(ctx); err != nil {
		return fmt.Errorf("docker: engine: %w", err)
	}
	if err := b.ensureNetwork(ctx); err != nil {
		return err
	}
	cs, err := b.api.ContainerList(ctx, container.ListOptions{All: true, Filters: b.ownerFilter()})
	if err != nil {
		return fmt.Errorf("docker: list containers: %w", err)
	}
	for _, c := range cs {
		id := c.Labels[LabelReplica]
		dep, rev := c.Labels[LabelDeployment], c.Labels[LabelRevision]
		if n, err := strconv.Atoi(id[max(0, len(id)-6):]); err == nil {
			b.seq = max(b.seq, n)
		}
		if c.State != container.StateRunning || id == "" || dep == "" || rev == "" || b.replicas[id] != nil {
			b.cfg.Logger.Info("container not adoptable; removed", "container", shortID(c.ID), "replica", id, "state", c.State)
			if err := b.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("docker: remove container %s: %w", shortID(c.ID), err)
			}
			continue
		}
		e := &entry{rec: Replica{
			ID: id, Deployment: dep, Revision: rev, Container: c.ID,
			Started: time.Unix(c.Created, 0).UTC(), Adopted: true,
		}}
		b.replicas[id] = e
		b.supervise(e)
		b.cfg.Logger.Info("replica adopted", "replica", id, "revision", rev, "container", shortID(c.ID))
	}
	return nil
}

// ensureNetwork creates the bridge network unless it exists.
func (b *Backend) ensureNetwork(ctx context.Context) error {
	if _, err := b.api.NetworkInspect(ctx, b.cfg.Network, network.InspectOptions{}); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: network %s: %w", b.cfg.Network, err)
	}
	_, err := b.api.NetworkCreate(ctx, b.cfg.Network, network.CreateOptions{
		Driver: "bridge", Labels: map[string]string{LabelManagedBy: b.cfg.Owner},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("docker: create network %s: %w", b.cfg.Network, err)
	}
	b.cfg.Logger.Info("network created", "network", b.cfg.Network)
	return nil
}

func (b *Backend) ownerFilter(kv ...string) filters.Args {
	f := filters.NewArgs(filters.Arg("label", LabelManagedBy+"="+b.cfg.Owner))
	for _, l := range kv {
		f.Add("label", l)
	}
	return f
}

// Start starts a replica of s and returns at once, before its image is
// built and its container runs; List reports it ready once its health
// check passes. The replica's HTTP and GRPC addresses are empty until its
// container runs.
func (b *Backend) Start(s Spec) (Replica, error) {
	if s.Deployment == "" || s.Revision == "" || s.Model == "" {
		return Replica{}, errors.New("docker: Spec needs Deployment, Revision and Model")
	}
	if s.MilliCPU < 0 || s.Memory < 0 {
		return Replica{}, errors.New("docker: Spec limits must not be negative")
	}
	switch {
	case registry.IsReference(s.Model) && b.cfg.Models == nil:
		return Replica{}, fmt.Errorf("docker: model %q: this backend has no model cache for oci:// references (Config.Models)", s.Model)
	case registry.IsReference(s.Model):
		if _, err := registry.ParseReference(s.Model); err != nil {
			return Replica{}, fmt.Errorf("docker: model %q: %w", s.Model, err)
		}
	case strings.Contains(s.Model, "://"):
		return Replica{}, fmt.Errorf("docker: model %q: only a local model repository or file, or an oci:// artifact, can be packaged", s.Model)
	}
	b.mu.Lock()
	b.seq++
	id := fmt.Sprintf("%s-%06d", s.Revision, b.seq)
	e := &entry{spec: s, rec: Replica{ID: id, Deployment: s.Deployment, Revision: s.Revision, Started: time.Now().UTC()}}
	b.replicas[id] = e
	b.supervise(e)
	r := e.snapshot()
	b.mu.Unlock()
	b.cfg.Logger.Info("replica started", "replica", id, "revision", s.Revision)
	return r, nil
}

// Stop drains and stops the replica: its supervision ends, then its
// container gets SIGTERM (it stops taking requests and finishes those in
// flight) and SIGKILL after Config.Grace, and is removed. It returns once
// the container is gone. The caller takes the replica out of the routing
// table first.
func (b *Backend) Stop(id string) error {
	b.mu.Lock()
	e := b.replicas[id]
	if e != nil {
		if e.stopped {
			e = nil
		} else {
			e.stopped = true
		}
	}
	b.mu.Unlock()
	if e == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e.cancel()
	<-e.done
	err := b.removeReplica(id)
	b.mu.Lock()
	delete(b.replicas, id)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	b.cfg.Logger.Info("replica stopped", "replica", id)
	return nil
}

// removeReplica stops and removes every container of the replica (found by
// its labels, so that one whose creation raced with Stop goes too).
func (b *Backend) removeReplica(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.Grace+30*time.Second)
	defer cancel()
	cs, err := b.api.ContainerList(ctx, container.ListOptions{All: true, Filters: b.ownerFilter(LabelReplica + "=" + id)})
	if err != nil {
		return fmt.Errorf("docker: stop %s: %w", id, err)
	}
	secs := int((b.cfg.Grace + time.Second - 1) / time.Second)
	var errs []error
	for _, c := range cs {
		if c.State == container.StateRunning {
			if err := b.api.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil && !cerrdefs.IsNotFound(err) {
				b.cfg.Logger.Warn("container stop", "replica", id, "err", err)
			}
		}
		if err := b.api.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: remove %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// List returns the replicas not being stopped, ordered by ID (start order
// within a revision).
func (b *Backend) List() []Replica {
	b.mu.Lock()
	var out []Replica
	for id, e := range b.replicas {
		switch {
		case e.stopped:
		case e.gone:
			delete(b.replicas, id)
		default:
			out = append(out, e.snapshot())
		}
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y Replica) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// Close stops every replica (as Stop does), in parallel, and returns once
// their containers are gone. It closes the client if New made it. It
// returns the first error of a Stop.
func (b *Backend) Close() error {
	var wg sync.WaitGroup
	errs := make([]error, 0)
	var mu sync.Mutex
	for _, id := range b.ids() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Stop(id); err != nil && !errors.Is(err, ErrNotFound) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.closeClient()
	return errors.Join(errs...)
}

// Detach ends the supervision of every replica and leaves their
// containers running, as a control plane that dies would: a later New
// with the same Owner adopts them. The Backend must not be used after.
func (b *Backend) Detach() {
	b.mu.Lock()
	es := slices.Collect(maps.Values(b.replicas))
	clear(b.replicas)
	b.mu.Unlock()
	for _, e := range es {
		e.cancel()
		<-e.done
	}
	b.closeClient()
}

func (b *Backend) ids() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Collect(maps.Keys(b.replicas))
}

func (b *Backend) closeClient() {
	if b.ownsClient {
		b.api.Close()
	}
}

// snapshot returns e's Replica now. Backend.mu is held.
func (e *entry) snapshot() Replica {
	r := e.rec
	r.Ready, r.Restarts = e.ready, e.restarts
	return r
}

func shortID(id string) string { return id[:min(12, len(id))] }
