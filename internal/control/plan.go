package control

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/gateway"
	"github.com/shoal-ml/shoal/internal/replica"
	"github.com/shoal-ml/shoal/internal/rollout"
)

// Replica is one replica as a backend reports it.
type Replica = replica.Replica

// ActionKind says what an Action does.
type ActionKind string

// Kinds of actions.
const (
	// Start starts one replica of Action.Revision.
	Start ActionKind = "start"
	// Stop takes Action.Replica out of the routing table, drains and
	// stops it.
	Stop ActionKind = "stop"
)

// Action is one thing the reconciler does to a backend.
type Action struct {
	Kind     ActionKind
	Revision string
	// Replica is the ID of the replica to stop (Stop only).
	Replica string
}

func (a Action) String() string {
	if a.Kind == Start {
		return "start " + a.Revision
	}
	return "stop " + a.Replica
}

// RevisionName returns the name of the revision d's spec defines: the
// deployment's name and the spec's revision hash.
func RevisionName(d *v1alpha1.ModelDeployment) string {
	return d.Metadata.Name + "-" + d.Spec.RevisionHash()
}

// planInput is what one reconcile pass of a deployment knows.
type planInput struct {
	Now time.Time
	// Deployment, defaulted.
	Deployment v1alpha1.ModelDeployment
	// Replicas of the deployment that are not being stopped.
	Replicas []Replica
	// Desired is the autoscaler's replica count for the current revision.
	Desired int
	// Progressed is when the rolling update started or last progressed.
	Progressed time.Time
	// Paused holds a rolling update.
	Paused bool
}

// planOutput is what the pass should do.
type planOutput struct {
	Actions []Action
	// Rolling is the plan of the update in progress; nil when there is
	// none (every replica is of the current revision).
	Rolling *rollout.RollingPlan
}

// plan decides the actions of one pass for one deployment: with only
// replicas of the current revision, scale it to Desired (stopping the
// not-ready replicas first, then the newest); with replicas of older
// revisions, follow rollout.PlanRolling (stopping the old not-ready
// replicas first, then the oldest). It is pure.
func plan(in planInput) planOutput {
	d := in.Deployment
	cur := RevisionName(&d)
	var news, olds []Replica
	for _, r := range in.Replicas {
		if r.Revision == cur {
			news = append(news, r)
		} else {
			olds = append(olds, r)
		}
	}
	var out planOutput
	start := func(n int) {
		for range n {
			out.Actions = append(out.Actions, Action{Kind: Start, Revision: cur})
		}
	}
	stop := func(rs []Replica, n int, newestFirst bool) {
		rs = slices.Clone(rs)
		sort.SliceStable(rs, func(i, j int) bool {
			if rs[i].Ready != rs[j].Ready {
				return !rs[i].Ready
			}
			if newestFirst {
				return rs[i].ID > rs[j].ID
			}
			return rs[i].ID < rs[j].ID
		})
		for _, r := range rs[:min(n, len(rs))] {
			out.Actions = append(out.Actions, Action{Kind: Stop, Revision: r.Revision, Replica: r.ID})
		}
	}
	if len(olds) == 0 {
		switch n := in.Desired - len(news); {
		case n > 0:
			start(n)
		case n < 0:
			stop(news, -n, true)
		}
		return out
	}
	if in.Desired == 0 {
		// Scaled to zero: nothing to keep serving.
		stop(olds, len(olds), false)
		stop(news, len(news), true)
		return out
	}
	oldReady, newReady := countReady(olds), countReady(news)
	spec := rollout.Rolling{
		MaxSurge:         rollout.IntOrPercent(d.Spec.Rollout.MaxSurge),
		MaxUnavailable:   rollout.IntOrPercent(d.Spec.Rollout.MaxUnavailable),
		ProgressDeadline: d.Spec.Rollout.ProgressDeadline.Duration,
	}
	p := rollout.PlanRolling(in.Now, spec, rollout.RollingStatus{
		Desired: in.Desired, Old: len(olds), OldReady: oldReady, New: len(news), NewReady: newReady,
		Progressed: in.Progressed, Paused: in.Paused,
	})
	out.Rolling = &p
	start(p.Start)
	stop(olds, p.Stop, false)
	if extra := len(news) + p.Start - in.Desired; extra > 0 && p.Start == 0 {
		stop(news, extra, true)
	}
	return out
}

