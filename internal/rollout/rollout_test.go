package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestResolve(t *testing.T) {
	tests := []struct {
		v       IntOrPercent
		total   int
		up      bool
		want    int
		wantErr bool
	}{
		{"2", 10, true, 2, false},
		{"0", 10, false, 0, false},
		{"25%", 10, true, 3, false},
		{"25%", 10, false, 2, false},
		{"100%", 3, true, 3, false},
		{"0%", 3, true, 0, false},
		{"1%", 1, true, 1, false},
		{"1%", 1, false, 0, false},
		{"-1", 3, true, 0, true},
		{"101%", 3, true, 0, true},
		{"x%", 3, true, 0, true},
		{"", 3, true, 0, true},
	}
	for _, tt := range tests {
		got, err := tt.v.resolve(tt.total, tt.up)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("IntOrPercent(%q).resolve(%d, %v) = %d, %v, want %d (error %v)", tt.v, tt.total, tt.up, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestPlanRollingInvariants checks every plan over small states: the
// plan never runs more than Desired + surge replicas (counting stopped
// ones as still running, as a drain takes time), never stops a ready old
// replica when that leaves fewer than Desired - unavailable ready, and
// always makes progress when the new replicas are ready.
func TestPlanRollingInvariants(t *testing.T) {
	specs := []Rolling{
		{MaxSurge: "1", MaxUnavailable: "0"},
		{MaxSurge: "0", MaxUnavailable: "1"},
		{MaxSurge: "0", MaxUnavailable: "0"},
		{},
		{MaxSurge: "100%", MaxUnavailable: "50%"},
	}
	for _, spec := range specs {
		for desired := 1; desired <= 6; desired++ {
			surge, _ := spec.withDefaults().MaxSurge.resolve(desired, true)
			unavail, _ := spec.withDefaults().MaxUnavailable.resolve(desired, false)
			if surge == 0 && unavail == 0 {
				unavail = 1
			}
			for old := 0; old <= desired+surge; old++ {
				for oldReady := 0; oldReady <= old; oldReady++ {
					for nw := 0; old+nw <= desired+surge; nw++ {
						for newReady := 0; newReady <= nw; newReady++ {
							st := RollingStatus{Desired: desired, Old: old, OldReady: oldReady, New: nw, NewReady: newReady, Progressed: t0}
							p := PlanRolling(t0, spec, st)
							if p.Start < 0 || p.Stop < 0 || p.Stop > old {
								t.Fatalf("PlanRolling(%+v, %+v) = %v: counts out of range", spec, st, p)
							}
							if old+nw+p.Start > desired+surge && p.Start > 0 {
								t.Errorf("PlanRolling(%+v, %+v) = %v: over %d running", spec, st, p, desired+surge)
							}
							readyStopped := max(0, p.Stop-(old-oldReady))
							if after := oldReady - readyStopped + newReady; readyStopped > 0 && after < desired-unavail && newReady < desired {
								t.Errorf("PlanRolling(%+v, %+v) = %v: %d ready after, want at least %d", spec, st, p, after, desired-unavail)
							}
							if !p.Done && p.Start == 0 && p.Stop == 0 && newReady == nw && (old > 0 || nw < desired) && old+nw <= desired {
								t.Errorf("PlanRolling(%+v, %+v) = %v: no progress with every new replica ready", spec, st, p)
							}
						}
					}
				}
			}
		}
	}
}

func TestRollingValidate(t *testing.T) {
	tests := []struct {
		spec  Rolling
		field string
	}{
		{Rolling{}, ""},
		{Rolling{MaxSurge: "0", MaxUnavailable: "10%", ProgressDeadline: time.Minute}, ""},
		{Rolling{MaxSurge: "-1"}, "maxSurge"},
		{Rolling{MaxUnavailable: "200%"}, "maxUnavailable"},
		{Rolling{ProgressDeadline: -time.Second}, "progressDeadline"},
	}
	for _, tt := range tests {
		checkField(t, tt.spec, tt.spec.Validate(), tt.field)
	}
}

func TestCanaryValidate(t *testing.T) {
	ok := []CanaryStep{{Weight: 10}}
	tests := []struct {
		spec  Canary
		field string
	}{
		{Canary{Steps: ok}, ""},
		{Canary{Steps: []CanaryStep{{Weight: 1, Pause: time.Minute}, {Weight: 99}}, Analysis: Analysis{MaxErrorRate: 1, MaxErrorRateIncrease: 0.01, MaxLatencyRatio: 1, MinRequests: 1}}, ""},
		{Canary{}, "steps"},
		{Canary{Steps: []CanaryStep{{Weight: 10}, {Weight: 100}}}, "steps[1].weight"},
		{Canary{Steps: []CanaryStep{{Weight: 0}}}, "steps[0].weight"},
		{Canary{Steps: []CanaryStep{{Weight: 5, Pause: -1}}}, "steps[0].pause"},
		{Canary{Steps: ok, Analysis: Analysis{MaxErrorRate: 5}}, "analysis.maxErrorRate"},
		{Canary{Steps: ok, Analysis: Analysis{MaxErrorRateIncrease: -0.1}}, "analysis.maxErrorRateIncrease"},
		{Canary{Steps: ok, Analysis: Analysis{MaxLatencyRatio: 0.9}}, "analysis.maxLatencyRatio"},
		{Canary{Steps: ok, Analysis: Analysis{MinRequests: -1}}, "analysis.minRequests"},
	}
	for _, tt := range tests {
		checkField(t, tt.spec, tt.spec.Validate(), tt.field)
	}
}

func checkField(t *testing.T, spec any, err error, field string) {
	t.Helper()
	switch {
	case field == "" && err != nil:
		t.Errorf("Validate(%+v) = %v, want nil", spec, err)
	case field != "" && (!errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), ": "+field+" ")):
		t.Errorf("Validate(%+v) = %v, want ErrInvalidSpec naming %s", spec, err, field)
	}
}

func TestJudge(t *testing.T) {
	a := Analysis{MaxErrorRate: 0.05, MaxErrorRateIncrease: 0.02, MaxLatencyRatio: 2}
	stable := Metrics{Requests: 1000, Errors: 10, P99: 100 * time.Millisecond}
	tests := []struct {
		canary Metrics
		want   string // a substring of the breach, "" for none
	}{
		{Metrics{Requests: 100, Errors: 3, P99: 200 * time.Millisecond}, ""},
		{Metrics{Requests: 100, Errors: 6}, "canary error rate 6.0% > max 5.0%"},
		{Metrics{Requests: 1000, Errors: 31}, "canary error rate 3.1% > stable 1.0% + 2.0%"},
		{Metrics{Requests: 100, P99: 201 * time.Millisecond}, "canary p99 201ms > 2 x stable p99 100ms over 100 requests"},
	}
	for _, tt := range tests {
		got := judge(a, tt.canary, stable)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("judge(%+v) = %q, want %q", tt.canary, got, tt.want)
		}
	}
	// No stable latency: the ratio is not judged.
	if got := judge(Analysis{MaxLatencyRatio: 1.1}, Metrics{Requests: 10, P99: time.Second}, Metrics{Requests: 10}); got != "" {
		t.Errorf("judge(no stable p99) = %q, want none", got)
	}
}

