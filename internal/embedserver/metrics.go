package embedserver

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/limiter"
)

// Metrics are the server's Prometheus metrics (names in internal/contract), on a
// private registry so that several servers can live in one process (tests).
// Create them first and hand them to the provider (they are a
// provider.Observer) and to the server (Config.Metrics); one server uses one
// Metrics.
type Metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	duration         prometheus.Histogram
	shed             *prometheus.CounterVec
	upstreamRequests *prometheus.CounterVec
	upstreamDuration prometheus.Histogram
	upstreamRetries  prometheus.Counter
	batchSize        prometheus.Histogram
	heldBack         prometheus.Counter
	throttled        prometheus.Counter
	rateLimited      prometheus.Counter
	pauses           prometheus.Counter

	// Looked up once: under a flood every lookup of a labelled child costs.
	byCode        map[int]prometheus.Counter
	shedQueueFull prometheus.Counter

	// The server's limits, read by the gauges; set by New.
	lim     atomic.Pointer[limiter.Limiter]
	pending atomic.Pointer[limiter.Bytes]
	budget  atomic.Pointer[budget.Limiter] // set by WatchBudget
}

// HeldBack counts calls that waited for the budget (provider.BudgetObserver).
func (m *Metrics) HeldBack(wait time.Duration) {
	m.heldBack.Inc()
	m.throttled.Add(wait.Seconds())
}

// Paused counts a pod-wide pause the upstream asked for (provider.BudgetObserver).
func (m *Metrics) Paused(d time.Duration) {
	m.pauses.Inc()
	m.throttled.Add(d.Seconds())
}

// RateLimited counts an upstream 429 that was a rate limit (provider.BudgetObserver).
func (m *Metrics) RateLimited() { m.rateLimited.Inc() }

// WatchBudget makes the share gauges read b.
func (m *Metrics) WatchBudget(b *budget.Limiter) { m.budget.Store(b) }

func (m *Metrics) shareGauge(read func(budget.Share) int) func() float64 {
	return func() float64 {
		if b := m.budget.Load(); b != nil {
			return float64(read(b.Share()))
		}
		return 0
	}
}

// Upstream records one upstream attempt (provider.Observer).
func (m *Metrics) Upstream(code string, d time.Duration) {
	m.upstreamRequests.WithLabelValues(code).Inc()
	m.upstreamDuration.Observe(d.Seconds())
}

// Retry counts one upstream retry (provider.Observer).
func (m *Metrics) Retry() { m.upstreamRetries.Inc() }

// Batch records one model call's size (provider.Observer).
func (m *Metrics) Batch(n int) { m.batchSize.Observe(float64(n)) }

func (m *Metrics) countRequest(code int) {
	if c, ok := m.byCode[code]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

// limiterGauge reads the server's limiter; 0 before a server uses m.
func (m *Metrics) limiterGauge(read func(*limiter.Limiter) int) func() float64 {
	return func() float64 {
		if l := m.lim.Load(); l != nil {
			return float64(read(l))
		}
		return 0
	}
}

// bytesGauge reads the server's byte budget; 0 before a server uses m.
func (m *Metrics) bytesGauge(read func(*limiter.Bytes) int64) func() float64 {
	return func() float64 {
		if b := m.pending.Load(); b != nil {
			return float64(read(b))
		}
		return 0
	}
}

// NewMetrics registers the contract's metric names on a private registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: contract.MetricRequests,
			Help: "Embedding requests answered, by HTTP status code (499: the client left first)."}, []string{"code"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: contract.MetricRequestDuration,
			Help: "Time from arrival to answer of embedding requests, queue wait included.", Buckets: latency}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: contract.MetricShed,
			Help: "Requests refused to protect the server: queue_full (429), memory (429), budget (429), queue_timeout (503), draining (503: still running when the drain timeout passed; during the drain delay new requests are served)."}, []string{"reason"}),
		upstreamRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: contract.MetricUpstreamRequests,
			Help: "Upstream attempts by HTTP status, or \"timeout\"/\"error\" when none came."}, []string{"code"}),
		upstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: contract.MetricUpstreamDuration,
			Help: "Duration of upstream attempts.", Buckets: latency}),
		upstreamRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: contract.MetricUpstreamRetries,
			Help: "Upstream retries scheduled."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: contract.MetricBatchSize,
			Help: "Inputs per model call (per upstream call for openai, per request for builtin).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}}),
	}
	m.heldBack = prometheus.NewCounter(prometheus.CounterOpts{Name: contract.MetricCallsHeldBack,
		Help: "Times upstream calls waited for the budget (declared share or learned limit)."})
	m.throttled = prometheus.NewCounter(prometheus.CounterOpts{Name: contract.MetricThrottledSeconds,
		Help: "Seconds upstream calls were held back by the budget or paused by the upstream."})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: contract.MetricUpstreamRateLimited,
		Help: "Upstream 429s that were rate limits (retried after the pod-wide pause), apart from final errors such as insufficient_quota."})
	m.pauses = prometheus.NewCounter(prometheus.CounterOpts{Name: contract.MetricUpstreamPauses,
		Help: "Pod-wide pauses the upstream asked for (429, or nothing remaining in x-ratelimit-*)."})
	reg.MustRegister(m.heldBack, m.throttled, m.rateLimited, m.pauses,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricBudgetShare, ConstLabels: prometheus.Labels{"kind": "requests"},
			Help: "This pod's share of the upstream budget per minute, declared or learned; 0: unknown."}, m.shareGauge(func(s budget.Share) int { return s.RequestsPerMinute })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricBudgetShare, ConstLabels: prometheus.Labels{"kind": "tokens"},
			Help: "This pod's share of the upstream budget per minute, declared or learned; 0: unknown."}, m.shareGauge(func(s budget.Share) int { return s.TokensPerMinute })))
	reg.MustRegister(m.requests, m.duration, m.shed, m.upstreamRequests, m.upstreamDuration, m.upstreamRetries, m.batchSize,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricInFlight, Help: "Requests holding a slot."},
			m.limiterGauge((*limiter.Limiter).InFlight)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricQueueDepth, Help: "Requests waiting for a slot."},
			m.limiterGauge((*limiter.Limiter).QueueDepth)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricMaxInFlight, Help: "Configured --max-in-flight."},
			m.limiterGauge((*limiter.Limiter).MaxInFlight)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricMaxQueue, Help: "Configured --max-queue."},
			m.limiterGauge((*limiter.Limiter).MaxQueue)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricPendingBytes, Help: "Body bytes held by requests being read or not yet answered."},
			m.bytesGauge((*limiter.Bytes).Used)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: contract.MetricMaxPendingBytes, Help: "Configured --max-pending-bytes."},
			m.bytesGauge((*limiter.Bytes).Max)),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Series exist from the start at 0, so rate() over a fresh pod is 0, not absent.
	m.byCode = map[int]prometheus.Counter{}
	for _, c := range []int{200, 400, 413, 429, 500, 502, 503, 504} {
		m.byCode[c] = m.requests.WithLabelValues(strconv.Itoa(c))
	}
	m.shedQueueFull = m.shed.WithLabelValues(contract.ShedQueueFull)
	for _, r := range contract.ShedReasons {
		m.shed.WithLabelValues(r)
	}
	return m
}
