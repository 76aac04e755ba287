package control

import (
	"slices"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
)

func deployment(uri string) v1alpha1.ModelDeployment {
	d := v1alpha1.ModelDeployment{Metadata: v1alpha1.ObjectMeta{Name: "iris"}, Spec: v1alpha1.ModelDeploymentSpec{Model: v1alpha1.ModelSource{URI: uri}}}
	d.Default()
	return d
}

// TestPlan is the reconciler's table: objects (a deployment, its replicas
// and the autoscaler's desired count) in, actions out.
func TestPlan(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v1, v2 := deployment("/m/v1"), deployment("/m/v2")
	r1, r2 := RevisionName(&v1), RevisionName(&v2)
	rep := func(rev, id string, ready bool) Replica {
		return Replica{ID: rev + "-" + id, Deployment: "iris", Revision: rev, Ready: ready}
	}
	tests := []struct {
		name     string
		d        v1alpha1.ModelDeployment
		replicas []Replica
		desired  int
		paused   bool
		want     []string
		rolling  bool
	}{
		{name: "new deployment starts its replicas", d: v1, desired: 2,
			want: []string{"start " + r1, "start " + r1}},
		{name: "steady state does nothing", d: v1, desired: 2,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", true)}},
		{name: "starting replicas are not started again", d: v1, desired: 2,
			replicas: []Replica{rep(r1, "1", false), rep(r1, "2", false)}},
		{name: "scale down stops not-ready then newest", d: v1, desired: 1,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", true), rep(r1, "3", false)},
			want:     []string{"stop " + r1 + "-3", "stop " + r1 + "-2"}},
		{name: "scale to zero stops all", d: v1, desired: 0,
			replicas: []Replica{rep(r1, "1", true)},
			want:     []string{"stop " + r1 + "-1"}},
		{name: "new revision surges one replica, stops none yet", d: v2, desired: 2, rolling: true,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", true)},
			want:     []string{"start " + r2}},
		{name: "new replica not ready holds the old ones", d: v2, desired: 2, rolling: true,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", true), rep(r2, "1", false)}},
		{name: "new replica ready: the oldest old one stops (at the surge limit: start next pass)", d: v2, desired: 2, rolling: true,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", true), rep(r2, "1", true)},
			want:     []string{"stop " + r1 + "-1"}},
		{name: "old not-ready replica goes first", d: v2, desired: 2, rolling: true,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", false), rep(r2, "1", true)},
			want:     []string{"stop " + r1 + "-2"}},
		{name: "last old replica stops once the new ones are ready", d: v2, desired: 2, rolling: true,
			replicas: []Replica{rep(r1, "2", true), rep(r2, "1", true), rep(r2, "2", true)},
			want:     []string{"stop " + r1 + "-2"}},
		{name: "paused update does nothing", d: v2, desired: 2, rolling: true, paused: true,
			replicas: []Replica{rep(r1, "1", true), rep(r1, "2", true), rep(r2, "1", true)}},
		{name: "undo is the same update the other way", d: v1, desired: 1, rolling: true,
			replicas: []Replica{rep(r2, "1", true)},
			want:     []string{"start " + r1}},
		{name: "adopted replicas of a deleted revision stop at zero", d: v2, desired: 0,
			replicas: []Replica{rep(r1, "1", true)},
			want:     []string{"stop " + r1 + "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := plan(planInput{Now: now, Deployment: tt.d, Replicas: tt.replicas, Desired: tt.desired, Progressed: now, Paused: tt.paused})
			var got []string
			for _, a := range out.Actions {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("plan() = %q, want %q", got, tt.want)
			}
			if (out.Rolling != nil) != tt.rolling {
				t.Errorf("plan().Rolling = %v, want rolling %v", out.Rolling, tt.rolling)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	reps := []Replica{
		{Revision: "a", HTTP: "127.0.0.1:1", Ready: true},
		{Revision: "a", HTTP: "127.0.0.1:2", Ready: false},
		{Revision: "b", HTTP: "127.0.0.1:3", Ready: true},
		{Revision: "b", HTTP: "127.0.0.1:4", Ready: true},
		{Revision: "c", HTTP: "127.0.0.1:5", Ready: false},
	}
	m, pct := routes(reps)
	if len(m.Revisions) != 2 || m.Revisions[0].Name != "a" || m.Revisions[0].Weight != 1 || len(m.Revisions[0].Replicas) != 1 ||
		m.Revisions[1].Name != "b" || m.Revisions[1].Weight != 2 {
		t.Errorf("routes() = %+v, want a weight 1 (one ready replica), b weight 2, no c", m)
	}
	if pct["a"] != 33 || pct["b"] != 66 || pct["c"] != 0 {
		t.Errorf("traffic = %v, want a 33, b 66", pct)
	}
	if m, _ := routes(nil); m.Revisions == nil || len(m.Revisions) != 0 {
		t.Errorf("routes(nil) = %+v, want an empty, non-nil list (scaled to zero)", m)
	}
}
