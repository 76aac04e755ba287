package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/autoscale"
	"github.com/shoal-ml/shoal/internal/control/store"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/replica"
	"github.com/shoal-ml/shoal/internal/rollout"
)

// Backend runs replicas: the process backend today, Docker and Kubernetes
// later. Its methods must be safe for concurrent use.
type Backend interface {
	// Start starts a replica and returns at once, before it is ready.
	Start(replica.Spec) (Replica, error)
	// Stop drains and stops a replica and returns once it has exited.
	Stop(id string) error
	// List returns the replicas not being stopped, with their readiness.
	List() []Replica
}

// AnnotationPaused, set to "true" on a ModelDeployment, holds its rolling
// update (shoal rollout pause).
const AnnotationPaused = "shoal.dev/rollout-paused"

// AnnotationPreviousSpec holds the JSON spec a ModelDeployment had before
// its last revision change, for shoal rollout undo.
const AnnotationPreviousSpec = "shoal.dev/previous-spec"

// Config configures a Controller. Fields left zero take the documented
// default.
type Config struct {
	// Store holds the objects. Required.
	Store *store.Store
	// Backend runs the replicas. Required.
	Backend Backend
	// Stats returns the gateway's load per model (gateway.Gateway.Stats).
	// Nil means no load is ever seen: deployments stay at their minimum.
	Stats func() []gateway.ModelStats
	// GatewayURL is where the gateway serves (reported in each status).
	// Empty reports none.
	GatewayURL string
	// Logger receives the reconciler's logs. Nil discards them.
	Logger *slog.Logger
	// Resync is the period of a reconcile pass without any change seen
	// (readiness is polled that often). Zero means 250ms.
	Resync time.Duration
	// AutoscaleInterval is the autoscaler's tick. Zero means 2s.
	AutoscaleInterval time.Duration
	// GatewayMetrics returns the gateway's request counters by model and
	// revision (ScrapeGateway), which judge canary steps. Nil means none:
	// a canary then waits at its first step for requests it never sees.
	GatewayMetrics func(ctx context.Context) (map[string]map[string]RevisionCounters, error)
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	if c.Store == nil || c.Backend == nil {
		return errors.New("control: Config.Store and Config.Backend are required")
	}
	if c.Resync < 0 || c.AutoscaleInterval < 0 {
		return errors.New("control: Config intervals must not be negative")
	}
	if c.Stats == nil {
		c.Stats = func() []gateway.ModelStats { return nil }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Resync == 0 {
		c.Resync = 250 * time.Millisecond
	}
	if c.AutoscaleInterval == 0 {
		c.AutoscaleInterval = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Controller reconciles ModelDeployments onto a Backend and the gateway's
// routing table. Create it with New and run it with Run; Source, ScaleUp,
// Wake and Handler are safe for concurrent use.
type Controller struct {
	cfg   Config
	log   *slog.Logger
	table TableSource

	wake     chan struct{}
	scaleUp  chan string
	commands chan rolloutCommand

	// Owned by Run's goroutine.
	objects  map[string]v1alpha1.ModelDeployment
	states   map[string]*deployState
	draining map[string]bool // replica IDs being stopped
	stopped  chan string     // a drain finished
}

// deployState is the reconciler's memory of one deployment.
type deployState struct {
	desired    int
	scaler     autoscale.State
	lastReqs   uint64
	lastSample time.Time
	progressed time.Time
	rolling    bool // a rolling update was in progress at the last pass
	stalled    bool // it had passed its progress deadline at the last pass
	lastPlan   string
	canary     *canaryState
	saved      string // the memo last written to the store, as JSON
	// readySeen holds the replicas already seen ready; readyTimes the
	// recent start-to-ready times by revision (in the memo).
	readySeen  map[string]bool
	readyTimes map[string][]time.Duration
	lastReady  string
}

// New validates cfg and returns a Controller.
func New(cfg Config) (*Controller, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Controller{
		cfg: cfg, log: cfg.Logger,
		wake: make(chan struct{}, 1), scaleUp: make(chan string, 64), commands: make(chan rolloutCommand),
		objects: map[string]v1alpha1.ModelDeployment{}, states: map[string]*deployState{},
		draining: map[string]bool{}, stopped: make(chan string, 64),
	}, nil
}

// Source returns the routing-table source to give the gateway.
func (c *Controller) Source() gateway.Source { return &c.table }

// Wake asks for a reconcile pass now (the backend's OnChange).
func (c *Controller) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// ScaleUp asks for a replica of the model's current revision at once (the
// gateway activator's Config.ScaleUp). It returns once the request is
// queued; the gateway releases its held requests when the routing table
// gets a ready replica.
func (c *Controller) ScaleUp(ctx context.Context, model string) error {
	select {
	case c.scaleUp <- model:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run reconciles until ctx is done, then waits for the replicas it is
// stopping and returns. It leaves the others running: the caller stops
// them (Backend Close) or leaves them for the next control plane to adopt.
func (c *Controller) Run(ctx context.Context) error {
	list, events, err := c.cfg.Store.Watch(ctx)
	if err != nil {
		return err
	}
	for _, d := range list {
		c.objects[d.Metadata.Name] = d
	}
	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	scale := time.NewTicker(c.cfg.AutoscaleInterval)
	defer scale.Stop()
	var stops sync.WaitGroup
	c.reconcile(ctx, &stops)
	for {
		select {
		case <-ctx.Done():
			stops.Wait()
			return nil
		case e, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					continue
				}
				// Dropped for falling behind: watch again.
				if list, events, err = c.cfg.Store.Watch(ctx); err != nil {
					stops.Wait()
					return err
				}
				clear(c.objects)
				for _, d := range list {
					c.objects[d.Metadata.Name] = d
				}
			} else if e.Type == store.Deleted {
				delete(c.objects, e.Object.Metadata.Name)
			} else {
				c.objects[e.Object.Metadata.Name] = e.Object
			}
		case id := <-c.stopped:
			delete(c.draining, id)
		case <-c.wake:
		case <-resync.C:
		case name := <-c.scaleUp:
			// Start the replica first; the event's write (an fsync) waits.
			record := c.fromZero(name)
			c.reconcile(ctx, &stops)
			record()
			continue
		case cmd := <-c.commands:
			cmd.reply <- c.canaryStep(ctx, cmd.name, cmd.cmd)
		case <-scale.C:
			c.autoscale()
			for name := range c.objects {
				if err := c.canaryStep(ctx, name, rollout.NoCommand); err != nil {
					c.log.Warn("canary step", "deployment", name, "err", err)
				}
			}
		}
		c.reconcile(ctx, &stops)
	}
}

// state returns the deployment's state, creating it with the replicas of
// the current revision found running (adopted), at least one.
func (c *Controller) state(d *v1alpha1.ModelDeployment, replicas []Replica) *deployState {
	st := c.states[d.Metadata.Name]
	if st == nil {
		cur, n := RevisionName(d), 0
		for _, r := range replicas {
			if r.Revision == cur {
				n++
			}
		}
		lo, hi := int(*d.Spec.Scaling.MinReplicas), int(d.Spec.Scaling.MaxReplicas)
		st = &deployState{desired: min(max(n, lo, 1), hi), progressed: c.cfg.Now()}
		c.states[d.Metadata.Name] = st
		c.loadMemo(d.Metadata.Name, st)
	}
	// A changed spec (shoal scale) applies at once, not at the next tick.
	if lo, hi := int(*d.Spec.Scaling.MinReplicas), int(d.Spec.Scaling.MaxReplicas); st.desired < lo || st.desired > hi {
		st.desired = min(max(st.desired, lo), hi)
	}
	return st
}

// reconcile runs one pass over every deployment and pushes the routing
// table.
func (c *Controller) reconcile(ctx context.Context, stops *sync.WaitGroup) {
	now := c.cfg.Now()
	byDep := map[string][]Replica{}
	for _, r := range c.cfg.Backend.List() {
		if !c.draining[r.ID] {
			byDep[r.Deployment] = append(byDep[r.Deployment], r)
		}
	}
	table := &gateway.Table{Models: map[string]gateway.Model{}}
	var toStop []Replica
	var after []func()
	for name, d := range c.objects {
		d.Default()
		reps := byDep[name]
		st := c.state(&d, reps)
		if c.noteReady(name, st, reps, now) {
			after = append(after, func() { c.saveMemo(name, st) })
		}
		paused := d.Metadata.Annotations[AnnotationPaused] == "true"
		tr := trafficOf(&d)
		cs := c.canaryFor(ctx, &d, st, tr.others(reps), now)
		var out planOutput
		switch {
		case tr.pinned():
			out.Actions = tr.pinnedPlan(tr.targets(st.desired), reps)
		case cs.active():
			out.Actions = append(canaryPlan(cs, tr.others(reps), st.desired), tr.mirrorPlan(reps, st.desired)...)
		default:
			out = plan(planInput{Now: now, Deployment: d, Replicas: tr.others(reps), Desired: st.desired, Progressed: st.progressed, Paused: paused})
			out.Actions = append(out.Actions, tr.mirrorPlan(reps, st.desired)...)
			c.noteRolling(&d, st, out, tr.others(reps), now)
		}
		prevSpec, prevRev := previousSpec(&d)
		keep := reps
		for _, a := range out.Actions {
			switch a.Kind {
			case Start:
				spec := &d.Spec
				if a.Revision == prevRev && a.Revision != RevisionName(&d) {
					spec = prevSpec
				}
				cpu, mem := resourceLimits(spec.Resources)
				r, err := c.cfg.Backend.Start(replica.Spec{
					Deployment: name, Revision: a.Revision, Model: spec.Model.URI,
					Args: spec.Runtime.Args, Env: envList(spec.Runtime.Env),
					Backend: spec.Backend, MilliCPU: cpu, Memory: mem,
				})
				if err != nil {
					c.event(name, "Warning", "StartFailed", err.Error())
					continue
				}
				keep = append(keep, r)
			case Stop:
				keep = removeID(keep, a.Replica)
				for _, r := range reps {
					if r.ID == a.Replica {
						toStop = append(toStop, r)
					}
				}
			}
		}
		m, pct := routes(tr.others(keep))
		switch {
		case tr.pinned():
			m, pct = tr.pinnedRoutes(keep)
		case cs.active():
			m, pct = canaryRoutes(cs, tr.others(keep))
		}
		tr.addMirror(&m, pct, keep)
		table.Models[name] = m
		after = append(after, func() { c.writeStatus(d, keep, st.desired, pct, out, cs, now) })
	}
	// Replicas of deleted deployments.
	for dep, reps := range byDep {
		if _, ok := c.objects[dep]; !ok {
			toStop = append(toStop, reps...)
			delete(c.states, dep)
		}
	}
	for name := range c.states {
		if _, ok := c.objects[name]; !ok {
			delete(c.states, name)
		}
	}
	// The table first, so that no new request goes to a replica that stops.
	if !tablesEqual(c.table.Table(), table) {
		c.table.Set(table)
	}
	// Then the writes to the store (each an fsync), so that a replica
	// that just got ready takes requests (the activator's held ones) at
	// once.
	for _, f := range after {
		f()
	}
	for _, r := range toStop {
		c.draining[r.ID] = true
		stops.Add(1)
		go func() {
			defer stops.Done()
			if err := c.cfg.Backend.Stop(r.ID); err != nil {
				c.log.Warn("stop replica", "replica", r.ID, "err", err)
			}
			c.stopped <- r.ID
		}()
	}
	_ = ctx
}

// noteRolling tracks the progress time of a rolling update and records
// its start, stall and end as events.
func (c *Controller) noteRolling(d *v1alpha1.ModelDeployment, st *deployState, out planOutput, reps []Replica, now time.Time) {
	name := d.Metadata.Name
	if out.Rolling == nil {
		st.stalled = false
		if st.rolling {
			st.rolling = false
			c.event(name, "Normal", "RolloutDone", "all replicas run revision "+RevisionName(d))
		}
		st.progressed = now
		return
	}
	ready := countReady(filterRev(reps, RevisionName(d)))
	if !st.rolling {
		st.rolling = true
		st.progressed = now
		c.event(name, "Normal", "RolloutStarted", "rolling update to revision "+RevisionName(d))
	}
	if p := fmt.Sprint(ready); p != st.lastPlan {
		st.lastPlan = p
		st.progressed = now
	}
	// A pass that saw progress is not stalled, whatever the plan computed
	// from the time before it said.
	stalled := out.Rolling.Stalled && st.progressed.Before(now)
	if stalled && !st.stalled {
		c.event(name, "Warning", ReasonProgressDeadlineExceeded, fmt.Sprintf("rolling update to %s stalled: %s", RevisionName(d), out.Rolling.Reason))
	}
	st.stalled = stalled
}

func (c *Controller) writeStatus(d v1alpha1.ModelDeployment, reps []Replica, desired int, pct map[string]int32, out planOutput, cs *canaryState, now time.Time) {
	url := ""
	if c.cfg.GatewayURL != "" {
		url = c.cfg.GatewayURL + "/v2/models/" + d.Metadata.Name
	}
	st := status(now, d, reps, desired, pct, out.Rolling, url)
	if cs != nil && cs.revision == RevisionName(&d) {
		rc := v1alpha1.Condition{Type: "Canary", Status: "False", Reason: string(cs.status.Phase), Message: cs.reason}
		if cs.active() {
			rc.Status = "True"
		}
		st.Conditions = append(st.Conditions, carryTime(d.Status.Conditions, rc, now))
	}
	if jsonEqualStatus(d.Status, st) {
		return
	}
	d.Status = st
	d.Metadata.ResourceVersion = "" // status is ours alone: no conflict to check
	if _, err := c.cfg.Store.UpdateStatus(d); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Warn("update status", "deployment", d.Metadata.Name, "err", err)
	}
}

// fromZero gives the model's current revision a replica at once when the
// activator holds a request for it. It returns the recording of the
// decision's event, for the caller to run once the replica is started.
func (c *Controller) fromZero(model string) (record func()) {
	record = func() {}
	d, ok := c.objects[model]
	if !ok {
		return record
	}
	d.Default()
	st := c.state(&d, nil)
	now := c.cfg.Now()
	st.scaler.Record(autoscale.Sample{Time: now, Load: 1, Ready: 0})
	if st.desired > 0 {
		return record
	}
	dec := autoscale.Decide(now, scaleSpec(d.Spec.Scaling), &st.scaler, autoscale.Inputs{
		Current: 0, Pending: 1, TimeToReady: st.timeToReady(RevisionName(&d)),
	})
	st.desired = max(dec.Desired, 1)
	return func() {
		c.event(model, "Normal", "ScaledFromZero", "a request is held by the activator: "+dec.String()+" (inputs: "+dec.Inputs()+")")
	}
}

// autoscale feeds the gateway's load into each deployment's autoscaler
// state and applies its decision.
func (c *Controller) autoscale() {
	now := c.cfg.Now()
	stats := map[string]gateway.ModelStats{}
	for _, s := range c.cfg.Stats() {
		stats[s.Model] = s
	}
	reps := c.cfg.Backend.List()
	for name, d := range c.objects {
		d.Default()
		st := c.state(&d, reps)
		s := stats[name]
		cur := RevisionName(&d)
		tr := trafficOf(&d)
		ready, rolling := 0, false
		for _, r := range reps {
			switch {
			case r.Deployment != name:
			case !tr.serving(r.Revision):
				rolling = true
			case r.Ready && r.Revision != tr.mirror && (tr.pinned() || r.Revision == cur):
				ready++
			}
		}
		spec := scaleSpec(d.Spec.Scaling)
		load := float64(max(s.InFlight, int64(s.Waiting)))
		if spec.Metric == autoscale.RequestsPerSecond {
			load = 0
			if !st.lastSample.IsZero() && s.Requests >= st.lastReqs {
				load = float64(s.Requests-st.lastReqs) / now.Sub(st.lastSample).Seconds()
			}
			st.lastReqs = s.Requests
		}
		st.lastSample = now
		st.scaler.Record(autoscale.Sample{Time: now, Load: load, Ready: ready})
		dec := autoscale.Decide(now, spec, &st.scaler, autoscale.Inputs{
			Current: st.desired, Pending: s.Waiting, RolloutInProgress: rolling, TimeToReady: st.timeToReady(cur),
		})
		if dec.Desired != st.desired {
			reason := "ScaledUp"
			if dec.Desired < st.desired {
				reason = "ScaledDown"
			}
			c.event(name, "Normal", reason, dec.String()+" (inputs: "+dec.Inputs()+")")
			c.log.Info("autoscaler", "deployment", name, "decision", dec)
			st.desired = dec.Desired
		}
	}
}

func scaleSpec(s v1alpha1.Scaling) autoscale.Spec {
	lo := int(*s.MinReplicas)
	return autoscale.Spec{
		MinReplicas: lo, MaxReplicas: int(s.MaxReplicas), Metric: autoscale.Metric(s.Metric), Target: s.Target,
		ScaleToZero: lo == 0, ScaleToZeroGrace: s.ScaleToZeroGracePeriod.Duration,
		StableWindow: s.StableWindow.Duration, PanicWindow: s.PanicWindow.Duration, PanicThreshold: s.PanicThreshold,
		MaxScaleUpRate: s.MaxScaleUpRate, MaxScaleDownRate: s.MaxScaleDownRate,
	}
}

func (c *Controller) event(name, typ, reason, msg string) {
	if err := c.cfg.Store.Record(name, store.ObjectEvent{Type: typ, Reason: reason, Message: msg}); err != nil {
		c.log.Warn("record event", "deployment", name, "err", err)
	}
	c.log.Info(msg, "deployment", name, "reason", reason)
}

func envList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func removeID(rs []Replica, id string) []Replica {
	out := make([]Replica, 0, len(rs))
	for _, r := range rs {
		if r.ID != id {
			out = append(out, r)
		}
	}
	return out
}

func filterRev(rs []Replica, rev string) []Replica {
	var out []Replica
	for _, r := range rs {
		if r.Revision == rev {
			out = append(out, r)
		}
	}
	return out
}
