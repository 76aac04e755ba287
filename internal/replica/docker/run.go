package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/shoal-ml/shoal/internal/pack"
)

// Supervision timing that is not configurable.
const (
	// startPoll is the health check period while a container starts.
	startPoll = 50 * time.Millisecond
	// stableAfter is how long a container must stay ready for the backoff
	// to return to its minimum.
	stableAfter = 10 * time.Second
	// apiTimeout bounds one Engine API call of the supervision loop.
	apiTimeout = 30 * time.Second
	// checkTimeout is the least time a health check may take (through
	// the engine's port forwarding, on a busy host) before it fails.
	checkTimeout = time.Second
)

// errGone: the container vanished and the backend cannot make it again
// (an adopted replica, whose Spec it does not know).
var errGone = errors.New("docker: container removed")

var (
	httpPort = nat.Port(strconv.Itoa(pack.HTTPPort) + "/tcp")
	grpcPort = nat.Port(strconv.Itoa(pack.GRPCPort) + "/tcp")
)

// supervise starts e's supervision goroutine. Backend.mu may be held.
func (b *Backend) supervise(e *entry) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		b.run(ctx, e)
	}()
}

// run keeps e's container running until ctx is done: it builds the image
// and creates the container if there is none, starts it, watches it, and
// starts it again with backoff when it exits. It leaves the container as
// it is when ctx is done (Stop removes it; Detach leaves it running).
func (b *Backend) run(ctx context.Context, e *entry) {
	log := b.cfg.Logger.With("replica", e.rec.ID)
	backoff := b.cfg.MinBackoff
	for attempt := 0; ; attempt++ {
		readyFor, err := b.attempt(ctx, e)
		if ctx.Err() != nil {
			return
		}
		b.mu.Lock()
		e.ready = false
		if errors.Is(err, errGone) {
			e.gone = true
		} else {
			e.lastErr = err
			e.restarts++
		}
		b.mu.Unlock()
		if errors.Is(err, errGone) {
			log.Warn("replica container removed", "container", shortID(e.rec.Container))
			b.cfg.OnChange()
			return
		}
		if readyFor >= stableAfter {
			backoff = b.cfg.MinBackoff
		}
		log.Warn("replica failed; starting again", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, b.cfg.MaxBackoff)
	}
}

// attempt makes sure e has a running container and watches it until it
// exits, fails its start, or ctx is done. readyFor is how long it was
// ready.
func (b *Backend) attempt(ctx context.Context, e *entry) (readyFor time.Duration, err error) {
	b.mu.Lock()
	id := e.rec.Container
	b.mu.Unlock()
	if id == "" {
		if id, err = b.create(ctx, e); err != nil {
			return 0, err
		}
	}
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	info, err := b.api.ContainerInspect(actx, id)
	if err == nil && !info.State.Running {
		if err = b.api.ContainerStart(actx, id, container.StartOptions{}); err == nil {
			info, err = b.api.ContainerInspect(actx, id)
		}
	}
	cancel()
	if cerrdefs.IsNotFound(err) {
		b.mu.Lock()
		e.rec.Container, e.rec.HTTP, e.rec.GRPC = "", "", ""
		b.mu.Unlock()
		if e.spec.Model == "" {
			return 0, errGone
		}
		return 0, fmt.Errorf("container %s removed: %w", shortID(id), err)
	}
	if err != nil {
		return 0, fmt.Errorf("start container %s: %w", shortID(id), err)
	}
	httpAddr, grpcAddr := published(info, httpPort), published(info, grpcPort)
	if httpAddr == "" {
		return 0, fmt.Errorf("container %s publishes no host port for %s", shortID(id), httpPort)
	}
	b.mu.Lock()
	e.rec.HTTP, e.rec.GRPC = httpAddr, grpcAddr
	b.mu.Unlock()
	return b.watch(ctx, e, id, httpAddr)
}

