package autoscale

import (
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Mode is the autoscaler's mode for a revision.
type Mode string

const (
	// Stable sizes the revision for the load averaged over the stable
	// window.
	Stable Mode = "stable"
	// Panic sizes it for the load of the panic window and never scales
	// down; it lasts at least a stable window after the last burst.
	Panic Mode = "panic"
)

// minTrendR2 is the least coefficient of determination of the load trend
// for it to count as rising: below it, the slope is noise.
const minTrendR2 = 0.5

// Inputs are what the caller knows besides the load history when it
// decides. The zero value means: at zero replicas, nothing pending, no
// measured time to ready, no rollout.
type Inputs struct {
	// Current is the number of replicas the revision is scaled to now,
	// ready or not (the last Desired the caller applied).
	Current int
	// Pending is the number of requests the gateway's activator holds
	// for the revision now; any makes the revision scale from zero.
	Pending int
	// TimeToReady is the revision's measured time from starting a
	// replica to its being ready. When the load is rising the revision is
	// sized for the load predicted TimeToReady ahead. Zero disables this.
	TimeToReady time.Duration
	// RolloutInProgress is set while the revision takes part in a
	// rollout step; the decision then never goes below Current.
	RolloutInProgress bool
}

// Decision is one decision of the autoscaler with the inputs it used, so
// the caller can record it as an event (it implements slog.LogValuer).
type Decision struct {
	Time time.Time
	// Desired is the number of replicas the revision should have.
	Desired int
	Mode    Mode
	// Reason says, in words, how Desired was reached.
	Reason string

	// The inputs.
	Ready, Current, Pending int
	Target                  float64
	StableLoad, PanicLoad   float64 // averages over the two windows
	Slope                   float64 // load trend per second over the panic window
	LeadTime                time.Duration
	PredictedLoad           float64 // load expected LeadTime ahead; StableLoad when not rising
	Idle                    time.Duration
	RolloutInProgress       bool
}

// String returns the decision and its reason on one line.
func (d Decision) String() string {
	return fmt.Sprintf("desired %d (%s): %s", d.Desired, d.Mode, d.Reason)
}

// Inputs returns the inputs of the decision on one line, for its event.
func (d Decision) Inputs() string {
	return fmt.Sprintf("ready %d, current %d, pending %d, target %g, stable load %s, panic load %s, slope %+.2f/s, lead time %v, predicted load %s, idle %v, rollout %v",
		d.Ready, d.Current, d.Pending, d.Target, fmtLoad(d.StableLoad), fmtLoad(d.PanicLoad), d.Slope, d.LeadTime, fmtLoad(d.PredictedLoad), d.Idle.Round(time.Second), d.RolloutInProgress)
}

// LogValue returns the decision as a group of attributes.
func (d Decision) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("desired", d.Desired),
		slog.String("mode", string(d.Mode)),
		slog.String("reason", d.Reason),
		slog.Int("ready", d.Ready),
		slog.Int("current", d.Current),
		slog.Int("pending", d.Pending),
		slog.Float64("target", d.Target),
		slog.Float64("stable_load", d.StableLoad),
		slog.Float64("panic_load", d.PanicLoad),
		slog.Float64("slope", d.Slope),
		slog.Duration("lead_time", d.LeadTime),
		slog.Float64("predicted_load", d.PredictedLoad),
		slog.Duration("idle", d.Idle),
		slog.Bool("rollout", d.RolloutInProgress),
	)
}

// fmtLoad formats a load with three significant digits, or as a whole
// number from 100.
func fmtLoad(x float64) string {
	if x >= 100 {
		return fmt.Sprintf("%.0f", x)
	}
	return fmt.Sprintf("%.3g", x)
}

// replicasFor returns the replicas that carry load at target each.
func replicasFor(load, target float64) int {
	return int(math.Ceil(load/target - 1e-9))
}

