package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/rollout"
)

// ErrNoCanary is returned by Controller.Rollout when the deployment has
// no canary rollout in progress.
var ErrNoCanary = errors.New("control: no canary rollout in progress")

// canaryState is a canary rollout of one deployment. It is kept in the
// store (memo.Canary) at every change, so a control plane killed and
// restarted during a canary resumes the same step with the analysis it had.
type canaryState struct {
	revision, stable string
	status           rollout.CanaryStatus
	weight           int
	reason           string
	// seen holds each revision's requests counted in the current step so
	// far (the analysis so far); last holds the gateway's cumulative
	// counters at the previous tick, nil after a restart (the gateway
	// runs in the control plane's process, so its counters restarted from
	// zero too).
	seen, last map[string]RevisionCounters
}

// canaryRecord is a canaryState as the store keeps it.
type canaryRecord struct {
	Revision string                      `json:"revision"`
	Stable   string                      `json:"stable"`
	Status   rollout.CanaryStatus        `json:"status"`
	Weight   int                         `json:"weight"`
	Reason   string                      `json:"reason,omitempty"`
	Seen     map[string]RevisionCounters `json:"seen,omitempty"`
}

func (cs *canaryState) record() *canaryRecord {
	if cs == nil {
		return nil
	}
	return &canaryRecord{Revision: cs.revision, Stable: cs.stable, Status: cs.status, Weight: cs.weight, Reason: cs.reason, Seen: cs.seen}
}

func (r *canaryRecord) state() *canaryState {
	if r == nil {
		return nil
	}
	return &canaryState{revision: r.Revision, stable: r.Stable, status: r.Status, weight: r.Weight, reason: r.Reason, seen: r.Seen}
}

// observe adds the requests counted by the gateway since the previous
// tick to the step's analysis.
func (cs *canaryState) observe(all map[string]RevisionCounters) {
	if cs.seen == nil {
		cs.seen = map[string]RevisionCounters{}
	}
	for _, rev := range []string{cs.revision, cs.stable} {
		cs.seen[rev] = cs.seen[rev].plus(all[rev].minus(cs.last[rev]))
	}
	cs.last = all
}

func (cs *canaryState) active() bool {
	return cs != nil && (cs.status.Phase == rollout.Progressing || cs.status.Phase == rollout.Paused)
}

func canarySpec(r v1alpha1.Rollout) rollout.Canary {
	c := rollout.Canary{Analysis: rollout.Analysis{
		MaxErrorRate: r.Analysis.MaxErrorRate, MaxLatencyRatio: r.Analysis.MaxLatencyRatio, MinRequests: int(r.Analysis.MinRequests),
	}}
	if s := r.Analysis.LatencySlack; s != nil {
		c.Analysis.LatencySlack = s.Duration
		if s.Duration == 0 {
			c.Analysis.LatencySlack = -1 // rollout's "none"
		}
	}
	for _, s := range r.Steps {
		c.Steps = append(c.Steps, rollout.CanaryStep{Weight: int(s.Weight), Pause: s.Pause.Duration})
	}
	return c
}

// previousSpec returns the spec d had before its last revision change,
// and that revision's name; nil when none is recorded.
func previousSpec(d *v1alpha1.ModelDeployment) (*v1alpha1.ModelDeploymentSpec, string) {
	raw := d.Metadata.Annotations[AnnotationPreviousSpec]
	if raw == "" {
		return nil, ""
	}
	var s v1alpha1.ModelDeploymentSpec
	if json.Unmarshal([]byte(raw), &s) != nil {
		return nil, ""
	}
	p := *d
	p.Spec = s
	p.Default()
	return &p.Spec, RevisionName(&p)
}

// canaryFor returns the deployment's canary rollout, starting one when
// the strategy is canary, the current revision has no replica yet and the
// previous revision has some.
func (c *Controller) canaryFor(ctx context.Context, d *v1alpha1.ModelDeployment, st *deployState, reps []Replica, now time.Time) *canaryState {
	cur := RevisionName(d)
	if d.Spec.Rollout.Strategy != "canary" || len(d.Spec.Traffic.Split) > 0 {
		// A pinned split replaces the canary.
		st.canary = nil
		return nil
	}
	if st.canary != nil && st.canary.revision == cur {
		return st.canary
	}
	_, prev := previousSpec(d)
	news, olds := 0, 0
	for _, r := range reps {
		switch r.Revision {
		case cur:
			news++
		case prev:
			olds++
		}
	}
	if prev == "" || news > 0 || olds == 0 {
		st.canary = nil
		return nil
	}
	dec, err := rollout.Step(now, canarySpec(d.Spec.Rollout), rollout.CanaryStatus{}, rollout.CanaryInput{})
	if err != nil {
		c.event(d.Metadata.Name, "Warning", "CanaryInvalid", err.Error())
		return nil
	}
	st.canary = &canaryState{revision: cur, stable: prev, status: dec.Status, weight: dec.Weight, last: c.scrape(ctx)[d.Metadata.Name], reason: dec.Reason}
	c.saveMemo(d.Metadata.Name, st)
	c.event(d.Metadata.Name, "Normal", "CanaryStarted", fmt.Sprintf("canary %s against stable %s: %s", cur, prev, dec))
	return st.canary
}

