package rollout

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultMinRequests is the canary requests a step needs before it is
// judged, when Analysis.MinRequests is zero.
const DefaultMinRequests = 100

// DefaultLatencySlack is the p99 difference below which a canary is never
// judged slower than the stable revision (see Analysis.LatencySlack).
const DefaultLatencySlack = 10 * time.Millisecond

// Errors.
var (
	// ErrInvalidSpec is wrapped by the errors of the Validate methods.
	ErrInvalidSpec = errors.New("rollout: invalid spec")
	// ErrFinished is returned by Step for a command to a rollout that
	// was already promoted or rolled back.
	ErrFinished = errors.New("rollout: rollout already finished")
	// ErrUnknownCommand is returned by ParseCommand.
	ErrUnknownCommand = errors.New("rollout: unknown command")
)

// Canary is the canary strategy: shift traffic to the new revision step by
// step, judge it against the stable revision over each step, promote it
// after the last step or roll it back at the first breach.
type Canary struct {
	// Steps are the traffic weights of the canary, in order. There must be
	// at least one.
	Steps []CanaryStep
	// Analysis holds the thresholds every step is judged by.
	Analysis Analysis
}

// CanaryStep is one step of a canary rollout.
type CanaryStep struct {
	// Weight is the percentage of requests sent to the canary, 1 to 99
	// (promotion sends 100).
	Weight int
	// Pause is how long the step lasts at least. Zero means the step
	// ends as soon as it has MinRequests canary requests and passes.
	Pause time.Duration
}

// Analysis holds the thresholds a canary step is judged by. A zero
// threshold is not checked.
type Analysis struct {
	// MaxErrorRate is the highest error rate of the canary, as a fraction
	// (0.05 is 5%).
	MaxErrorRate float64
	// MaxErrorRateIncrease is how far the canary's error rate may exceed
	// the stable revision's, as a fraction (0.01 is one percentage point).
	MaxErrorRateIncrease float64
	// MaxLatencyRatio is the highest ratio of the canary's p99 latency to
	// the stable revision's (1.5 allows 50% slower).
	MaxLatencyRatio float64
	// LatencySlack is how much slower than the stable p99 the canary's p99
	// may always be, whatever the ratio: at millisecond latencies histogram
	// buckets and a fresh process's cold caches move p99 by a few
	// milliseconds, which is noise, not a regression. Zero means
	// DefaultLatencySlack; negative means none.
	LatencySlack time.Duration
	// MinRequests is how many canary requests a step needs before it is
	// judged (and, for the checks relative to stable, as many stable
	// requests). Zero means DefaultMinRequests.
	MinRequests int
}

// Validate reports the first invalid field of c as an error wrapping
// ErrInvalidSpec.
func (c Canary) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidSpec, field, fmt.Sprintf(format, args...))
	}
	if len(c.Steps) == 0 {
		return bad("steps", "is empty")
	}
	for i, s := range c.Steps {
		if s.Weight < 1 || s.Weight > 99 {
			return bad(fmt.Sprintf("steps[%d].weight", i), "%d is not from 1 to 99", s.Weight)
		}
		if s.Pause < 0 {
			return bad(fmt.Sprintf("steps[%d].pause", i), "%v is negative", s.Pause)
		}
	}
	a := c.Analysis
	switch {
	case a.MaxErrorRate < 0 || a.MaxErrorRate > 1:
		return bad("analysis.maxErrorRate", "%g is not from 0 to 1", a.MaxErrorRate)
	case a.MaxErrorRateIncrease < 0 || a.MaxErrorRateIncrease > 1:
		return bad("analysis.maxErrorRateIncrease", "%g is not from 0 to 1", a.MaxErrorRateIncrease)
	case a.MaxLatencyRatio < 0 || a.MaxLatencyRatio != 0 && a.MaxLatencyRatio < 1:
		return bad("analysis.maxLatencyRatio", "%g is under 1", a.MaxLatencyRatio)
	case a.MinRequests < 0:
		return bad("analysis.minRequests", "%d is negative", a.MinRequests)
	}
	return nil
}

// Phase is the phase of a canary rollout.
type Phase string

const (
	// Progressing: the canary gets its step's weight and is judged.
	Progressing Phase = "Progressing"
	// Paused: the step holds by the user's command (still judged).
	Paused Phase = "Paused"
	// Promoted: the canary gets all traffic; the rollout is over.
	Promoted Phase = "Promoted"
	// RolledBack: the canary gets no traffic; the rollout is over.
	RolledBack Phase = "RolledBack"
)

