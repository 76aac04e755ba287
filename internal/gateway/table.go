package gateway

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Table is the routing table: every model the gateway routes, its
// revisions, their weights and the addresses of their replicas. A Table
// is a value: sources build a new one for each change and never modify
// one they have handed over.
type Table struct {
	// Models maps a model name to its routes.
	Models map[string]Model `json:"models"`
}

// Model is the traffic policy of one model and its revisions.
type Model struct {
	// Revisions are the deployments of the model that take traffic.
	// An empty list (or revisions without replicas) means the model is
	// scaled to zero: requests wait in the activator.
	Revisions []Revision `json:"revisions"`
	// Policy balances requests over the replicas of a revision:
	// "p2c" (the default: least in flight of two random replicas),
	// "least_request" or "round_robin".
	Policy string `json:"policy,omitempty"`
	// Timeout bounds one request end to end, retries included. Zero
	// means Config.Timeout.
	Timeout Duration `json:"timeout,omitempty"`
	// MaxConcurrency is the most requests in flight to one replica. Zero
	// means Config.MaxConcurrency.
	MaxConcurrency int `json:"max_concurrency,omitempty"`
	// StickyHeader names a request header (gRPC metadata key) whose value
	// pins a client to one revision and replica while they stay. Empty
	// means no sticky routing.
	StickyHeader string `json:"sticky_header,omitempty"`
	// Hedge sends a second copy of a slow REST request to another replica
	// and answers with whichever answers first. Nil means no hedging.
	Hedge *Hedge `json:"hedge,omitempty"`
	// Mirror copies a share of the traffic to a revision whose answers are
	// compared with the primary's and discarded. Nil means no mirroring.
	Mirror *Mirror `json:"mirror,omitempty"`
}

// Revision is one revision of a model.
type Revision struct {
	// Name identifies the revision; clients pin it with the
	// x-shoal-revision header. Required, unique within the model.
	Name string `json:"name"`
	// Weight is the revision's share of the traffic relative to the
	// others'. Zero means the revision only takes pinned and mirrored
	// traffic.
	Weight int `json:"weight,omitempty"`
	// Replicas are the replicas serving the revision.
	Replicas []Replica `json:"replicas,omitempty"`
}

// Replica is the address of one `shoal serve` replica. These addresses
// are the only places the gateway ever sends a request.
type Replica struct {
	// HTTP is the host:port of the replica's REST listener. Required.
	HTTP string `json:"http"`
	// GRPC is the host:port of its gRPC listener. Empty means gRPC
	// requests never go to this replica.
	GRPC string `json:"grpc,omitempty"`
}

// Hedge is a hedging policy. Hedged copies spend the retry budget, so
// they stay a bounded share of the traffic.
type Hedge struct {
	// After is a fixed delay after which to hedge. Zero means the
	// Percentile of the revision's recent latencies.
	After Duration `json:"after,omitempty"`
	// Percentile (50 to 99.9) of the revision's recent latencies after
	// which to hedge, when After is zero. Zero means 95. No request is
	// hedged until the revision has answered 32 requests.
	Percentile float64 `json:"percentile,omitempty"`
}

// Mirror is a shadow-traffic policy.
type Mirror struct {
	// Revision receives the copies. Required; it needs no weight.
	Revision string `json:"revision"`
	// Percent of the requests is copied, 0-100.
	Percent float64 `json:"percent"`
}

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) < 2 || b[0] != '"' {
		return fmt.Errorf("duration %s: want a string such as \"2s\"", b)
	}
	v, err := time.ParseDuration(string(b[1 : len(b)-1]))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// ErrBadTable is returned (wrapped) by ParseTable and Validate for a
// routing table that cannot be used.
var ErrBadTable = errors.New("gateway: bad routing table")

// ParseTable reads a routing table from YAML (or JSON) and validates it.
func ParseTable(b []byte) (*Table, error) {
	var t Table
	if err := yaml.UnmarshalStrict(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTable, err)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// Validate reports the first problem of t, wrapping ErrBadTable.
func (t *Table) Validate() error {
	names := make([]string, 0, len(t.Models))
	for n := range t.Models {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		m := t.Models[name]
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%w: model %q: %s", ErrBadTable, name, fmt.Sprintf(format, args...))
		}
		if name == "" || strings.ContainsAny(name, "/?#%: \t") || strings.Contains(name, "..") {
			return bad("model names must be non-empty, without / ? # %% : .. or spaces")
		}
		switch m.Policy {
		case "", "p2c", "least_request", "round_robin":
		default:
			return bad("policy %q: want p2c, least_request or round_robin", m.Policy)
		}
		if m.Timeout < 0 || m.MaxConcurrency < 0 {
			return bad("timeout and max_concurrency must not be negative")
		}
		seen := map[string]bool{}
		for _, r := range m.Revisions {
			if r.Name == "" || seen[r.Name] {
				return bad("revision name %q empty or repeated", r.Name)
			}
			seen[r.Name] = true
			if r.Weight < 0 {
				return bad("revision %q: negative weight", r.Name)
			}
			for _, rep := range r.Replicas {
				if err := checkAddr(rep.HTTP); err != nil {
					return bad("revision %q: http address: %v", r.Name, err)
				}
				if rep.GRPC != "" {
					if err := checkAddr(rep.GRPC); err != nil {
						return bad("revision %q: grpc address: %v", r.Name, err)
					}
				}
			}
		}
		if h := m.Hedge; h != nil && (h.After < 0 || h.Percentile < 0 || h.Percentile > 99.9 || (h.Percentile > 0 && h.Percentile < 50)) {
			return bad("hedge: after must not be negative, percentile must be 50-99.9")
		}
		if mr := m.Mirror; mr != nil {
			if !seen[mr.Revision] {
				return bad("mirror revision %q is not a revision of the model", mr.Revision)
			}
			if mr.Percent < 0 || mr.Percent > 100 {
				return bad("mirror percent %v: want 0-100", mr.Percent)
			}
		}
	}
	return nil
}

// checkAddr accepts host:port with a non-empty host and a numeric port.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q: empty host", a)
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return fmt.Errorf("%q: port is not a number", a)
		}
	}
	return nil
}
