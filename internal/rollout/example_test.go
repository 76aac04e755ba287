package rollout_test

import (
	"fmt"
	"time"

	"github.com/shoal-ml/shoal/internal/rollout"
)

func ExamplePlanRolling() {
	spec := rollout.Rolling{MaxSurge: "1", MaxUnavailable: "0"}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Three old replicas, one new replica started and now ready.
	st := rollout.RollingStatus{Desired: 3, Old: 3, OldReady: 3, New: 1, NewReady: 1, Progressed: now}
	p := rollout.PlanRolling(now, spec, st)
	fmt.Println(p)
	// Output: start 0, stop 1: 4 ready, at least 3
}

func ExampleStep() {
	spec := rollout.Canary{
		Steps:    []rollout.CanaryStep{{Weight: 10, Pause: time.Minute}, {Weight: 50, Pause: time.Minute}},
		Analysis: rollout.Analysis{MaxErrorRate: 0.05, MinRequests: 100},
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st rollout.CanaryStatus // not started
	d, _ := rollout.Step(start, spec, st, rollout.CanaryInput{})
	fmt.Println(d)
	// A minute later, with the metrics of the step so far.
	d, _ = rollout.Step(start.Add(time.Minute), spec, d.Status, rollout.CanaryInput{
		Canary: rollout.Metrics{Requests: 340, Errors: 41},
		Stable: rollout.Metrics{Requests: 3060, Errors: 12},
	})
	fmt.Println(d)
	// Output:
	// Progressing step 1 weight 10%: started: step 1/2 at 10%
	// RolledBack step 1 weight 0%: canary error rate 12.1% > max 5.0% over 340 requests at step 1/2
}
