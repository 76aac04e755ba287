package autoscale

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// steady returns a State with load recorded every second for the window
// before now.
func steady(now time.Time, load float64, ready int, window time.Duration) *State {
	st := &State{}
	for t := now.Add(-window + time.Second); !t.After(now); t = t.Add(time.Second) {
		st.Record(Sample{Time: t, Load: load, Ready: ready})
	}
	return st
}

func TestDecide(t *testing.T) {
	now := t0.Add(time.Hour)
	tests := []struct {
		name  string
		spec  Spec
		load  float64
		ready int
		in    Inputs
		want  int
		mode  Mode
	}{
		{"at target", Spec{Target: 10}, 40, 4, Inputs{Current: 4}, 4, Stable},
		{"rounds up", Spec{Target: 10}, 41, 4, Inputs{Current: 4}, 5, Stable},
		{"default target", Spec{}, 250, 3, Inputs{Current: 3}, 3, Stable},
		{"rps default target", Spec{Metric: RequestsPerSecond}, 450, 3, Inputs{Current: 3}, 3, Stable},
		{"max", Spec{Target: 10, MaxReplicas: 5}, 70, 4, Inputs{Current: 4}, 5, Stable},
		{"min", Spec{Target: 10, MinReplicas: 3}, 5, 3, Inputs{Current: 3}, 3, Stable},
		{"min zero means one", Spec{Target: 10}, 0, 1, Inputs{Current: 1}, 1, Stable},
		{"to zero after grace", Spec{Target: 10, ScaleToZero: true}, 0, 1, Inputs{Current: 1}, 0, Stable},
		{"pending at zero", Spec{Target: 10, ScaleToZero: true}, 0, 0, Inputs{Pending: 3}, 1, Stable},
		{"pending sizes", Spec{Target: 10, ScaleToZero: true}, 0, 0, Inputs{Pending: 31}, 4, Stable},
		{"down rate", Spec{Target: 10}, 10, 9, Inputs{Current: 9}, 4, Stable},
		{"up rate", Spec{Target: 10, MaxScaleUpRate: 1.5, PanicThreshold: 100}, 100, 2, Inputs{Current: 2}, 3, Stable},
		{"panic", Spec{Target: 10}, 100, 2, Inputs{Current: 2}, 10, Panic},
		{"panic below threshold", Spec{Target: 10}, 39, 2, Inputs{Current: 2}, 4, Stable},
		{"rollout keeps", Spec{Target: 10}, 10, 8, Inputs{Current: 8, RolloutInProgress: true}, 8, Stable},
		{"rollout scales up", Spec{Target: 10}, 30, 2, Inputs{Current: 2, RolloutInProgress: true}, 3, Stable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := steady(now, tt.load, tt.ready, time.Minute)
			d := Decide(now, tt.spec, st, tt.in)
			if d.Desired != tt.want || d.Mode != tt.mode {
				t.Errorf("Decide(%+v, load %v, ready %d, %+v) = %v, want %d (%s)", tt.spec, tt.load, tt.ready, tt.in, d, tt.want, tt.mode)
			}
		})
	}
}

func TestDecideNoHistory(t *testing.T) {
	var st State
	if d := Decide(t0, Spec{}, &st, Inputs{Current: 3}); d.Desired != 3 {
		t.Errorf("Decide(empty state, current 3) = %v, want 3", d)
	}
	if d := Decide(t0, Spec{ScaleToZero: true}, &st, Inputs{Pending: 1}); d.Desired != 1 {
		t.Errorf("Decide(empty state, pending 1) = %v, want 1", d)
	}
	// A stale history (older than the stable window) counts as none.
	st.Record(Sample{Time: t0, Load: 500, Ready: 5})
	if d := Decide(t0.Add(10*time.Minute), Spec{}, &st, Inputs{Current: 5}); d.Desired != 5 {
		t.Errorf("Decide(stale state, current 5) = %v, want 5", d)
	}
}

func TestStateBounded(t *testing.T) {
	var st State
	for i := range 3600 * 10 { // ten samples a second for an hour
		st.Record(Sample{Time: t0.Add(time.Duration(i) * 100 * time.Millisecond), Load: float64(i % 7), Ready: 1})
	}
	if got, want := len(st.ring), int(DefaultStableWindow/time.Second); got != want {
		t.Errorf("buckets after an hour = %d, want %d", got, want)
	}
	Decide(t0.Add(time.Hour), Spec{StableWindow: 5 * time.Minute}, &st, Inputs{Current: 1})
	if got, want := len(st.ring), 300; got != want {
		t.Errorf("buckets for a 5m window = %d, want %d", got, want)
	}
}

