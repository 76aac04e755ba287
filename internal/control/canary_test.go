package control

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/rollout"
)

// TestCanaryPlan: objects (a canary step and the replicas) in, actions
// and traffic out.
func TestCanaryPlan(t *testing.T) {
	rep := func(rev, id string, ready bool) Replica {
		return Replica{ID: rev + "-" + id, Revision: rev, HTTP: "127.0.0.1:" + id, Ready: ready}
	}
	tests := []struct {
		name     string
		weight   int
		desired  int
		replicas []Replica
		want     []string
		traffic  map[string]int32
	}{
		{name: "first step starts one canary replica", weight: 10, desired: 4,
			replicas: []Replica{rep("s", "1", true), rep("s", "2", true)},
			want:     []string{"start c"}, traffic: map[string]int32{"s": 100}},
		{name: "ready canary gets its weight", weight: 10, desired: 2,
			replicas: []Replica{rep("s", "1", true), rep("s", "2", true), rep("c", "3", true)},
			traffic:  map[string]int32{"s": 90, "c": 10}},
		{name: "a larger step gets more canary replicas", weight: 50, desired: 4,
			replicas: []Replica{rep("s", "1", true), rep("c", "3", true)},
			want:     []string{"start c"}, traffic: map[string]int32{"s": 50, "c": 50}},
		{name: "replicas of a third revision stop", weight: 10, desired: 1,
			replicas: []Replica{rep("s", "1", true), rep("x", "9", true), rep("c", "3", false)},
			want:     []string{"stop x-9"}, traffic: map[string]int32{"s": 100, "x": 0}},
		{name: "stable gone: the canary takes all", weight: 10, desired: 1,
			replicas: []Replica{rep("c", "3", true)},
			traffic:  map[string]int32{"c": 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &canaryState{revision: "c", stable: "s", weight: tt.weight, status: rollout.CanaryStatus{Phase: rollout.Progressing}}
			var got []string
			for _, a := range canaryPlan(cs, tt.replicas, tt.desired) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("canaryPlan() = %q, want %q", got, tt.want)
			}
			_, pct := canaryRoutes(cs, tt.replicas)
			for rev, w := range tt.traffic {
				if pct[rev] != w {
					t.Errorf("traffic = %v, want %v", pct, tt.traffic)
					break
				}
			}
		})
	}
}

func TestCountersSince(t *testing.T) {
	inf := math.Inf(1)
	base := RevisionCounters{Requests: 100, Errors: 1, Buckets: []Bucket{{0.001, 90}, {0.01, 100}, {inf, 100}}}
	now := RevisionCounters{Requests: 300, Errors: 21, Buckets: []Bucket{{0.001, 90}, {0.01, 290}, {inf, 300}}}
	m := now.since(base)
	if m.Requests != 200 || m.Errors != 20 {
		t.Errorf("since() = %+v, want 200 requests, 20 errors", m)
	}
	// 200 new requests: none under 1ms, 190 under 10ms, 10 above: the p99
	// (rank 198) lies in the +Inf bucket, reported as its lower bound.
	if m.P99 != 10*time.Millisecond {
		t.Errorf("since().P99 = %v, want 10ms", m.P99)
	}
	// Counters that went down (a restarted gateway) count from zero.
	if m := base.since(now); m.Requests != 100 || m.Errors != 1 {
		t.Errorf("since(larger) = %+v, want the counters themselves", m)
	}
	q := quantile(0.5, []Bucket{{0.001, 0}, {0.002, 100}, {inf, 100}})
	if q != 1500*time.Microsecond {
		t.Errorf("quantile(0.5) = %v, want 1.5ms (linear within the bucket)", q)
	}
}

func TestCanarySpecLatencySlack(t *testing.T) {
	for _, tt := range []struct {
		name string
		yaml string
		want time.Duration
	}{
		{"default", "", 10 * time.Millisecond},
		{"set", "latencySlack: 25ms", 25 * time.Millisecond},
		{"none", "latencySlack: 0s", -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := v1alpha1.Decode([]byte("apiVersion: shoal.dev/v1alpha1\nkind: ModelDeployment\nmetadata: {name: a}\n" +
				"spec:\n  model: {uri: /m}\n  rollout:\n    strategy: canary\n    analysis: {" + tt.yaml + "}\n"))
			if err != nil {
				t.Fatal(err)
			}
			ds[0].Default()
			if got := canarySpec(ds[0].Spec.Rollout).Analysis.LatencySlack; got != tt.want {
				t.Errorf("canarySpec().Analysis.LatencySlack = %v, want %v", got, tt.want)
			}
		})
	}
}
