package analysis

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// fakePod is an embedding server's admin port as far as analysis can tell: a
// real Prometheus registry with the embedserver metric names, served on
// loopback. restart() swaps in a fresh registry, as a restarted process would.
type fakePod struct {
	name string
	srv  *httptest.Server

	mu       sync.Mutex
	handler  http.Handler
	requests *prometheus.CounterVec
	shed     *prometheus.CounterVec
	duration prometheus.Histogram
}

func newFakePod(t *testing.T, name string) *fakePod {
	p := &fakePod{name: name}
	p.restart()
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		p.mu.Lock()
		h := p.handler
		p.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakePod) restart() {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricRequests, Help: "Requests by status code."}, []string{"code"})
	shed := prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricShed, Help: "Shed requests by reason."}, []string{"reason"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: MetricDuration, Help: "Request duration.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "embedserver_in_flight", Help: "Requests executing."})
	reg.MustRegister(requests, shed, duration, inFlight)
	inFlight.Set(3)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	p.requests, p.shed, p.duration = requests, shed, duration
}

// serve records n answered requests as the server does: every answer counts in
// requests_total and the duration histogram; shed ones also in shed_total.
func (p *fakePod) serve(n int, code string, latency time.Duration, shedReason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.requests.WithLabelValues(code).Inc()
		p.duration.Observe(latency.Seconds())
		if shedReason != "" {
			p.shed.WithLabelValues(shedReason).Inc()
		}
	}
}

func (p *fakePod) target() Target { return Target{Pod: p.name, URL: p.srv.URL + "/metrics"} }

func targets(pods ...*fakePod) []Target {
	out := make([]Target, 0, len(pods))
	for _, p := range pods {
		out = append(out, p.target())
	}
	return out
}

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func query(canary, stable []Target, at time.Duration) Query {
	s := spec()
	s.Interval.Duration = 30 * time.Second
	if stable == nil {
		s.Baseline = v1alpha1.BaselineNone // these readings are about the canary alone
	}
	return Query{Namespace: "search", Name: "docs", Revision: "rev-b", StableRevision: "rev-a", Canary: canary, Stable: stable, Spec: s, Now: t0.Add(at)}
}

func mustAnalyze(t *testing.T, b *Builtin, q Query) *Result {
	t.Helper()
	res, err := b.Analyze(context.Background(), q)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	return res
}

func TestBuiltinScrapesRealEndpoints(t *testing.T) {
	c1, c2, s1 := newFakePod(t, "docs-canary-1"), newFakePod(t, "docs-canary-2"), newFakePod(t, "docs-stable-1")
	b := &Builtin{Client: &http.Client{Timeout: 2 * time.Second}}
	canary, stable := targets(c1, c2), targets(s1)

	// Traffic before the first scrape is history, not the interval.
	c1.serve(500, "500", 10*time.Millisecond, "")
	if res := mustAnalyze(t, b, query(canary, stable, 0)); res != nil {
		t.Fatalf("first scrape gave a verdict %+v; want a baseline only", res.Status)
	}

	// Interval 1: healthy canary, one 504 in 201.
	c1.serve(100, "200", 40*time.Millisecond, "")
	c2.serve(100, "200", 40*time.Millisecond, "")
	c2.serve(1, "504", 30*time.Second, "")
	s1.serve(300, "200", 20*time.Millisecond, "")
	res := mustAnalyze(t, b, query(canary, stable, 30*time.Second))
	if res == nil {
		t.Fatal("no verdict after an interval")
	}
	st := res.Status
	if st.Verdict != v1alpha1.VerdictPass || st.Requests != 201 || st.ErrorRate != "0.0050" || st.ShedRate != "0.0000" || st.Revision != "rev-b" {
		t.Errorf("interval 1: %+v", st)
	}
	// 199 of 201 within 0.05s: the p99 rank (198.99) falls in (0.025, 0.05].
	if st.LatencyP99 == nil || st.LatencyP99.Duration <= 25*time.Millisecond || st.LatencyP99.Duration > 50*time.Millisecond {
		t.Errorf("interval 1 p99 %v, want within (25ms, 50ms]", st.LatencyP99)
	}
	// The stable baseline was taken in the first scrape too.
	if res.Stable == nil || res.Stable.Requests != 300 {
		t.Errorf("stable interval %+v, want 300 requests", res.Stable)
	}

	// Interval 2: errors (5xx) above 1%.
	c1.serve(95, "200", 40*time.Millisecond, "")
	c1.serve(3, "500", 40*time.Millisecond, "")
	c2.serve(2, "502", 40*time.Millisecond, "")
	res = mustAnalyze(t, b, query(canary, stable, 60*time.Second))
	if res.Status.Verdict != v1alpha1.VerdictFail || res.Status.ErrorRate != "0.0500" || !strings.Contains(res.Status.Message, "error rate 0.0500 > 0.01") {
		t.Errorf("interval 2: %+v", res.Status)
	}

	// Interval 3: load shedding is not an error, but too much of it fails.
	c1.serve(70, "200", 40*time.Millisecond, "")
	c1.serve(20, "429", time.Millisecond, ShedQueueFull)
	c2.serve(10, "503", 5*time.Second, ShedQueueTimeout)
	c2.serve(5, "503", time.Millisecond, ShedDraining)
	res = mustAnalyze(t, b, query(canary, stable, 90*time.Second))
	st = res.Status
	if st.Verdict != v1alpha1.VerdictFail || st.Requests != 105 || st.ErrorRate != "0.0000" || st.ShedRate != "0.2857" {
		t.Errorf("interval 3: %+v", st)
	}

	// Interval 4: slow tail.
	c1.serve(97, "200", 10*time.Millisecond, "")
	c2.serve(3, "200", 4*time.Second, "")
	res = mustAnalyze(t, b, query(canary, stable, 120*time.Second))
	if res.Status.Verdict != v1alpha1.VerdictFail || res.Status.LatencyP99 == nil || res.Status.LatencyP99.Duration <= 2500*time.Millisecond {
		t.Errorf("interval 4: %+v (p99 %v)", res.Status, res.Status.LatencyP99)
	}

	// Interval 5: too little traffic is inconclusive, not failure.
	c1.serve(5, "500", 10*time.Millisecond, "")
	res = mustAnalyze(t, b, query(canary, stable, 150*time.Second))
	if res.Status.Verdict != v1alpha1.VerdictInconclusive || res.Status.Requests != 5 {
		t.Errorf("interval 5: %+v", res.Status)
	}
}