// Command is a user's command to a rollout (shoal rollout ...).
type Command string

const (
	// NoCommand is a tick without a user's command.
	NoCommand Command = ""
	// Pause holds the rollout at its step; a breach still rolls it back.
	Pause Command = "pause"
	// Resume restarts the current step after a pause.
	Resume Command = "resume"
	// Promote sends all traffic to the canary now.
	Promote Command = "promote"
	// Undo rolls the canary back now.
	Undo Command = "undo"
)

// ParseCommand returns the command named s, or ErrUnknownCommand.
func ParseCommand(s string) (Command, error) {
	switch c := Command(s); c {
	case Pause, Resume, Promote, Undo:
		return c, nil
	}
	return NoCommand, fmt.Errorf("%w %q (want pause, resume, promote or undo)", ErrUnknownCommand, s)
}

// CanaryStatus is the state of a canary rollout, stored by the caller
// between calls to Step. The zero value is a rollout not yet started.
type CanaryStatus struct {
	Phase Phase
	// Step is the index of the current step in Canary.Steps.
	Step int
	// StepStarted is when the current step began: the caller's metrics
	// count from then.
	StepStarted time.Time
	// Reason says why the rollout reached its phase (the rollback's
	// breach, the user's command).
	Reason string
}

// Metrics are one revision's requests over the current step.
type Metrics struct {
	Requests int
	Errors   int           // requests that failed (5xx, errors)
	P99      time.Duration // 99th percentile latency; zero if unknown
}

func (m Metrics) errorRate() float64 {
	if m.Requests == 0 {
		return 0
	}
	return float64(m.Errors) / float64(m.Requests)
}

// CanaryInput is what the caller observed since CanaryStatus.StepStarted,
// and the user's command, if any.
type CanaryInput struct {
	Canary, Stable Metrics
	Command        Command
}

// CanaryDecision is the outcome of one Step.
type CanaryDecision struct {
	// Status is the rollout's new status, to store.
	Status CanaryStatus
	// Weight is the percentage of requests to send to the canary; the
	// stable revision gets the rest.
	Weight int
	// Reason says what happened at this step, in words.
	Reason string
}

// String returns the decision on one line.
func (d CanaryDecision) String() string {
	return fmt.Sprintf("%s step %d weight %d%%: %s", d.Status.Phase, d.Status.Step+1, d.Weight, d.Reason)
}