// create builds (or finds) the revision's image and creates e's container.
func (b *Backend) create(ctx context.Context, e *entry) (string, error) {
	img, model, err := b.image(ctx, e.spec)
	if err != nil {
		return "", err
	}
	args, err := pack.ServeArgs(model)
	if err != nil {
		return "", err
	}
	// The model path comes last; the grace period and the spec's flags
	// go before it.
	cmd := append([]string{}, args[:len(args)-1]...)
	cmd = append(cmd, "-grace-period", b.cfg.Grace.String())
	cmd = append(cmd, e.spec.Args...)
	cmd = append(cmd, args[len(args)-1])
	loopback := []nat.PortBinding{{HostIP: "127.0.0.1"}}
	cfg := &container.Config{
		Image: img, Cmd: cmd, Env: e.spec.Env,
		ExposedPorts: nat.PortSet{httpPort: {}, grpcPort: {}},
		Labels: map[string]string{
			LabelManagedBy: b.cfg.Owner, LabelDeployment: e.spec.Deployment, LabelModel: e.spec.Deployment,
			LabelRevision: e.spec.Revision, LabelReplica: e.rec.ID,
		},
	}
	host := &container.HostConfig{
		NetworkMode:  container.NetworkMode(b.cfg.Network),
		PortBindings: nat.PortMap{httpPort: loopback, grpcPort: loopback},
		CapDrop:      []string{"ALL"},
		SecurityOpt:  []string{"no-new-privileges"},
		Resources: container.Resources{
			NanoCPUs: e.spec.MilliCPU * 1e6,
			Memory:   e.spec.Memory,
		},
	}
	if e.spec.Memory > 0 {
		host.Resources.MemorySwap = e.spec.Memory // no swap beyond the limit
	}
	netcfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		b.cfg.Network: {Aliases: []string{e.rec.ID}},
	}}
	actx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	resp, err := b.api.ContainerCreate(actx, cfg, host, netcfg, nil, b.cfg.Owner+"-"+e.rec.ID)
	if err != nil {
		return "", fmt.Errorf("create container: %w", err)
	}
	for _, w := range resp.Warnings {
		b.cfg.Logger.Warn("container create", "replica", e.rec.ID, "warning", w)
	}
	b.mu.Lock()
	e.rec.Container = resp.ID
	b.mu.Unlock()
	return resp.ID, nil
}

// watch checks the container's health until it exits (it returns why),
// fails to get ready within StartTimeout (it is killed), or ctx is done.
func (b *Backend) watch(ctx context.Context, e *entry, id, addr string) (readyFor time.Duration, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, waitErr := b.api.ContainerWait(wctx, id, container.WaitConditionNotRunning)
	start := time.Now()
	var upSince time.Time
	since := func() time.Duration {
		if upSince.IsZero() {
			return 0
		}
		return time.Since(upSince)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return since(), ctx.Err()
		case w := <-exited:
			if w.Error != nil {
				return since(), fmt.Errorf("container exited with status %d: %s", w.StatusCode, w.Error.Message)
			}
			return since(), fmt.Errorf("container exited with status %d", w.StatusCode)
		case err := <-waitErr:
			if ctx.Err() != nil {
				return since(), ctx.Err()
			}
			return since(), fmt.Errorf("wait for container: %w", err)
		case <-t.C:
		}
		interval := b.cfg.HealthInterval
		hctx, hcancel := context.WithTimeout(ctx, max(interval, checkTimeout))
		herr := b.check(hctx, addr)
		hcancel()
		switch {
		case herr == nil && upSince.IsZero():
			upSince = time.Now()
			b.mu.Lock()
			e.ready, e.lastErr = true, nil
			b.mu.Unlock()
			b.cfg.Logger.Info("replica ready", "replica", e.rec.ID, "http", addr, "after", upSince.Sub(start).Round(time.Millisecond))
			b.cfg.OnChange()
		case herr == nil:
			b.setReady(e, true)
		case !upSince.IsZero():
			if b.setReady(e, false) {
				b.cfg.Logger.Warn("replica unhealthy", "replica", e.rec.ID, "err", herr)
			}
		case time.Since(start) > b.cfg.StartTimeout:
			kctx, kcancel := context.WithTimeout(ctx, apiTimeout)
			kerr := b.api.ContainerKill(kctx, id, "KILL")
			kcancel()
			if kerr != nil && !cerrdefs.IsNotFound(kerr) && !cerrdefs.IsConflict(kerr) {
				b.cfg.Logger.Warn("kill container", "replica", e.rec.ID, "err", kerr)
			}
			return 0, fmt.Errorf("not healthy after %v: %w", b.cfg.StartTimeout, herr)
		}
		if upSince.IsZero() {
			interval = startPoll
		}
		t.Reset(interval)
	}
}

// setReady sets e.ready and reports whether it changed.
func (b *Backend) setReady(e *entry, ready bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	changed := e.ready != ready
	e.ready = ready
	return changed
}

// check asks the replica's REST listener whether it is ready.
func (b *Backend) check(ctx context.Context, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/health/ready", nil)
	if err != nil {
		return err
	}
	resp, err := b.health.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// published returns the host address a running container publishes port
// on, or "" if none.
func published(info container.InspectResponse, port nat.Port) string {
	if info.NetworkSettings == nil {
		return ""
	}
	for _, p := range info.NetworkSettings.Ports[port] {
		if p.HostPort == "" {
			continue
		}
		ip := p.HostIP
		if ip == "" || ip == "0.0.0.0" {
			ip = "127.0.0.1"
		}
		return net.JoinHostPort(ip, p.HostPort)
	}
	return ""
}