func countReady(rs []Replica) int {
	n := 0
	for _, r := range rs {
		if r.Ready {
			n++
		}
	}
	return n
}

// routes returns the gateway's route for a deployment: every revision with
// ready replicas, weighted by its count of ready replicas (so that each
// replica takes an equal share during a rolling update), and the traffic
// percentage of each revision.
func routes(replicas []Replica) (gateway.Model, map[string]int32) {
	byRev := map[string][]gateway.Replica{}
	var names []string
	total := 0
	for _, r := range replicas {
		if !r.Ready {
			continue
		}
		if _, ok := byRev[r.Revision]; !ok {
			names = append(names, r.Revision)
		}
		byRev[r.Revision] = append(byRev[r.Revision], gateway.Replica{HTTP: r.HTTP, GRPC: r.GRPC})
		total++
	}
	sort.Strings(names)
	m := gateway.Model{Revisions: []gateway.Revision{}}
	pct := map[string]int32{}
	for _, n := range names {
		reps := byRev[n]
		m.Revisions = append(m.Revisions, gateway.Revision{Name: n, Weight: len(reps), Replicas: reps})
		pct[n] = int32(100 * len(reps) / total)
	}
	return m, pct
}

// ReasonProgressDeadlineExceeded is the reason of the event and of the
// condition RolloutProgressing False when a rolling update has had no new
// replica become ready for spec.rollout.progressDeadline.
const ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"

// status builds a deployment's status from its replicas.
func status(now time.Time, d v1alpha1.ModelDeployment, replicas []Replica, desired int, pct map[string]int32, rolling *rollout.RollingPlan, url string) v1alpha1.ModelDeploymentStatus {
	cur := RevisionName(&d)
	revs := map[string]*v1alpha1.RevisionStatus{cur: {Name: cur, Hash: d.Spec.RevisionHash(), DesiredReplicas: int32(desired)}}
	for _, r := range replicas {
		rs := revs[r.Revision]
		if rs == nil {
			rs = &v1alpha1.RevisionStatus{Name: r.Revision, Hash: r.Revision[len(r.Revision)-min(len(r.Revision), 10):]}
			revs[r.Revision] = rs
		}
		if r.Ready {
			rs.ReadyReplicas++
		}
	}
	st := v1alpha1.ModelDeploymentStatus{ObservedGeneration: d.Metadata.Generation, URL: url}
	for _, rs := range revs {
		rs.TrafficPercent = pct[rs.Name]
		st.Revisions = append(st.Revisions, *rs)
	}
	sort.Slice(st.Revisions, func(i, j int) bool { return st.Revisions[i].Name < st.Revisions[j].Name })
	ready := revs[cur].ReadyReplicas
	cond := v1alpha1.Condition{Type: "Ready", Status: "False", Reason: "ReplicasNotReady",
		Message: fmt.Sprintf("%d of %d replicas of %s ready", ready, desired, cur)}
	// Other revisions are old ones being replaced, unless spec.traffic
	// keeps them.
	settled := len(revs) == 1 || len(d.Spec.Traffic.Split) > 0 || d.Spec.Traffic.Mirror != nil
	switch {
	case desired == 0 && len(revs) == 1:
		cond.Status, cond.Reason, cond.Message = "True", "ScaledToZero", "no replicas; the gateway holds requests and scales from zero"
	case int(ready) >= desired && settled:
		cond.Status, cond.Reason = "True", "ReplicasReady"
	}
	st.Conditions = append(st.Conditions, carryTime(d.Status.Conditions, cond, now))
	if rolling != nil {
		rc := v1alpha1.Condition{Type: "RolloutProgressing", Status: "True", Reason: "RollingUpdate", Message: rolling.Reason}
		if rolling.Stalled {
			rc.Status, rc.Reason = "False", ReasonProgressDeadlineExceeded
		}
		st.Conditions = append(st.Conditions, carryTime(d.Status.Conditions, rc, now))
	}
	return st
}

// carryTime keeps the transition time of c from the old conditions when
// its status did not change.
func carryTime(old []v1alpha1.Condition, c v1alpha1.Condition, now time.Time) v1alpha1.Condition {
	c.LastTransitionTime = now.UTC().Truncate(time.Second)
	for _, o := range old {
		if o.Type == c.Type && o.Status == c.Status {
			c.LastTransitionTime = o.LastTransitionTime
		}
	}
	return c
}