// Step advances a canary rollout at now: it applies the user's command,
// judges the canary's metrics of the current step against the stable
// revision's, and moves to the next step, promotes or rolls back. It is
// pure: the caller stores the returned Status, sets the traffic weights,
// and resets the metrics when StepStarted changes. spec should have passed
// Validate.
//
// A step is judged only once the canary has Analysis.MinRequests requests
// in it; a breach then rolls the rollout back at once, even while paused.
// A step ends when it has passed and lasted its Pause; after the last step
// the canary is promoted. Commands to a finished rollout return
// ErrFinished; a spec without steps returns ErrInvalidSpec.
func Step(now time.Time, spec Canary, st CanaryStatus, in CanaryInput) (CanaryDecision, error) {
	n := len(spec.Steps)
	if n == 0 {
		return CanaryDecision{}, fmt.Errorf("%w: steps is empty", ErrInvalidSpec)
	}
	if st.Step >= n { // the spec lost steps since the status was stored
		st.Step = n - 1
	}
	at := func() string { return fmt.Sprintf("step %d/%d", st.Step+1, n) }
	weight := func() int { return spec.Steps[st.Step].Weight }
	switch st.Phase {
	case "":
		st = CanaryStatus{Phase: Progressing, StepStarted: now, Reason: "started"}
		if in.Command == NoCommand {
			return CanaryDecision{Status: st, Weight: weight(), Reason: fmt.Sprintf("started: %s at %d%%", at(), weight())}, nil
		}
		in.Canary, in.Stable = Metrics{}, Metrics{} // none yet in this step
	case Promoted:
		if in.Command != NoCommand {
			return CanaryDecision{}, fmt.Errorf("%s: %w (%s)", in.Command, ErrFinished, st.Phase)
		}
		return CanaryDecision{Status: st, Weight: 100, Reason: "promoted"}, nil
	case RolledBack:
		if in.Command != NoCommand {
			return CanaryDecision{}, fmt.Errorf("%s: %w (%s)", in.Command, ErrFinished, st.Phase)
		}
		return CanaryDecision{Status: st, Weight: 0, Reason: "rolled back"}, nil
	}
	end := func(p Phase, w int, reason string) (CanaryDecision, error) {
		st.Phase, st.Reason = p, reason
		return CanaryDecision{Status: st, Weight: w, Reason: reason}, nil
	}

	switch in.Command {
	case Undo:
		return end(RolledBack, 0, "rolled back by user at "+at())
	case Promote:
		return end(Promoted, 100, "promoted by user at "+at())
	case Pause:
		if st.Phase != Paused {
			st.Phase, st.Reason = Paused, "paused by user at "+at()
		}
	case Resume:
		if st.Phase == Paused {
			st.Phase, st.Reason, st.StepStarted = Progressing, "resumed by user", now
			in.Canary, in.Stable = Metrics{}, Metrics{}
			return CanaryDecision{Status: st, Weight: weight(), Reason: "resumed by user: " + at() + " starts again"}, nil
		}
	}

	a := spec.Analysis
	minReq := a.MinRequests
	if minReq == 0 {
		minReq = DefaultMinRequests
	}
	relative := a.MaxErrorRateIncrease > 0 || a.MaxLatencyRatio > 0
	if in.Canary.Requests < minReq || relative && in.Stable.Requests < minReq {
		var short []string
		if in.Canary.Requests < minReq {
			short = append(short, fmt.Sprintf("%d of %d canary requests", in.Canary.Requests, minReq))
		}
		if relative && in.Stable.Requests < minReq {
			short = append(short, fmt.Sprintf("%d of %d stable requests", in.Stable.Requests, minReq))
		}
		reason := fmt.Sprintf("%s at %d%%: waiting for traffic: %s", at(), weight(), strings.Join(short, ", "))
		if st.Phase == Paused {
			reason = st.Reason + "; " + reason
		}
		return CanaryDecision{Status: st, Weight: weight(), Reason: reason}, nil
	}
	if breach := judge(a, in.Canary, in.Stable); breach != "" {
		return end(RolledBack, 0, breach+" at "+at())
	}
	health := fmt.Sprintf("canary error rate %s, p99 %v; stable %s, p99 %v; over %d requests",
		pct(in.Canary.errorRate()), in.Canary.P99, pct(in.Stable.errorRate()), in.Stable.P99, in.Canary.Requests)
	if st.Phase == Paused {
		return CanaryDecision{Status: st, Weight: weight(), Reason: st.Reason + "; " + health}, nil
	}
	if left := spec.Steps[st.Step].Pause - now.Sub(st.StepStarted); left > 0 {
		return CanaryDecision{Status: st, Weight: weight(), Reason: fmt.Sprintf("%s at %d%%: healthy (%s); %v left", at(), weight(), health, left)}, nil
	}
	if st.Step+1 == n {
		return end(Promoted, 100, fmt.Sprintf("%s passed (%s): promoted", at(), health))
	}
	passed := at()
	st.Step++
	st.StepStarted = now
	st.Reason = passed + " passed"
	return CanaryDecision{Status: st, Weight: weight(), Reason: fmt.Sprintf("%s passed (%s); %s at %d%%", passed, health, at(), weight())}, nil
}

// judge returns the first threshold the canary breaches, in words, or "".
func judge(a Analysis, canary, stable Metrics) string {
	cr, sr := canary.errorRate(), stable.errorRate()
	var b []string
	if a.MaxErrorRate > 0 && cr > a.MaxErrorRate {
		b = append(b, fmt.Sprintf("canary error rate %s > max %s", pct(cr), pct(a.MaxErrorRate)))
	}
	if a.MaxErrorRateIncrease > 0 && cr > sr+a.MaxErrorRateIncrease {
		b = append(b, fmt.Sprintf("canary error rate %s > stable %s + %s", pct(cr), pct(sr), pct(a.MaxErrorRateIncrease)))
	}
	slack := a.LatencySlack
	if slack == 0 {
		slack = DefaultLatencySlack
	}
	if a.MaxLatencyRatio > 0 && stable.P99 > 0 && float64(canary.P99) > a.MaxLatencyRatio*float64(stable.P99) && canary.P99-stable.P99 > max(slack, 0) {
		b = append(b, fmt.Sprintf("canary p99 %v > %g x stable p99 %v", canary.P99, a.MaxLatencyRatio, stable.P99))
	}
	if len(b) == 0 {
		return ""
	}
	return fmt.Sprintf("%s over %d requests", strings.Join(b, ", "), canary.Requests)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }
