package serve

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds one server's Prometheus collectors, in a registry of its
// own so that several servers can live in one process.
type metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	inflight    *prometheus.GaugeVec
	batchSize   *prometheus.HistogramVec
	loadSeconds *prometheus.GaugeVec
	rejections  *prometheus.CounterVec
}

func newMetrics() *metrics {
	buckets := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_inference_requests_total",
			Help: "Inference requests by model, version and outcome (success, client_error, server_error, rejected: 429 from a batching model).",
		}, []string{"model", "version", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_inference_duration_seconds",
			Help:    "Inference latency inside the server by phase: queue (waiting to execute), compute (backend) and total.",
			Buckets: buckets,
		}, []string{"model", "version", "phase"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_inference_inflight_requests",
			Help: "Inference requests being processed.",
		}, []string{"model"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_inference_batch_size",
			Help:    "Rows per backend execution.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024},
		}, []string{"model", "version"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_batch_rejections_total",
			Help: "Requests a batching model rejected at once (429) by reason: queue_full, queue_delay (it would wait longer than max_queue_delay), deadline.",
		}, []string{"model", "version", "reason"}),
		loadSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "shoal_model_load_seconds",
			Help: "Time the last load of a model version took.",
		}, []string{"model", "version"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.inflight, m.batchSize, m.loadSeconds, m.rejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// versionMetrics are the collectors of one model version, resolved once at
// load so that the request path does no label lookups.
type versionMetrics struct {
	success, clientError, serverError prometheus.Counter
	overloaded                        prometheus.Counter // outcome "rejected": 429 from the batcher
	queue, compute, total             prometheus.Observer
	batch                             prometheus.Observer
	inflight                          prometheus.Gauge
	rejected                          *prometheus.CounterVec // by reason
}

func (m *metrics) forVersion(name, version string) *versionMetrics {
	return &versionMetrics{
		success:     m.requests.WithLabelValues(name, version, "success"),
		clientError: m.requests.WithLabelValues(name, version, "client_error"),
		serverError: m.requests.WithLabelValues(name, version, "server_error"),
		overloaded:  m.requests.WithLabelValues(name, version, "rejected"),
		queue:       m.latency.WithLabelValues(name, version, "queue"),
		compute:     m.latency.WithLabelValues(name, version, "compute"),
		total:       m.latency.WithLabelValues(name, version, "total"),
		batch:       m.batchSize.WithLabelValues(name, version),
		inflight:    m.inflight.WithLabelValues(name),
		rejected:    m.rejections.MustCurryWith(prometheus.Labels{"model": name, "version": version}),
	}
}