func (c *Controller) scrape(ctx context.Context) map[string]map[string]RevisionCounters {
	if c.cfg.GatewayMetrics == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := c.cfg.GatewayMetrics(ctx)
	if err != nil {
		c.log.Warn("gateway metrics", "err", err)
	}
	return m
}

// canaryStep advances every active canary (on the autoscaler's tick), or
// one deployment's with a user's command.
func (c *Controller) canaryStep(ctx context.Context, name string, cmd rollout.Command) error {
	d, ok := c.objects[name]
	st := c.states[name]
	if !ok || st == nil || !st.canary.active() {
		if cmd != rollout.NoCommand {
			return fmt.Errorf("%w: %s", ErrNoCanary, name)
		}
		return nil
	}
	d.Default()
	cs := st.canary
	cs.observe(c.scrape(ctx)[name])
	now := c.cfg.Now()
	in := rollout.CanaryInput{
		Canary:  cs.seen[cs.revision].metrics(),
		Stable:  cs.seen[cs.stable].metrics(),
		Command: cmd,
	}
	dec, err := rollout.Step(now, canarySpec(d.Spec.Rollout), cs.status, in)
	if err != nil {
		return err
	}
	if !dec.Status.StepStarted.Equal(cs.status.StepStarted) {
		cs.seen = nil // a new step counts from now
	}
	changed := dec.Status.Phase != cs.status.Phase || dec.Status.Step != cs.status.Step
	cs.status, cs.weight, cs.reason = dec.Status, dec.Weight, dec.Reason
	defer c.saveMemo(name, st)
	if !changed {
		return nil
	}
	switch dec.Status.Phase {
	case rollout.RolledBack:
		c.event(name, "Warning", "RolledBack", dec.String())
		// Make the rollback durable: the spec goes back to the stable
		// revision's model and runtime (shoal rollout undo re-applies the
		// canary's).
		prev, _ := previousSpec(&d)
		if prev != nil {
			nd, err := update(c.cfg.Store, c.objects[name], func(n *v1alpha1.ModelDeployment) {
				n.Spec.Model, n.Spec.Runtime, n.Spec.Backend, n.Spec.Resources = prev.Model, prev.Runtime, prev.Backend, prev.Resources
			})
			if err != nil {
				c.log.Warn("roll back spec", "deployment", name, "err", err)
			} else {
				c.objects[name] = nd // the watch will say so too, later
			}
			// The reverted revision is the stable one: no canary for it.
			st.canary = &canaryState{revision: cs.stable, stable: cs.stable, status: rollout.CanaryStatus{Phase: rollout.Promoted}, weight: 100}
		}
	case rollout.Promoted:
		c.event(name, "Normal", "Promoted", dec.String())
	default:
		c.event(name, "Normal", "CanaryStep", dec.String())
	}
	return nil
}

// canaryPlan keeps the stable revision's replicas, gives the canary its
// share of the desired count (at least one), and stops replicas of any
// other revision.
func canaryPlan(cs *canaryState, reps []Replica, desired int) []Action {
	var acts []Action
	var news []Replica
	for _, r := range reps {
		switch r.Revision {
		case cs.revision:
			news = append(news, r)
		case cs.stable:
		default:
			acts = append(acts, Action{Kind: Stop, Revision: r.Revision, Replica: r.ID})
		}
	}
	want := max(1, (desired*cs.weight+99)/100)
	for i := len(news); i < want; i++ {
		acts = append(acts, Action{Kind: Start, Revision: cs.revision})
	}
	for i := len(news) - 1; i >= want; i-- {
		acts = append(acts, Action{Kind: Stop, Revision: cs.revision, Replica: news[i].ID})
	}
	return acts
}

// canaryRoutes weights the canary and the stable revision as the canary
// step says, among their ready replicas.
func canaryRoutes(cs *canaryState, reps []Replica) (gateway.Model, map[string]int32) {
	m, _ := routes(reps)
	var out gateway.Model
	out.Revisions = []gateway.Revision{}
	have := map[string]bool{}
	for _, r := range m.Revisions {
		have[r.Name] = true
	}
	pct := map[string]int32{}
	for _, r := range m.Revisions {
		switch {
		case r.Name == cs.revision && have[cs.stable]:
			r.Weight = cs.weight
		case r.Name == cs.stable && have[cs.revision]:
			r.Weight = 100 - cs.weight
		case r.Name == cs.revision || r.Name == cs.stable:
			r.Weight = 100
		default:
			r.Weight = 0
		}
		pct[r.Name] = int32(r.Weight)
		out.Revisions = append(out.Revisions, r)
	}
	return out, pct
}

// Rollout gives a user's command (pause, resume, promote, undo) to the
// deployment's canary rollout. It returns ErrNoCanary when none is in
// progress, and rollout's errors for a bad or late command.
func (c *Controller) Rollout(ctx context.Context, name, cmd string) error {
	command, err := rollout.ParseCommand(cmd)
	if err != nil {
		return err
	}
	reply := make(chan error, 1)
	select {
	case c.commands <- rolloutCommand{name: name, cmd: command, reply: reply}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type rolloutCommand struct {
	name  string
	cmd   rollout.Command
	reply chan error
}