// Decide returns how many replicas the revision should have at now, given
// its scaling spec (zero fields mean their defaults; spec should have
// passed Validate), the history in st and the caller's inputs. It updates
// the panic mode in st, and nothing else: no clock, no I/O. The caller
// records a Sample every tick before calling Decide with the same now. st
// must not be nil; its zero value is an empty history.
//
// The steps, in order: the stable and panic averages; the load predicted
// TimeToReady ahead when the trend is rising; the replicas for each,
// bounded by the scale-up and scale-down rates; panic mode (enter over the
// threshold, leave a stable window after the last time over it, never
// scale down in it); scale to zero after the grace period or at least one
// replica while there is traffic or a pending request; min and max; no
// decrease during a rollout.
func Decide(now time.Time, spec Spec, st *State, in Inputs) Decision {
	spec = spec.WithDefaults()
	st.resize(spec.StableWindow)
	d := Decision{
		Time: now, Mode: Stable, Ready: st.ready, Current: in.Current, Pending: in.Pending,
		Target: spec.Target, LeadTime: in.TimeToReady, RolloutInProgress: in.RolloutInProgress,
	}
	var why []string
	note := func(format string, args ...any) { why = append(why, fmt.Sprintf(format, args...)) }

	stable, n := st.average(now, spec.StableWindow)
	panicLoad, _ := st.average(now, spec.PanicWindow)
	d.StableLoad, d.PanicLoad, d.PredictedLoad = stable, panicLoad, stable
	if !st.first.IsZero() {
		since := st.first
		if st.lastActive.After(since) {
			since = st.lastActive
		}
		d.Idle = now.Sub(since)
	}

	if n == 0 {
		// No history (a new revision or a restarted control plane):
		// keep what there is.
		d.Desired = in.Current
		note("no samples in the last %v: keep %d", spec.StableWindow, in.Current)
	} else {
		slope, atNow, r2 := st.trend(now, spec.PanicWindow)
		d.Slope = slope
		if in.TimeToReady > 0 && slope > 0 && r2 >= minTrendR2 {
			if p := atNow + slope*in.TimeToReady.Seconds(); p > stable {
				d.PredictedLoad = p
			}
		}
		ready := float64(max(st.ready, 1))
		maxUp := int(math.Ceil(spec.MaxScaleUpRate*ready - 1e-9))
		maxDown := int(math.Floor(float64(st.ready)/spec.MaxScaleDownRate + 1e-9))
		limit := func(w int) (int, string) {
			switch {
			case w > maxUp:
				return maxUp, fmt.Sprintf("scale-up limited to %d (%g x %d ready)", maxUp, spec.MaxScaleUpRate, max(st.ready, 1))
			case w < maxDown:
				return maxDown, fmt.Sprintf("scale-down limited to %d (%d ready / %g)", maxDown, st.ready, spec.MaxScaleDownRate)
			}
			return w, ""
		}
		stableWant, stableLim := limit(replicasFor(d.PredictedLoad, spec.Target))
		panicWant, panicLim := limit(replicasFor(max(panicLoad, d.PredictedLoad), spec.Target))

		over := panicLoad >= spec.PanicThreshold*spec.Target*ready
		switch {
		case over && st.panicSince.IsZero():
			st.panicSince, st.panicLast, st.maxPanic = now, now, 0
			note("panic: load %s over %v >= %g x %g x %d ready", fmtLoad(panicLoad), spec.PanicWindow, spec.PanicThreshold, spec.Target, max(st.ready, 1))
		case over:
			st.panicLast = now
		case !st.panicSince.IsZero() && now.Sub(st.panicLast) >= spec.StableWindow:
			note("panic over: %v since the last burst", now.Sub(st.panicLast))
			st.panicSince, st.panicLast, st.maxPanic = time.Time{}, time.Time{}, 0
		}

		if !st.panicSince.IsZero() {
			d.Mode = Panic
			d.Desired = panicWant
			note("panic load %s / target %g = %d", fmtLoad(max(panicLoad, d.PredictedLoad)), spec.Target, replicasFor(max(panicLoad, d.PredictedLoad), spec.Target))
			if panicLim != "" {
				note("%s", panicLim)
			}
			if floor := max(st.maxPanic, st.ready); d.Desired < floor {
				d.Desired = floor
				note("no scale-down in panic: keep %d", floor)
			}
			st.maxPanic = d.Desired
		} else {
			d.Desired = stableWant
			if d.PredictedLoad > stable {
				note("load rising %+.2f/s: predicted %s in %v / target %g = %d", slope, fmtLoad(d.PredictedLoad), in.TimeToReady, spec.Target, replicasFor(d.PredictedLoad, spec.Target))
			} else {
				note("stable load %s / target %g = %d", fmtLoad(stable), spec.Target, replicasFor(stable, spec.Target))
			}
			if stableLim != "" {
				note("%s", stableLim)
			}
		}
	}

	// Requests held by the activator need a replica now; with the
	// concurrency metric, as many as they fill at once.
	pendingNeed := min(in.Pending, 1)
	if spec.Metric == Concurrency {
		pendingNeed = max(pendingNeed, replicasFor(float64(in.Pending), spec.Target))
	}
	toZero := spec.ScaleToZero && spec.MinReplicas == 0
	switch {
	case in.Pending > 0 && d.Desired < pendingNeed:
		d.Desired = pendingNeed
		note("%d pending requests need %d", in.Pending, pendingNeed)
	case toZero && n > 0 && d.Mode == Stable && d.Idle >= spec.ScaleToZeroGrace:
		if d.Desired > 0 || in.Current > 0 {
			note("no traffic for %v (grace %v): scale to zero", d.Idle, spec.ScaleToZeroGrace)
		}
		d.Desired = 0
	case toZero && n > 0 && d.Desired < 1 && in.Current > 0:
		d.Desired = 1
		note("keep 1 until %v without traffic (idle %v)", spec.ScaleToZeroGrace, d.Idle)
	case !toZero && d.Desired < max(spec.MinReplicas, 1):
		d.Desired = max(spec.MinReplicas, 1)
		note("raised to min %d", d.Desired)
	}
	if spec.MaxReplicas > 0 && d.Desired > spec.MaxReplicas {
		d.Desired = spec.MaxReplicas
		note("capped at max %d", spec.MaxReplicas)
	}
	if in.RolloutInProgress && d.Desired < in.Current {
		d.Desired = in.Current
		note("rollout in progress: keep %d", in.Current)
	}
	if in.Current == 0 && d.Desired > 0 {
		note("scale from zero")
	}
	d.Reason = strings.Join(why, "; ")
	return d
}
