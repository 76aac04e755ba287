package autoscale

import (
	"errors"
	"fmt"
	"time"
)

// Metric names the load signal a revision is scaled on.
type Metric string

const (
	// Concurrency is the number of requests in flight for the revision
	// (queued in the gateway, held by the activator or at a replica).
	Concurrency Metric = "concurrency"
	// RequestsPerSecond is the rate of requests arriving for the revision.
	RequestsPerSecond Metric = "rps"
)

// Defaults of the zero fields of a Spec.
const (
	DefaultTargetConcurrency = 100.0
	DefaultTargetRPS         = 200.0
	DefaultScaleToZeroGrace  = 30 * time.Second
	DefaultStableWindow      = 60 * time.Second
	DefaultPanicWindow       = 6 * time.Second
	DefaultPanicThreshold    = 2.0
	DefaultMaxScaleUpRate    = 1000.0
	DefaultMaxScaleDownRate  = 2.0
)

// ErrInvalidSpec is wrapped by the errors of Spec.Validate.
var ErrInvalidSpec = errors.New("autoscale: invalid spec")

// Spec is the scaling policy of one revision (the scaling section of a
// ModelDeployment). The zero value is usable: every zero field means the
// documented default, so a Spec is built as defaults, then the fields the
// user set, then Validate.
type Spec struct {
	// MinReplicas is the fewest replicas kept. Zero means one replica,
	// or none after ScaleToZeroGrace without traffic if ScaleToZero is set.
	MinReplicas int
	// MaxReplicas is the most replicas. Zero means no bound.
	MaxReplicas int
	// Metric is the load signal. Zero means Concurrency.
	Metric Metric
	// Target is the load one replica should carry (requests in flight,
	// or requests per second). Zero means DefaultTargetConcurrency or
	// DefaultTargetRPS, by Metric.
	Target float64
	// ScaleToZero lets the revision go to zero replicas when MinReplicas
	// is zero and no request arrived for ScaleToZeroGrace; the gateway's
	// activator then holds the next requests until a replica is ready.
	ScaleToZero bool
	// ScaleToZeroGrace is how long the revision must see no traffic
	// before it goes to zero. Zero means DefaultScaleToZeroGrace.
	ScaleToZeroGrace time.Duration
	// StableWindow is the window the load is averaged over in stable
	// mode, and the least time panic mode lasts. It is rounded down to
	// whole seconds. Zero means DefaultStableWindow.
	StableWindow time.Duration
	// PanicWindow is the short window that detects bursts. Zero means
	// DefaultPanicWindow.
	PanicWindow time.Duration
	// PanicThreshold is the ratio of the panic-window load to the
	// capacity of the ready replicas (Target x ready) at which panic mode
	// starts: 2 means 200%. Zero means DefaultPanicThreshold.
	PanicThreshold float64
	// MaxScaleUpRate bounds one decision to MaxScaleUpRate x ready
	// replicas (at least one ready counted). Zero means
	// DefaultMaxScaleUpRate.
	MaxScaleUpRate float64
	// MaxScaleDownRate bounds one decision to no fewer than ready /
	// MaxScaleDownRate replicas. Zero means DefaultMaxScaleDownRate.
	MaxScaleDownRate float64
}

// WithDefaults returns s with every zero field set to its default.
func (s Spec) WithDefaults() Spec {
	if s.Metric == "" {
		s.Metric = Concurrency
	}
	if s.Target == 0 {
		s.Target = DefaultTargetConcurrency
		if s.Metric == RequestsPerSecond {
			s.Target = DefaultTargetRPS
		}
	}
	if s.ScaleToZeroGrace == 0 {
		s.ScaleToZeroGrace = DefaultScaleToZeroGrace
	}
	if s.StableWindow == 0 {
		s.StableWindow = DefaultStableWindow
	}
	if s.PanicWindow == 0 {
		s.PanicWindow = DefaultPanicWindow
	}
	if s.PanicThreshold == 0 {
		s.PanicThreshold = DefaultPanicThreshold
	}
	if s.MaxScaleUpRate == 0 {
		s.MaxScaleUpRate = DefaultMaxScaleUpRate
	}
	if s.MaxScaleDownRate == 0 {
		s.MaxScaleDownRate = DefaultMaxScaleDownRate
	}
	return s
}

// Validate reports the first invalid field of s (zero fields are valid and
// mean their defaults) as an error wrapping ErrInvalidSpec.
func (s Spec) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidSpec, field, fmt.Sprintf(format, args...))
	}
	d := s.WithDefaults()
	switch {
	case s.MinReplicas < 0:
		return bad("minReplicas", "%d is negative", s.MinReplicas)
	case s.MaxReplicas < 0:
		return bad("maxReplicas", "%d is negative", s.MaxReplicas)
	case s.MaxReplicas > 0 && s.MinReplicas > s.MaxReplicas:
		return bad("minReplicas", "%d is above maxReplicas %d", s.MinReplicas, s.MaxReplicas)
	case d.Metric != Concurrency && d.Metric != RequestsPerSecond:
		return bad("metric", "%q is neither %q nor %q", s.Metric, Concurrency, RequestsPerSecond)
	case s.Target < 0:
		return bad("target", "%g is negative", s.Target)
	case s.ScaleToZeroGrace < 0:
		return bad("scaleToZeroGracePeriod", "%v is negative", s.ScaleToZeroGrace)
	case s.StableWindow < 0:
		return bad("stableWindow", "%v is negative", s.StableWindow)
	case d.StableWindow < time.Second:
		return bad("stableWindow", "%v is under 1s", s.StableWindow)
	case s.PanicWindow < 0:
		return bad("panicWindow", "%v is negative", s.PanicWindow)
	case d.PanicWindow < time.Second:
		return bad("panicWindow", "%v is under 1s", s.PanicWindow)
	case d.PanicWindow > d.StableWindow:
		return bad("panicWindow", "%v is longer than stableWindow %v", d.PanicWindow, d.StableWindow)
	case s.PanicThreshold < 0 || s.PanicThreshold != 0 && s.PanicThreshold <= 1:
		return bad("panicThreshold", "%g is not above 1 (100%%)", s.PanicThreshold)
	case s.MaxScaleUpRate < 0 || s.MaxScaleUpRate != 0 && s.MaxScaleUpRate <= 1:
		return bad("maxScaleUpRate", "%g is not above 1", s.MaxScaleUpRate)
	case s.MaxScaleDownRate < 0 || s.MaxScaleDownRate != 0 && s.MaxScaleDownRate <= 1:
		return bad("maxScaleDownRate", "%g is not above 1", s.MaxScaleDownRate)
	}
	return nil
}
