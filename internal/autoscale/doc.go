// Package autoscale decides how many replicas a revision of a model
// should have. It is the autoscaler's decision only: a pure function
// (Decide) of the scaling Spec, the load history kept in a State, the
// caller's Inputs and the time now, with no clock, no goroutines and no
// I/O. It does not read metrics, start replicas or store anything; the
// control plane does, and records every Decision as an event.
//
// # What the caller feeds, and when
//
// Keep one State per revision. Every tick (one or two seconds):
//
//  1. Record a Sample: the time, the revision's load in the Spec's Metric
//     (requests in flight, activator-held ones included, for Concurrency;
//     requests per second since the last sample for RequestsPerSecond;
//     both from the gateway's stats) and its ready replicas. Record zero
//     load too: a second without a sample is unknown, not idle.
//  2. Call Decide with the same time and Inputs: the replicas the revision
//     is scaled to now (Current), the requests the activator holds
//     (Pending), the revision's measured time to ready, and whether a
//     rollout step involving it is in progress.
//  3. Scale the revision to Decision.Desired and log the Decision (it is
//     a slog.LogValuer carrying its inputs and its Reason).
//
// Also call Decide at once when the activator starts holding a request for
// a revision at zero, without waiting for the tick.
//
// # The algorithm
//
// It follows Knative Serving's KPA. The load is averaged over two windows
// of one-second buckets: the stable window (60s) and the panic window (6s).
// In stable mode the revision gets ceil(stable average / Target) replicas.
// When the panic-window load reaches PanicThreshold (200%) of what the
// ready replicas carry at Target, panic mode starts: the revision is sized
// on the panic-window load, never scaled down, and panic mode ends only
// when a whole stable window has passed since the load was last over the
// threshold. Each decision is bounded by MaxScaleUpRate x ready (at least
// one ready counted) and ready / MaxScaleDownRate.
//
// Beyond Knative:
//
//   - Scale ahead: when Inputs.TimeToReady is set and the load is rising
//     (a least-squares line over the panic window's buckets has a
//     positive slope and explains at least half of the variance), the
//     revision is sized for the load the line predicts TimeToReady from
//     now, so the replicas started now are ready when that load arrives.
//     The panic window sees a ramp within seconds; the stable window's
//     line would lag it by half a minute. Noise on a flat load explains
//     little of the variance and is ignored.
//   - Scale to zero: with ScaleToZero and MinReplicas 0 the revision goes
//     to zero once no load was seen for ScaleToZeroGrace (not limited by
//     the scale-down rate: there is nothing left to serve). Until then it
//     keeps at least one replica. Without ScaleToZero the least is
//     max(MinReplicas, 1).
//   - Scale from zero: any pending request gives at least one replica at
//     once; with the Concurrency metric, enough for all pending requests.
//   - Rollouts: with RolloutInProgress the decision never goes below
//     Current (it may go up), so a rollout step's arithmetic holds. It is
//     applied last, after MaxReplicas.
package autoscale