func TestTrend(t *testing.T) {
	now := t0.Add(time.Hour)
	var st State
	for i := range 60 {
		st.Record(Sample{Time: now.Add(-time.Duration(59-i) * time.Second), Load: 10 + 0.5*float64(i), Ready: 1})
	}
	slope, atNow, r2 := st.trend(now, time.Minute)
	if slope < 0.4999 || slope > 0.5001 || atNow < 39.49 || atNow > 39.51 || r2 < 0.999 {
		t.Errorf("trend(ramp 10 -> 39.5) = slope %v, now %v, r2 %v, want 0.5, 39.5, 1", slope, atNow, r2)
	}
	flat := steady(now, 7, 1, time.Minute)
	if slope, _, r2 := flat.trend(now, time.Minute); slope != 0 || r2 != 0 {
		t.Errorf("trend(flat) = slope %v, r2 %v, want 0, 0", slope, r2)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		spec  Spec
		field string // "" for valid
	}{
		{Spec{}, ""},
		{Spec{MinReplicas: 2, MaxReplicas: 2, ScaleToZero: true, StableWindow: time.Second, PanicWindow: time.Second}, ""},
		{Spec{MinReplicas: -1}, "minReplicas"},
		{Spec{MaxReplicas: -1}, "maxReplicas"},
		{Spec{MinReplicas: 3, MaxReplicas: 2}, "minReplicas"},
		{Spec{Metric: "cpu"}, "metric"},
		{Spec{Target: -1}, "target"},
		{Spec{ScaleToZeroGrace: -time.Second}, "scaleToZeroGracePeriod"},
		{Spec{StableWindow: -time.Second}, "stableWindow"},
		{Spec{PanicWindow: 999 * time.Millisecond}, "panicWindow"},
		{Spec{StableWindow: 5 * time.Second}, "panicWindow"},
		{Spec{PanicThreshold: 0.5}, "panicThreshold"},
		{Spec{MaxScaleUpRate: 1}, "maxScaleUpRate"},
		{Spec{MaxScaleDownRate: -2}, "maxScaleDownRate"},
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tt.spec, err)
		case tt.field != "" && (!errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), ": "+tt.field+" ")):
			t.Errorf("Validate(%+v) = %v, want ErrInvalidSpec naming %s", tt.spec, err, tt.field)
		}
	}
}

func TestNoScaleToZeroInPanic(t *testing.T) {
	spec := Spec{Target: 10, ScaleToZero: true, ScaleToZeroGrace: 30 * time.Second}
	var st State
	now := t0
	run := func(d time.Duration, load float64, ready int) {
		for end := now.Add(d); now.Before(end); {
			now = now.Add(time.Second)
			st.Record(Sample{Time: now, Load: load, Ready: ready})
		}
	}
	run(time.Minute, 5, 1)
	run(3*time.Second, 100, 1)
	if d := Decide(now, spec, &st, Inputs{Current: 1}); d.Mode != Panic || d.Desired < 2 {
		t.Fatalf("Decide(burst) = %v, want panic", d)
	}
	run(40*time.Second, 0, 1)
	if d := Decide(now, spec, &st, Inputs{Current: 1}); d.Mode != Panic || d.Desired == 0 {
		t.Errorf("Decide(idle 40s in panic) = %v, want panic, not zero", d)
	}
	run(30*time.Second, 0, 1)
	if d := Decide(now, spec, &st, Inputs{Current: 1}); d.Mode != Stable || d.Desired != 0 {
		t.Errorf("Decide(idle 70s, panic over) = %v, want 0 (stable)", d)
	}
}

func TestRecordBeforeEpoch(t *testing.T) {
	var st State
	now := time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC)
	st.Record(Sample{Time: now, Load: 20, Ready: 2})
	if d := Decide(now, Spec{Target: 10}, &st, Inputs{Current: 2}); d.Desired != 2 {
		t.Errorf("Decide(before 1970) = %v, want 2", d)
	}
}