func TestParseCommand(t *testing.T) {
	for _, s := range []string{"pause", "resume", "promote", "undo"} {
		if c, err := ParseCommand(s); err != nil || string(c) != s {
			t.Errorf("ParseCommand(%q) = %q, %v, want %q", s, c, err, s)
		}
	}
	if _, err := ParseCommand("rollback"); !errors.Is(err, ErrUnknownCommand) {
		t.Errorf("ParseCommand(rollback) = %v, want ErrUnknownCommand", err)
	}
}

func TestStepSpecChanged(t *testing.T) {
	if _, err := Step(t0, Canary{}, CanaryStatus{}, CanaryInput{}); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Step(no steps) = %v, want ErrInvalidSpec", err)
	}
	// The status is at step 3 of a spec that now has one step.
	spec := Canary{Steps: []CanaryStep{{Weight: 20}}, Analysis: Analysis{MinRequests: 10}}
	st := CanaryStatus{Phase: Progressing, Step: 2, StepStarted: t0}
	d, err := Step(t0.Add(time.Minute), spec, st, CanaryInput{Canary: Metrics{Requests: 10}})
	if err != nil || d.Status.Phase != Promoted || d.Weight != 100 {
		t.Errorf("Step(step 3 of 1) = %v, %v, want Promoted at 100%%", d, err)
	}
}
