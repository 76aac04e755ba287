// Package rollout decides the steps of replacing one revision of a model
// with another: a rolling update (PlanRolling) or a canary with automated
// analysis (Step). Both are pure functions of a spec, the status the
// caller observed and stored, and the time now: no clock, no goroutines,
// no I/O. The package does not start or stop replicas, set traffic
// weights, collect metrics or store the status; the control plane does,
// and records every decision's Reason as an event.
//
// # Rolling update
//
// On every change the caller observes (a replica started, became ready or
// stopped), and on a tick for the progress deadline, it lists the
// replicas of the old revisions and of the new one with their readiness,
// calls PlanRolling, then starts RollingPlan.Start new replicas and stops
// RollingPlan.Stop old ones: the not-ready ones first, and each ready one
// only after the gateway's routing table no longer sends it requests and
// its requests in flight have finished. The plan keeps at most Desired +
// MaxSurge replicas running and at least Desired - MaxUnavailable ready,
// counting only ready replicas (readiness gating), so with the gateway
// routing only to ready replicas no request fails while replicas are
// replaced. Both numbers are computed from the observed state before
// either action, as in the Kubernetes Deployment controller. A new replica
// that never becomes ready holds the update; after ProgressDeadline the
// plan says Stalled, and the caller reports it (and may undo). Undo is the
// same plan with the roles of old and new swapped. Pause is
// RollingStatus.Paused; on resume, reset RollingStatus.Progressed.
//
// # Canary
//
// The caller stores a CanaryStatus per rollout (its zero value: not
// started) and calls Step on every tick (every few seconds) and at once
// when the user gives a command (shoal rollout pause|resume|promote|undo,
// parsed by ParseCommand). It passes the canary's and the stable
// revision's request counts, error counts and p99 latency since
// CanaryStatus.StepStarted; it stores the returned status, sets the
// canary's traffic weight to CanaryDecision.Weight (the stable revision
// gets the rest), and starts counting the metrics afresh when StepStarted
// changes. While the phase is Progressing or Paused, the caller also tells
// the autoscaler a rollout is in progress for both revisions.
//
// Each step is judged once the canary has served Analysis.MinRequests
// requests in it (and the stable revision as many, when a threshold is
// relative to it): the canary's error rate against MaxErrorRate, against
// the stable error rate plus MaxErrorRateIncrease, and its p99 latency
// against MaxLatencyRatio times the stable p99. A breach rolls the
// rollout back at once (weight 0, phase RolledBack) with the breach in
// the reason, such as "canary error rate 12.0% > max 5.0% over 340
// requests at step 2/3"; this holds while paused, too. Before it has
// enough requests a step waits and says so. A step ends when it has
// passed and lasted its Pause; the next step begins with fresh metrics;
// after the last one the canary is promoted (weight 100, phase Promoted).
// Pause holds the step (Paused), Resume restarts it, Promote and Undo end
// the rollout at once; a command to a finished rollout is ErrFinished.
package rollout