func TestBuiltinPodsComeGoAndRestart(t *testing.T) {
	c1, c2, c3 := newFakePod(t, "c1"), newFakePod(t, "c2"), newFakePod(t, "c3")
	b := &Builtin{}
	mustAnalyze(t, b, query(targets(c1, c2), nil, 0))

	// c2 disappears (scaled down), c3 appears: only c1 is compared, c3 is a baseline.
	c1.serve(50, "200", 10*time.Millisecond, "")
	c2.serve(50, "500", 10*time.Millisecond, "")
	c3.serve(50, "500", 10*time.Millisecond, "")
	res := mustAnalyze(t, b, query(targets(c1, c3), nil, 30*time.Second))
	if res.Canary.Requests != 50 || res.Canary.Errors != 0 || res.Canary.Gone != 1 || res.Canary.New != 1 || res.Status.Verdict != v1alpha1.VerdictPass {
		t.Errorf("come and go: %+v / %+v", res.Canary, res.Status)
	}

	// c1 restarts: its counters start over; what it served since is the delta.
	c1.restart()
	c1.serve(30, "200", 10*time.Millisecond, "")
	c3.serve(10, "200", 10*time.Millisecond, "")
	res = mustAnalyze(t, b, query(targets(c1, c3), nil, 60*time.Second))
	if res.Canary.Requests != 40 || res.Canary.Resets != 1 || res.Canary.Errors != 0 {
		t.Errorf("restart: %+v", res.Canary)
	}
}

func TestBuiltinScrapeFailures(t *testing.T) {
	c1, c2 := newFakePod(t, "c1"), newFakePod(t, "c2")
	b := &Builtin{Timeout: time.Second}
	mustAnalyze(t, b, query(targets(c1, c2), nil, 0))
	c1.serve(40, "200", 10*time.Millisecond, "")
	c2.srv.Close() // the pod died between listing and scraping

	res := mustAnalyze(t, b, query(targets(c1, c2), nil, 30*time.Second))
	if res.Canary.Requests != 40 || res.Canary.Gone != 1 || !strings.Contains(res.Status.Message, "1 of 2 canary pods not scraped") {
		t.Errorf("one pod down: %+v %q", res.Canary, res.Status.Message)
	}

	c1.srv.Close()
	if _, err := b.Analyze(context.Background(), query(targets(c1, c2), nil, 60*time.Second)); err == nil || !strings.Contains(err.Error(), "scrape canary rev-b pods") {
		t.Errorf("all pods down: err %v, want a scrape error", err)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	if _, err := b.Analyze(context.Background(), query([]Target{{Pod: "bad", URL: bad.URL}}, nil, 90*time.Second)); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
		t.Errorf("HTTP error: %v", err)
	}
}

