package control

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-ml/shoal/internal/rollout"
)

// RevisionCounters are one revision's cumulative request counts and
// latency histogram as the gateway reports them.
type RevisionCounters struct {
	Requests, Errors int
	// Buckets are the cumulative counts of the latency histogram by upper
	// bound in seconds, ascending.
	Buckets []Bucket
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	Le    float64
	Count uint64
}

// bucketJSON is a Bucket as JSON has it: the bound as a string, since JSON
// numbers cannot say +Inf.
type bucketJSON struct {
	Le    string `json:"le"`
	Count uint64 `json:"count"`
}

// MarshalJSON writes {"le": "0.005", "count": 3}, "+Inf" for the last bound.
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal(bucketJSON{Le: strconv.FormatFloat(b.Le, 'g', -1, 64), Count: b.Count})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (b *Bucket) UnmarshalJSON(raw []byte) error {
	var j bucketJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	le, err := strconv.ParseFloat(j.Le, 64)
	if err != nil {
		return fmt.Errorf("histogram bucket bound %q: %w", j.Le, err)
	}
	b.Le, b.Count = le, j.Count
	return nil
}

// since returns the metrics between base and c: requests, errors (status
// 5xx) and the p99 latency, interpolated within its bucket.
func (c RevisionCounters) since(base RevisionCounters) rollout.Metrics {
	return c.minus(base).metrics()
}

// minus returns the counts added since prev; all of c when a counter went
// down (the gateway restarted and counts from zero).
func (c RevisionCounters) minus(prev RevisionCounters) RevisionCounters {
	if c.Requests < prev.Requests || c.Errors < prev.Errors {
		return c
	}
	out := RevisionCounters{Requests: c.Requests - prev.Requests, Errors: c.Errors - prev.Errors, Buckets: make([]Bucket, len(c.Buckets))}
	for i, b := range c.Buckets {
		out.Buckets[i] = b
		for _, o := range prev.Buckets {
			if o.Le == b.Le && o.Count <= b.Count {
				out.Buckets[i].Count = b.Count - o.Count
			}
		}
	}
	return out
}

// plus returns the sum of two sets of counts, bucket by bucket (a bucket
// only one of them has is taken as it is).
func (c RevisionCounters) plus(o RevisionCounters) RevisionCounters {
	out := RevisionCounters{Requests: c.Requests + o.Requests, Errors: c.Errors + o.Errors}
	byLe := map[float64]uint64{}
	for _, bs := range [][]Bucket{c.Buckets, o.Buckets} {
		for _, b := range bs {
			byLe[b.Le] += b.Count
		}
	}
	for le, n := range byLe {
		out.Buckets = append(out.Buckets, Bucket{Le: le, Count: n})
	}
	sort.Slice(out.Buckets, func(i, j int) bool { return out.Buckets[i].Le < out.Buckets[j].Le })
	return out
}

// metrics returns the requests, errors and p99 latency of the counts.
func (c RevisionCounters) metrics() rollout.Metrics {
	return rollout.Metrics{Requests: c.Requests, Errors: c.Errors, P99: quantile(0.99, c.Buckets)}
}

// quantile estimates the q-quantile of a cumulative histogram as
// Prometheus's histogram_quantile does: linearly within the bucket.
func quantile(q float64, bs []Bucket) time.Duration {
	if len(bs) == 0 || bs[len(bs)-1].Count == 0 {
		return 0
	}
	total := float64(bs[len(bs)-1].Count)
	rank := q * total
	lo, prev := 0.0, 0.0
	for _, b := range bs {
		if float64(b.Count) >= rank {
			hi := b.Le
			if math.IsInf(hi, 1) {
				hi = lo
			}
			in := float64(b.Count) - prev
			frac := 1.0
			if in > 0 {
				frac = (rank - prev) / in
			}
			return time.Duration((lo + (hi-lo)*frac) * float64(time.Second))
		}
		lo, prev = b.Le, float64(b.Count)
	}
	return time.Duration(lo * float64(time.Second))
}

// ScrapeGateway returns a function that reads the gateway's Prometheus
// metrics at url (its /metrics) and returns the counters of every
// revision, by model and revision name.
func ScrapeGateway(url string) func(ctx context.Context) (map[string]map[string]RevisionCounters, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context) (map[string]map[string]RevisionCounters, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("gateway metrics: %s", resp.Status)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("gateway metrics: %w", err)
		}
		return countersOf(fams), nil
	}
}

func countersOf(fams map[string]*dto.MetricFamily) map[string]map[string]RevisionCounters {
	out := map[string]map[string]RevisionCounters{}
	get := func(m *dto.Metric) (string, string, string, *RevisionCounters) {
		var mod, rev, code string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "model":
				mod = l.GetValue()
			case "revision":
				rev = l.GetValue()
			case "code":
				code = l.GetValue()
			}
		}
		if out[mod] == nil {
			out[mod] = map[string]RevisionCounters{}
		}
		c := out[mod][rev]
		return mod, rev, code, &c
	}
	if f := fams["shoal_gateway_requests_total"]; f != nil {
		for _, m := range f.GetMetric() {
			mod, rev, code, c := get(m)
			n := int(m.GetCounter().GetValue())
			c.Requests += n
			if v, err := strconv.Atoi(code); err == nil && v >= 500 {
				c.Errors += n
			}
			out[mod][rev] = *c
		}
	}
	if f := fams["shoal_gateway_request_duration_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			mod, rev, _, c := get(m)
			h := m.GetHistogram()
			c.Buckets = nil
			for _, b := range h.GetBucket() {
				c.Buckets = append(c.Buckets, Bucket{Le: b.GetUpperBound(), Count: b.GetCumulativeCount()})
			}
			c.Buckets = append(c.Buckets, Bucket{Le: math.Inf(1), Count: h.GetSampleCount()})
			sort.Slice(c.Buckets, func(i, j int) bool { return c.Buckets[i].Le < c.Buckets[j].Le })
			out[mod][rev] = *c
		}
	}
	return out
}
