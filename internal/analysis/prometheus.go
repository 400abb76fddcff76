package analysis

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Labels names the Prometheus labels that identify a RAGService's pods. The
// defaults match the usual kubernetes_sd_configs pod relabelling
// (labelmap of __meta_kubernetes_pod_label_(.+), namespace from
// __meta_kubernetes_namespace): pod label rag.ragops.io/revision becomes
// rag_ragops_io_revision, app.kubernetes.io/instance becomes
// app_kubernetes_io_instance.
type Labels struct {
	Namespace, Instance, Revision string
}

// DefaultLabels are the label names of the usual pod relabelling.
var DefaultLabels = Labels{Namespace: "namespace", Instance: "app_kubernetes_io_instance", Revision: "rag_ragops_io_revision"}

// Prometheus gives verdicts from an existing Prometheus server, with the same
// maths as Builtin over increase() of the same counters across one interval.
// It keeps no memory: a restarted manager gets a verdict at once.
type Prometheus struct {
	// Address is the server's base URL (spec.rollout.analysis.prometheus.address).
	Address string
	// Client does the HTTP requests; nil means the client library's default.
	Client *http.Client
	// Labels; zero means DefaultLabels.
	Labels Labels
	// Timeout bounds each query; zero means 10s.
	Timeout time.Duration
}

var _ Analyzer = (*Prometheus)(nil)

// Queries returns the three PromQL queries for one track's interval, exported
// so documentation and tests show exactly what runs.
func (p *Prometheus) Queries(namespace, name, revision string, window time.Duration) (requests, shed, latency string) {
	l := p.Labels
	if l == (Labels{}) {
		l = DefaultLabels
	}
	sel := fmt.Sprintf(`%s=%s,%s=%s,%s=%s`, l.Namespace, quote(namespace), l.Instance, quote(name), l.Revision, quote(revision))
	w := model.Duration(window).String()
	requests = fmt.Sprintf(`sum by (code) (increase(%s{%s}[%s]))`, MetricRequests, sel, w)
	shed = fmt.Sprintf(`sum by (reason) (increase(%s{%s}[%s]))`, MetricShed, sel, w)
	latency = fmt.Sprintf(`sum by (le) (increase(%s_bucket{%s}[%s]))`, MetricDuration, sel, w)
	return requests, shed, latency
}

// Analyze queries the canary's (and stable's) last interval.
func (p *Prometheus) Analyze(ctx context.Context, q Query) (*Result, error) {
	client, err := api.NewClient(api.Config{Address: p.Address, Client: p.Client})
	if err != nil {
		return nil, fmt.Errorf("prometheus client for %s: %w", p.Address, err)
	}
	papi := promv1.NewAPI(client)
	canary, err := p.track(ctx, papi, q, q.Revision)
	if err != nil {
		return nil, fmt.Errorf("query canary %s: %w", q.Revision, err)
	}
	t := Tracks{Canary: canary}
	if st, err := p.track(ctx, papi, q, q.StableRevision); err != nil {
		t.StableProblem = fmt.Sprintf("query stable %s: %v", q.StableRevision, err)
	} else {
		t.Stable = &st
	}
	return &Result{Canary: canary, Stable: t.Stable, Status: Status(t, q.Spec, q.Revision, q.Now)}, nil
}

func (p *Prometheus) track(ctx context.Context, papi promv1.API, q Query, revision string) (Interval, error) {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rq, sq, lq := p.Queries(q.Namespace, q.Name, revision, IntervalOf(q.Spec))
	s := Sample{Codes: map[string]float64{}, Shed: map[string]float64{}}
	series := 0
	if err := runQuery(ctx, papi, rq, q.Now, func(m model.Metric, v float64) { s.Codes[string(m["code"])] += v; series++ }); err != nil {
		return Interval{}, err
	}
	// The server exports every common code from its start (at 0), so a track
	// with ready pods always has series: none means Prometheus does not see
	// them (not scraped, relabelled differently), never "no traffic".
	if series == 0 {
		return Interval{}, fmt.Errorf("no %s series for revision %s: is Prometheus scraping these pods with the labels %s?", MetricRequests, revision, p.labelNames())
	}
	if err := runQuery(ctx, papi, sq, q.Now, func(m model.Metric, v float64) { s.Shed[string(m["reason"])] += v }); err != nil {
		return Interval{}, err
	}
	byBound := map[float64]float64{}
	var parseErr error
	if err := runQuery(ctx, papi, lq, q.Now, func(m model.Metric, v float64) {
		ub, err := strconv.ParseFloat(string(m["le"]), 64)
		if err != nil {
			parseErr = fmt.Errorf("bucket le %q: %w", m["le"], err)
			return
		}
		byBound[ub] += v
	}); err != nil {
		return Interval{}, err
	}
	if parseErr != nil {
		return Interval{}, parseErr
	}
	s.Latency.Buckets = bucketsOf(byBound)
	return FromIncrease(s), nil
}

func runQuery(ctx context.Context, papi promv1.API, q string, at time.Time, each func(model.Metric, float64)) error {
	v, _, _, err := papi.Query(ctx, q, at)
	if err != nil {
		return fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return fmt.Errorf("query %s: got %s, want a vector", q, v.Type())
	}
	for _, s := range vec {
		f := float64(s.Value)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		each(s.Metric, f)
	}
	return nil
}

func (p *Prometheus) labelNames() string {
	l := p.Labels
	if l == (Labels{}) {
		l = DefaultLabels
	}
	return strings.Join([]string{l.Namespace, l.Instance, l.Revision}, ", ")
}

// quote renders a PromQL string literal.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
