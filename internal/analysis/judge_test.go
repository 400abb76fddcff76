package analysis

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

func spec() v1alpha1.AnalysisSpec {
	min := int64(20)
	return v1alpha1.AnalysisSpec{
		MinRequests: &min, MaxErrorRate: "0.01", MaxShedRate: "0.10",
		MaxLatencyP99: metav1.Duration{Duration: 2 * time.Second},
	}
}

func TestJudge(t *testing.T) {
	ok := func(req int64) Interval {
		return Interval{Requests: req, HasLatency: true, P99: 300 * time.Millisecond}
	}
	cases := []struct {
		name string
		iv   Interval
		spec func(*v1alpha1.AnalysisSpec)
		want v1alpha1.Verdict
		msg  string
	}{
		{"healthy", ok(200), nil, v1alpha1.VerdictPass, "error rate 0.0000 <= 0.01, shed rate 0.0000 <= 0.1, p99 300ms <= 2s (200 requests)"},
		{"too few requests", ok(19), nil, v1alpha1.VerdictInconclusive, "19 requests < minRequests 20"},
		{"no requests with minRequests 0", ok(0), func(s *v1alpha1.AnalysisSpec) { s.MinRequests = new(int64) }, v1alpha1.VerdictInconclusive, "0 requests < minRequests 0"},
		{"minRequests 0 judges one request", ok(1), func(s *v1alpha1.AnalysisSpec) { s.MinRequests = new(int64) }, v1alpha1.VerdictPass, ""},
		{"no latency histogram", Interval{Requests: 50}, nil, v1alpha1.VerdictInconclusive, ""},
		{"error rate at the limit passes", Interval{Requests: 100, Errors: 1, HasLatency: true}, nil, v1alpha1.VerdictPass, ""},
		{"error rate above", Interval{Requests: 100, Errors: 2, HasLatency: true}, nil, v1alpha1.VerdictFail, "error rate 0.0200 > 0.01 (100 requests)"},
		{"shed rate above", Interval{Requests: 100, Shed: 11, HasLatency: true}, nil, v1alpha1.VerdictFail, "shed rate 0.1100 > 0.1 (100 requests)"},
		{"shed alone within limit is no error", Interval{Requests: 100, Shed: 10, HasLatency: true}, nil, v1alpha1.VerdictPass, ""},
		{"slow", Interval{Requests: 100, HasLatency: true, P99: 2500 * time.Millisecond}, nil, v1alpha1.VerdictFail, "p99 2.5s > 2s (100 requests)"},
		{"every threshold", Interval{Requests: 100, Errors: 50, Shed: 50, HasLatency: true, P99: time.Minute}, nil, v1alpha1.VerdictFail,
			"error rate 0.5000 > 0.01, shed rate 0.5000 > 0.1, p99 1m0s > 2s (100 requests)"},
		{"empty thresholds use defaults", Interval{Requests: 100, Errors: 2, HasLatency: true}, func(s *v1alpha1.AnalysisSpec) {
			*s = v1alpha1.AnalysisSpec{}
		}, v1alpha1.VerdictFail, "error rate 0.0200 > 0.01 (100 requests)"},
		{"zero error budget", Interval{Requests: 1000, Errors: 1, HasLatency: true}, func(s *v1alpha1.AnalysisSpec) { s.MaxErrorRate = "0" }, v1alpha1.VerdictFail, ""},
	}
	for _, c := range cases {
		s := spec()
		if c.spec != nil {
			c.spec(&s)
		}
		v, msg := Judge(c.iv, s)
		if v != c.want || (c.msg != "" && msg != c.msg) {
			t.Errorf("%s: Judge = %s %q, want %s %q", c.name, v, msg, c.want, c.msg)
		}
	}
}

func TestStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	st := Status(Interval{Requests: 3, Errors: 1, Shed: 1, HasLatency: true, P99: 1234567 * time.Microsecond}, spec(), "abc", now)
	if st.ErrorRate != "0.3333" || st.ShedRate != "0.3333" || st.Requests != 3 || st.Revision != "abc" || !st.Time.Time.Equal(now) {
		t.Errorf("status %+v", st)
	}
	if st.LatencyP99 == nil || st.LatencyP99.Duration != 1235*time.Millisecond {
		t.Errorf("p99 %v, want 1.235s", st.LatencyP99)
	}
	if st.Verdict != v1alpha1.VerdictInconclusive {
		t.Errorf("verdict %s, want Inconclusive (3 < 20 requests)", st.Verdict)
	}
	if st := Status(Interval{}, spec(), "abc", now); st.ErrorRate != "0.0000" || st.LatencyP99 != nil {
		t.Errorf("empty interval status %+v", st)
	}
}
