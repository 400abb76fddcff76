package embedserver

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ragops/rag-operator/internal/limiter"
)

// Shed reasons, the values of embedserver_shed_total{reason}.
const (
	ShedQueueFull    = "queue_full"
	ShedQueueTimeout = "queue_timeout"
	ShedDraining     = "draining"
)

type metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	duration         prometheus.Histogram
	shed             *prometheus.CounterVec
	upstreamRequests *prometheus.CounterVec
	upstreamDuration prometheus.Histogram
	upstreamRetries  prometheus.Counter
	batchSize        prometheus.Histogram

	// Looked up once: under a flood every lookup of a labelled child costs.
	byCode        map[int]prometheus.Counter
	shedQueueFull prometheus.Counter
}

func (m *metrics) countRequest(code int) {
	if c, ok := m.byCode[code]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// newMetrics registers the contract's metric names on a private registry, so
// several servers can live in one process (tests).
func newMetrics(lim *limiter.Limiter) *metrics {
	reg := prometheus.NewRegistry()
	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embedserver_requests_total",
			Help: "Embedding requests answered, by HTTP status code (499: the client left first)."}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "embedserver_request_duration_seconds",
			Help: "Time from arrival to answer of embedding requests, queue wait included.", Buckets: latency}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embedserver_shed_total",
			Help: "Requests refused to protect the server: queue_full (429), queue_timeout (503), draining (503)."}, []string{"reason"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "embedserver_upstream_requests_total",
			Help: "Upstream attempts by HTTP status, or \"timeout\"/\"error\" when none came."}, []string{"code"}),
		upstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "embedserver_upstream_duration_seconds",
			Help: "Duration of upstream attempts.", Buckets: latency}),
		upstreamRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "embedserver_upstream_retries_total",
			Help: "Upstream retries scheduled."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "embedserver_batch_size",
			Help: "Inputs per model call (per upstream call for openai, per request for builtin).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}}),
	}
	reg.MustRegister(m.requests, m.duration, m.shed, m.upstreamRequests, m.upstreamDuration, m.upstreamRetries, m.batchSize,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedserver_in_flight", Help: "Requests holding a slot."},
			func() float64 { return float64(lim.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedserver_queue_depth", Help: "Requests waiting for a slot."},
			func() float64 { return float64(lim.QueueDepth()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedserver_max_in_flight", Help: "Configured --max-in-flight."},
			func() float64 { return float64(lim.MaxInFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "embedserver_max_queue", Help: "Configured --max-queue."},
			func() float64 { return float64(lim.MaxQueue()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Series exist from the start at 0, so rate() over a fresh pod is 0, not absent.
	m.byCode = map[int]prometheus.Counter{}
	for _, c := range []int{200, 400, 413, 429, 500, 502, 503, 504} {
		m.byCode[c] = m.requests.WithLabelValues(strconv.Itoa(c))
	}
	m.shedQueueFull = m.shed.WithLabelValues(ShedQueueFull)
	for _, r := range []string{ShedQueueFull, ShedQueueTimeout, ShedDraining} {
		m.shed.WithLabelValues(r)
	}
	return m
}
