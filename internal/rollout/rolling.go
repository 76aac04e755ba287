package rollout

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Defaults of the zero fields of Rolling.
const (
	DefaultMaxSurge         IntOrPercent = "25%"
	DefaultMaxUnavailable   IntOrPercent = "25%"
	DefaultProgressDeadline              = 10 * time.Minute
)

// IntOrPercent is a number of replicas, written as a count ("2") or as a
// percentage of the desired replicas ("25%"). The empty value means the
// field's default.
type IntOrPercent string

// resolve returns v as a count of total replicas, rounding a percentage up
// or down.
func (v IntOrPercent) resolve(total int, roundUp bool) (int, error) {
	s := string(v)
	if p, ok := strings.CutSuffix(s, "%"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 100 {
			return 0, fmt.Errorf("%q is not a percentage from 0%% to 100%%", s)
		}
		x := float64(n) * float64(total) / 100
		if roundUp {
			return int(math.Ceil(x)), nil
		}
		return int(math.Floor(x)), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is neither a count nor a percentage", s)
	}
	return n, nil
}

// Rolling is the rolling-update strategy: replace the old revision's
// replicas with the new one's a few at a time, never routing to a replica
// that is not ready. The zero value is usable: 25% surge, 25% unavailable,
// a 10 minute progress deadline.
type Rolling struct {
	// MaxSurge is how many replicas above the desired count may run
	// during the update, rounded up from a percentage. Empty means
	// DefaultMaxSurge.
	MaxSurge IntOrPercent
	// MaxUnavailable is how many of the desired replicas may be not ready
	// during the update, rounded down from a percentage. Empty means
	// DefaultMaxUnavailable. When both resolve to zero, one replica may be
	// unavailable, as in Kubernetes.
	MaxUnavailable IntOrPercent
	// ProgressDeadline is how long the update may go without a new
	// replica becoming ready before it is reported stalled. Zero means
	// DefaultProgressDeadline.
	ProgressDeadline time.Duration
}

func (r Rolling) withDefaults() Rolling {
	if r.MaxSurge == "" {
		r.MaxSurge = DefaultMaxSurge
	}
	if r.MaxUnavailable == "" {
		r.MaxUnavailable = DefaultMaxUnavailable
	}
	if r.ProgressDeadline == 0 {
		r.ProgressDeadline = DefaultProgressDeadline
	}
	return r
}

// Validate reports the first invalid field of r as an error wrapping
// ErrInvalidSpec.
func (r Rolling) Validate() error {
	d := r.withDefaults()
	if _, err := d.MaxSurge.resolve(1, true); err != nil {
		return fmt.Errorf("%w: maxSurge %v", ErrInvalidSpec, err)
	}
	if _, err := d.MaxUnavailable.resolve(1, false); err != nil {
		return fmt.Errorf("%w: maxUnavailable %v", ErrInvalidSpec, err)
	}
	if r.ProgressDeadline < 0 {
		return fmt.Errorf("%w: progressDeadline %v is negative", ErrInvalidSpec, r.ProgressDeadline)
	}
	return nil
}

// RollingStatus is the state of a rolling update as the caller observes
// it at one moment, from the backend's list of replicas and their
// readiness.
type RollingStatus struct {
	// Desired is the number of replicas the new revision should end with
	// (the autoscaler's decision; it does not go down during a rollout).
	Desired int
	// Old and OldReady count the replicas of the previous revisions that
	// have not been asked to stop, and how many of them are ready.
	Old, OldReady int
	// New and NewReady count the new revision's replicas started, and how
	// many of them are ready.
	New, NewReady int
	// Progressed is when the update started or was resumed, or NewReady
	// last grew.
	Progressed time.Time
	// Paused holds the update where it is (shoal rollout pause).
	Paused bool
}

// RollingPlan is what to do next in a rolling update.
type RollingPlan struct {
	// Start is how many new replicas to start.
	Start int
	// Stop is how many old replicas to stop: the not-ready ones first,
	// then ready ones, each taken out of the gateway's routing table and
	// drained before it is stopped.
	Stop int
	// Done is set when every desired new replica is ready and no old one
	// is left.
	Done bool
	// Stalled is set when no new replica became ready for the progress
	// deadline; the caller should report it and may undo the update.
	Stalled bool
	// Reason says why, in words.
	Reason string
}

// String returns the plan on one line.
func (p RollingPlan) String() string {
	s := fmt.Sprintf("start %d, stop %d", p.Start, p.Stop)
	if p.Done {
		s = "done"
	}
	if p.Stalled {
		s += ", stalled"
	}
	return s + ": " + p.Reason
}

// PlanRolling returns the next actions of a rolling update at now: how
// many new replicas to start and how many old ones to stop, so that no
// more than Desired + MaxSurge replicas run and no fewer than Desired -
// MaxUnavailable are ready, counting only ready replicas as serving. A new
// replica that never becomes ready therefore holds the update (and is
// reported stalled after ProgressDeadline) while the old replicas go on
// serving. spec should have passed Validate (an invalid one plans
// nothing). Both counts are computed from st as observed, before either is
// applied; call again after the backend reports the change.
//
// Undo is a rolling update the other way: swap the roles of old and new.
func PlanRolling(now time.Time, spec Rolling, st RollingStatus) RollingPlan {
	spec = spec.withDefaults()
	surge, err1 := spec.MaxSurge.resolve(st.Desired, true)
	unavail, err2 := spec.MaxUnavailable.resolve(st.Desired, false)
	if err1 != nil || err2 != nil {
		return RollingPlan{Reason: "invalid spec"}
	}
	if surge == 0 && unavail == 0 {
		unavail = 1
	}
	if st.NewReady >= st.Desired && st.Old == 0 {
		return RollingPlan{Done: true, Reason: fmt.Sprintf("%d of %d new replicas ready", st.NewReady, st.Desired)}
	}
	if st.Paused {
		return RollingPlan{Reason: "paused"}
	}
	maxTotal := st.Desired + surge
	minReady := max(st.Desired-unavail, 0)
	p := RollingPlan{
		Start: max(0, min(st.Desired-st.New, maxTotal-st.Old-st.New)),
	}
	ready := st.OldReady + st.NewReady
	p.Stop = min(st.Old, st.Old-st.OldReady+max(0, ready-minReady))
	if st.NewReady >= st.Desired {
		p.Stop = st.Old
	}
	var why []string
	if p.Start > 0 {
		why = append(why, fmt.Sprintf("%d old + %d new running, at most %d", st.Old, st.New, maxTotal))
	}
	if unready := st.Old - st.OldReady; p.Stop > 0 && unready > 0 {
		why = append(why, fmt.Sprintf("%d old not ready", unready))
	}
	if p.Stop > st.Old-st.OldReady {
		why = append(why, fmt.Sprintf("%d ready, at least %d", ready, minReady))
	}
	if p.Start == 0 && p.Stop == 0 {
		why = append(why, fmt.Sprintf("waiting for new replicas: %d of %d ready (%d ready in all, at least %d; %d running, at most %d)",
			st.NewReady, st.New, ready, minReady, st.Old+st.New, maxTotal))
	}
	if since := now.Sub(st.Progressed); since >= spec.ProgressDeadline {
		p.Stalled = true
		why = append(why, fmt.Sprintf("no new replica ready for %v (deadline %v)", since, spec.ProgressDeadline))
	}
	p.Reason = strings.Join(why, "; ")
	return p
}
