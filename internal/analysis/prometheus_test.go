package analysis

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// fakePrometheus answers /api/v1/query as Prometheus does, from canned vectors
// chosen by the metric and revision in the query; it records every query.
type fakePrometheus struct {
	mu      sync.Mutex
	queries []string
	times   []string
	// answers: key "<metric> <revision>" -> label value -> sample value.
	answers map[string]map[string]string
	fail    bool
}

func (f *fakePrometheus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.times = append(f.times, r.Form.Get("time"))
	fail := f.fail
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if fail {
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"query timed out in expression evaluation"}`)
		return
	}
	metric, label := "", ""
	switch {
	case strings.Contains(q, MetricRequests):
		metric, label = MetricRequests, "code"
	case strings.Contains(q, MetricShed):
		metric, label = MetricShed, "reason"
	case strings.Contains(q, MetricDuration+"_bucket"):
		metric, label = MetricDuration, "le"
	}
	rev := "rev-a"
	if strings.Contains(q, `rag_ragops_io_revision="rev-b"`) {
		rev = "rev-b"
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	result := []sample{}
	for lv, v := range f.answers[metric+" "+rev] {
		result = append(result, sample{Metric: map[string]string{label: lv}, Value: [2]any{1764244800.0, v}})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": "vector", "result": result},
	})
}

func TestPrometheusAnalyzer(t *testing.T) {
	fake := &fakePrometheus{answers: map[string]map[string]string{
		MetricRequests + " rev-b": {"200": "950.4", "500": "5", "503": "30", "429": "14.6"},
		MetricShed + " rev-b":     {ShedQueueFull: "14.6", ShedQueueTimeout: "20", ShedDraining: "5"},
		MetricDuration + " rev-b": {"0.1": "900", "0.5": "990", "1": "1000", "+Inf": "1000"},
		MetricRequests + " rev-a": {"200": "2000"},
	}}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	p := &Prometheus{Address: srv.URL, Client: &http.Client{Timeout: 5 * time.Second}}
	q := query(nil, nil, time.Minute)
	q.Spec.Baseline = v1alpha1.BaselineStable // Prometheus reads both tracks by revision
	res, err := p.Analyze(context.Background(), q)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	// 1000 requests; errors: 5 (500) + 30 (503) - 20 queue-timeout - 5 draining = 10;
	// shed: 14.6 (429) + 20 queue-timeout; p99 at the 0.5s bucket edge.
	st := res.Status
	if st.Verdict != v1alpha1.VerdictPass || st.Requests != 1000 || st.ErrorRate != "0.0100" || st.ShedRate != "0.0350" ||
		st.LatencyP99 == nil || st.LatencyP99.Duration != 500*time.Millisecond || st.Revision != "rev-b" {
		t.Errorf("status %+v (p99 %v)", st, st.LatencyP99)
	}
	if res.Stable == nil || res.Stable.Requests != 2000 {
		t.Errorf("stable %+v, want 2000 requests", res.Stable)
	}

	rq, sq, lq := p.Queries("search", "docs", "rev-b", 30*time.Second)
	wantRq := `sum by (code) (increase(embedserver_requests_total{namespace="search",app_kubernetes_io_instance="docs",rag_ragops_io_revision="rev-b"}[30s]))`
	if rq != wantRq {
		t.Errorf("requests query\n got  %s\n want %s", rq, wantRq)
	}
	fake.mu.Lock()
	got := append([]string(nil), fake.queries...)
	times := append([]string(nil), fake.times...)
	fake.mu.Unlock()
	if len(got) != 6 || got[0] != rq || got[1] != sq || got[2] != lq {
		t.Errorf("queries sent: %q", got)
	}
	for _, ts := range times {
		f, err := strconv.ParseFloat(ts, 64)
		if err != nil || int64(f) != q.Now.Unix() {
			t.Errorf("query time %q, want %d", ts, q.Now.Unix())
		}
	}

	// A failing canary: the same maths as Builtin.
	fake.mu.Lock()
	fake.answers[MetricRequests+" rev-b"] = map[string]string{"200": "90", "504": "10"}
	fake.answers[MetricShed+" rev-b"] = map[string]string{}
	fake.mu.Unlock()
	res, err = p.Analyze(context.Background(), q)
	if err != nil || res.Status.Verdict != v1alpha1.VerdictFail || res.Status.ErrorRate != "0.1000" {
		t.Errorf("failing canary: %v %+v", err, res)
	}

	// No series at all for a canary with ready pods: Prometheus does not see
	// it, which is no verdict (the controller makes it Inconclusive with this
	// error), never "no traffic".
	fake.mu.Lock()
	fake.answers = map[string]map[string]string{}
	fake.mu.Unlock()
	if res, err := p.Analyze(context.Background(), q); err == nil || !strings.Contains(err.Error(), "no embedserver_requests_total series for revision rev-b") {
		t.Errorf("no series: %v %+v", err, res)
	}

	// Series for the canary but none for stable: no baseline, named.
	fake.mu.Lock()
	fake.answers[MetricRequests+" rev-b"] = map[string]string{"200": "100"}
	fake.answers[MetricDuration+" rev-b"] = map[string]string{"0.1": "100", "+Inf": "100"}
	fake.mu.Unlock()
	res, err = p.Analyze(context.Background(), q)
	if err != nil || res.Status.Verdict != v1alpha1.VerdictInconclusive || !strings.Contains(res.Status.Message, "no stable baseline (query stable rev-a: no embedserver_requests_total series") {
		t.Errorf("no stable series: %v %+v", err, res)
	}

	// Prometheus errors are errors, not verdicts.
	fake.mu.Lock()
	fake.fail = true
	fake.mu.Unlock()
	if _, err := p.Analyze(context.Background(), q); err == nil || !strings.Contains(err.Error(), "query canary rev-b") {
		t.Errorf("server error: %v", err)
	}

	// Unreachable server.
	srv.Close()
	if _, err := p.Analyze(context.Background(), q); err == nil {
		t.Error("closed server: no error")
	}
}

func TestPrometheusLabelsAndQuoting(t *testing.T) {
	p := &Prometheus{Labels: Labels{Namespace: "kubernetes_namespace", Instance: "instance_label", Revision: "revision"}}
	rq, _, lq := p.Queries(`ns`, `we"ird\name`, "r1", 90*time.Second)
	if !strings.Contains(rq, `kubernetes_namespace="ns",instance_label="we\"ird\\name",revision="r1"}[1m30s]`) {
		t.Errorf("requests query %s", rq)
	}
	if !strings.HasPrefix(lq, "sum by (le) (increase(embedserver_request_duration_seconds_bucket{") {
		t.Errorf("latency query %s", lq)
	}
}
