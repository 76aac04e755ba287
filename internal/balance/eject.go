package balance

import (
	"errors"
	"slices"
	"time"
)

// EjectConfig configures outlier ejection. The zero value takes the
// documented defaults.
type EjectConfig struct {
	// ConsecutiveFailures ejects a replica after this many failures in a
	// row. Zero means 5; negative disables failure ejection.
	ConsecutiveFailures int
	// BaseEjection is how long the first ejection lasts; each further
	// ejection of the same replica doubles it, up to MaxEjection. Zero
	// means 5s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection. Zero means 2m.
	MaxEjection time.Duration
	// MaxEjectedPercent is the largest share of replicas ejected at once;
	// at least one replica always stays. Zero means 50.
	MaxEjectedPercent int
	// LatencyFactor ejects a replica whose latency is more than this
	// factor times the median of the group's replicas (see Latency). Zero
	// means 5; negative disables latency ejection.
	LatencyFactor float64
	// MinLatency is the latency under which no replica counts as an
	// outlier, however slow beside the others. Zero means 50ms.
	MinLatency time.Duration
}

// Validate fills in defaults and reports nonsense values.
func (c *EjectConfig) Validate() error {
	if c.BaseEjection < 0 || c.MaxEjection < 0 || c.MinLatency < 0 || c.MaxEjectedPercent < 0 || c.MaxEjectedPercent > 100 {
		return errors.New("balance: EjectConfig durations must not be negative and MaxEjectedPercent must be 0-100")
	}
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = 5
	}
	if c.BaseEjection == 0 {
		c.BaseEjection = 5 * time.Second
	}
	if c.MaxEjection == 0 {
		c.MaxEjection = 2 * time.Minute
	}
	if c.MaxEjectedPercent == 0 {
		c.MaxEjectedPercent = 50
	}
	if c.LatencyFactor == 0 {
		c.LatencyFactor = 5
	}
	if c.MinLatency == 0 {
		c.MinLatency = 50 * time.Millisecond
	}
	return nil
}

// Outliers decides which replicas of one group (the replicas of a model
// revision) are ejected. It is a pure state machine: callers pass the
// time and the outcomes they observe. It is not safe for concurrent use.
type Outliers struct {
	cfg   EjectConfig
	state map[string]*outlier
	order []string
}

type outlier struct {
	failures  int
	ejections int
	until     time.Time // ejected while now < until
}

// NewOutliers returns the decider for the replicas addrs; cfg must have
// been validated.
func NewOutliers(cfg EjectConfig, addrs []string) *Outliers {
	o := &Outliers{cfg: cfg, state: map[string]*outlier{}, order: slices.Clone(addrs)}
	for _, a := range addrs {
		o.state[a] = &outlier{}
	}
	return o
}

// Result records the outcome of one request to addr at now and reports
// whether it ejected addr.
func (o *Outliers) Result(now time.Time, addr string, ok bool) bool {
	s := o.state[addr]
	if s == nil {
		return false
	}
	if ok {
		s.failures = 0
		return false
	}
	s.failures++
	if o.cfg.ConsecutiveFailures < 0 || s.failures < o.cfg.ConsecutiveFailures {
		return false
	}
	return o.eject(now, s)
}

// Latency ejects the replicas whose latency (a recent average the caller
// keeps) exceeds both MinLatency and LatencyFactor times the median of
// the group, and returns their addresses. Replicas missing from lat are
// not judged.
func (o *Outliers) Latency(now time.Time, lat map[string]time.Duration) []string {
	if o.cfg.LatencyFactor < 0 || len(lat) < 3 {
		return nil
	}
	vals := make([]time.Duration, 0, len(lat))
	for _, v := range lat {
		vals = append(vals, v)
	}
	slices.Sort(vals)
	median := vals[len(vals)/2]
	limit := max(o.cfg.MinLatency, time.Duration(float64(median)*o.cfg.LatencyFactor))
	var out []string
	for _, a := range o.order {
		if v, ok := lat[a]; ok && v > limit && !o.Ejected(now, a) && o.eject(now, o.state[a]) {
			out = append(out, a)
		}
	}
	return out
}

// eject ejects s unless that would pass MaxEjectedPercent.
func (o *Outliers) eject(now time.Time, s *outlier) bool {
	n := 0
	for _, t := range o.state {
		if now.Before(t.until) {
			n++
		}
	}
	allowed := min(len(o.state)*o.cfg.MaxEjectedPercent/100, len(o.state)-1)
	if n+1 > allowed {
		return false
	}
	d := o.cfg.BaseEjection << min(s.ejections, 20)
	if d <= 0 || d > o.cfg.MaxEjection {
		d = o.cfg.MaxEjection
	}
	s.ejections++
	s.failures = 0
	s.until = now.Add(d)
	return true
}

// Ejected reports whether addr is ejected at now.
func (o *Outliers) Ejected(now time.Time, addr string) bool {
	s := o.state[addr]
	return s != nil && now.Before(s.until)
}

// Until returns when addr's ejection ends (zero if it never was).
func (o *Outliers) Until(addr string) time.Time {
	if s := o.state[addr]; s != nil {
		return s.until
	}
	return time.Time{}
}