func TestBuiltinTimingAndMemory(t *testing.T) {
	c1 := newFakePod(t, "c1")
	b := &Builtin{}
	q := query(targets(c1), nil, 0)
	if res, err := b.Analyze(context.Background(), Query{Revision: "rev-b"}); res != nil || err != nil {
		t.Errorf("no ready pods: %v %v, want no verdict and no error", res, err)
	}
	mustAnalyze(t, b, q)
	c1.serve(30, "200", 10*time.Millisecond, "")

	// A repeated reconcile a moment later judges no sliver and keeps the baseline.
	if res := mustAnalyze(t, b, query(targets(c1), nil, 5*time.Second)); res != nil {
		t.Errorf("verdict after 5s of a 30s interval: %+v", res.Status)
	}
	res := mustAnalyze(t, b, query(targets(c1), nil, 30*time.Second))
	if res == nil || res.Canary.Requests != 30 {
		t.Fatalf("verdict after an interval: %+v", res)
	}

	// A new canary revision starts from a new baseline.
	c1.serve(30, "200", 10*time.Millisecond, "")
	q = query(targets(c1), nil, 60*time.Second)
	q.Revision = "rev-c"
	if res := mustAnalyze(t, b, q); res != nil {
		t.Errorf("new revision gave a verdict without a baseline: %+v", res.Status)
	}

	// Forget drops the memory: the next scrape is a baseline.
	b.Forget("search", "docs")
	q.Now = q.Now.Add(time.Minute)
	if res := mustAnalyze(t, b, q); res != nil {
		t.Errorf("verdict after Forget: %+v", res.Status)
	}
}

func TestParseSampleFromRegistry(t *testing.T) {
	p := newFakePod(t, "p")
	p.serve(7, "200", 30*time.Millisecond, "")
	p.serve(2, "429", time.Millisecond, ShedQueueFull)
	resp, err := http.Get(p.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s, err := ParseSample(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if s.Codes["200"] != 7 || s.Codes["429"] != 2 || s.Shed[ShedQueueFull] != 2 || s.Latency.Count != 9 {
		t.Errorf("sample %+v", s)
	}
	if n := len(s.Latency.Buckets); n != 12 || s.Latency.Buckets[n-1].Count != 9 {
		t.Errorf("buckets %+v, want 11 bounds and +Inf holding all 9", s.Latency.Buckets)
	}
	if _, err := ParseSample(strings.NewReader("embedserver_requests_total{code=\"200\" 5\n")); err == nil {
		t.Error("malformed exposition parsed without error")
	}
}

// Both tracks are read in one pass, so the canary is judged against stable
// over the same window: a canary answering 400 to every request stable serves
// fails, though no 5xx threshold sees it; a stable track that cannot be read
// leaves no baseline, and the verdict says so.
func TestBuiltinJudgesAgainstStable(t *testing.T) {
	c1, s1, s2 := newFakePod(t, "docs-canary-1"), newFakePod(t, "docs-stable-1"), newFakePod(t, "docs-stable-2")
	b := &Builtin{Timeout: time.Second}
	canary, stable := targets(c1), targets(s1, s2)
	mustAnalyze(t, b, query(canary, stable, 0))

	c1.serve(100, "400", 3*time.Millisecond, "")
	s1.serve(100, "200", 3*time.Millisecond, "")
	s2.serve(99, "200", 3*time.Millisecond, "")
	s2.serve(1, "400", 3*time.Millisecond, "")
	res := mustAnalyze(t, b, query(canary, stable, 30*time.Second))
	st := res.Status
	if st.Verdict != v1alpha1.VerdictFail || st.ErrorRate != "0.0000" || st.FailureRate != "1.0000" ||
		!strings.Contains(st.Message, "failure rate 1.0000 vs stable 0.0050 (+0.9950 > +0.01)") {
		t.Errorf("400s everywhere: %+v", st)
	}
	if st.Baseline == nil || st.Baseline.Requests != 200 || st.Baseline.FailureRate != "0.0050" {
		t.Errorf("baseline %+v, want stable's 200 requests at 0.0050", st.Baseline)
	}

	s1.srv.Close()
	s2.srv.Close()
	c1.serve(100, "200", 3*time.Millisecond, "")
	res = mustAnalyze(t, b, query(canary, stable, 60*time.Second))
	if res.Status.Verdict != v1alpha1.VerdictInconclusive || !strings.Contains(res.Status.Message, "no stable baseline (scrape stable rev-a pods:") {
		t.Errorf("stable unreadable: %+v", res.Status)
	}
}
