package gateway

import (
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds one gateway's collectors in a registry of its own.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	retries    *prometheus.CounterVec
	hedges     *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	ejections  *prometheus.CounterVec
	mirror     *prometheus.CounterVec
	mirrorDiff *prometheus.HistogramVec
}

func newMetrics(g *Gateway) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_requests_total",
			Help: "Requests proxied, by model, revision and the replica's status code.",
		}, []string{"model", "revision", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_gateway_request_duration_seconds",
			Help:    "Time from a request's arrival to its answer's headers and body, queueing and retries included.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"model", "revision"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_retries_total",
			Help: "Retries sent, and retries refused because the retry budget was spent.",
		}, []string{"model", "result"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_hedges_total",
			Help: "Hedged copies sent of requests slower than the model's hedging delay.",
		}, []string{"model"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_rejected_total",
			Help: "Requests refused by the gateway, by reason: queue_full, queue_timeout, activator, unauthenticated, forbidden, rate_limited.",
		}, []string{"model", "reason"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_ejections_total",
			Help: "Replicas ejected by outlier detection, by cause: failures or latency.",
		}, []string{"model", "revision", "cause"}),
		mirror: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_gateway_mirror_total",
			Help: "Mirrored requests by result: match, status_mismatch, output_mismatch, error, dropped.",
		}, []string{"model", "revision", "result"}),
		mirrorDiff: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_gateway_mirror_output_difference",
			Help:    "Largest absolute difference between a numeric output of the primary and of the mirror.",
			Buckets: []float64{0, 1e-6, 1e-4, 1e-2, 0.1, 1, 10},
		}, []string{"model", "revision"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.retries, m.hedges, m.rejected, m.ejections, m.mirror, m.mirrorDiff,
		loadCollector{g}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

var (
	descModelInflight = prometheus.NewDesc("shoal_gateway_model_inflight_requests",
		"Requests of a model in the gateway (queued, waiting in the activator or at a replica): the autoscaler's concurrency signal.", []string{"model"}, nil)
	descModelRequests = prometheus.NewDesc("shoal_gateway_model_requests_total",
		"Requests of a model received, rejected ones included: the autoscaler's rate signal.", []string{"model"}, nil)
	descActivator = prometheus.NewDesc("shoal_gateway_activator_waiting_requests",
		"Requests held while the model has no ready replica.", []string{"model"}, nil)
	descReplicaInflight = prometheus.NewDesc("shoal_gateway_replica_inflight_requests",
		"Requests in flight to one replica.", []string{"model", "revision", "replica"}, nil)
	descReplicaAvailable = prometheus.NewDesc("shoal_gateway_replica_available",
		"1 when the replica is ready and not ejected.", []string{"model", "revision", "replica"}, nil)
)

// loadCollector reports the live load of the routing table at scrape
// time.
type loadCollector struct{ g *Gateway }

func (c loadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descModelInflight, descModelRequests, descActivator, descReplicaInflight, descReplicaAvailable} {
		ch <- d
	}
}

func (c loadCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.g.Stats() {
		ch <- prometheus.MustNewConstMetric(descModelInflight, prometheus.GaugeValue, float64(s.InFlight), s.Model)
		ch <- prometheus.MustNewConstMetric(descModelRequests, prometheus.CounterValue, float64(s.Requests), s.Model)
		ch <- prometheus.MustNewConstMetric(descActivator, prometheus.GaugeValue, float64(s.Waiting), s.Model)
		for _, r := range s.Replicas {
			avail := 0.0
			if r.Available {
				avail = 1
			}
			ch <- prometheus.MustNewConstMetric(descReplicaInflight, prometheus.GaugeValue, float64(r.InFlight), s.Model, r.Revision, r.Addr)
			ch <- prometheus.MustNewConstMetric(descReplicaAvailable, prometheus.GaugeValue, avail, s.Model, r.Revision, r.Addr)
		}
	}
}

// ModelStats is the load of one model at one moment: the signal the
// autoscaler reads (a rate is the difference of two Requests samples).
type ModelStats struct {
	Model string
	// InFlight counts the model's requests inside the gateway now.
	InFlight int64
	// Requests counts the model's requests since the gateway started.
	Requests uint64
	// Waiting counts the requests held by the activator now.
	Waiting  int
	Replicas []ReplicaStats
}

// ReplicaStats is the load of one replica.
type ReplicaStats struct {
	Revision  string
	Addr      string
	InFlight  int64
	Available bool // ready and not ejected
	// Latency is a moving average of its recent answers (0: none yet).
	Latency time.Duration
}

// Stats returns the load of every routed model, sorted by name.
func (g *Gateway) Stats() []ModelStats {
	rt := g.routes.Load()
	out := make([]ModelStats, 0, len(rt.models))
	for _, m := range rt.models {
		s := ModelStats{Model: m.name, InFlight: m.ctl.inflight.Load(), Requests: m.ctl.requests.Load(), Waiting: m.ctl.act.waiting()}
		for _, rev := range m.revs {
			avail := *rev.avail.Load()
			for _, r := range rev.replicas {
				s.Replicas = append(s.Replicas, ReplicaStats{
					Revision: rev.name, Addr: r.http, InFlight: r.b.InFlight(),
					Available: slices.Contains(avail, r.b), Latency: time.Duration(r.ewma.Load()),
				})
			}
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ModelStats) int {
		if a.Model < b.Model {
			return -1
		}
		if a.Model > b.Model {
			return 1
		}
		return 0
	})
	return out
}
