package analysis

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

func spec() v1alpha1.AnalysisSpec {
	minRequests := int64(20)
	return v1alpha1.AnalysisSpec{
		MinRequests: &minRequests, MaxErrorRate: "0.01", MaxShedRate: "0.10",
		MaxLatencyP99: metav1.Duration{Duration: 2 * time.Second},
	}
}

// The absolute thresholds, alone (baseline None).
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
		{"error rate above", Interval{Requests: 100, Errors: 2, HasLatency: true}, nil, v1alpha1.VerdictFail,
			"error rate 0.0200 > 0.01; within limits: shed rate 0.0000 <= 0.1, p99 0s <= 2s (100 requests)"},
		{"shed rate above", Interval{Requests: 100, Shed: 11, HasLatency: true}, nil, v1alpha1.VerdictFail,
			"shed rate 0.1100 > 0.1; within limits: error rate 0.0000 <= 0.01, p99 0s <= 2s (100 requests)"},
		{"shed alone within limit is no error", Interval{Requests: 100, Shed: 10, HasLatency: true}, nil, v1alpha1.VerdictPass, ""},
		{"slow", Interval{Requests: 100, HasLatency: true, P99: 2500 * time.Millisecond}, nil, v1alpha1.VerdictFail,
			"p99 2.5s > 2s; within limits: error rate 0.0000 <= 0.01, shed rate 0.0000 <= 0.1 (100 requests)"},
		{"every threshold", Interval{Requests: 100, Errors: 50, Shed: 50, HasLatency: true, P99: time.Minute}, nil, v1alpha1.VerdictFail,
			"error rate 0.5000 > 0.01, shed rate 0.5000 > 0.1, p99 1m0s > 2s (100 requests)"},
		{"empty thresholds use defaults", Interval{Requests: 100, Errors: 2, HasLatency: true}, func(s *v1alpha1.AnalysisSpec) {
			*s = v1alpha1.AnalysisSpec{}
		}, v1alpha1.VerdictFail, "error rate 0.0200 > 0.01; within limits: shed rate 0.0000 <= 0.1, p99 0s <= 2s (100 requests)"},
		{"zero error budget", Interval{Requests: 1000, Errors: 1, HasLatency: true}, func(s *v1alpha1.AnalysisSpec) { s.MaxErrorRate = "0" }, v1alpha1.VerdictFail, ""},
	}
	for _, c := range cases {
		s := spec()
		if c.spec != nil {
			c.spec(&s)
		}
		s.Baseline = v1alpha1.BaselineNone
		v, msg := Judge(Tracks{Canary: c.iv}, s)
		if v != c.want || (c.msg != "" && msg != c.msg) {
			t.Errorf("%s: Judge = %s %q, want %s %q", c.name, v, msg, c.want, c.msg)
		}
	}
}

func TestStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	st := Status(Tracks{Canary: Interval{Requests: 3, Errors: 1, Shed: 1, HasLatency: true, P99: 1234567 * time.Microsecond}}, spec(), "abc", now)
	if st.ErrorRate != "0.3333" || st.ShedRate != "0.3333" || st.Requests != 3 || st.Revision != "abc" || !st.Time.Time.Equal(now) {
		t.Errorf("status %+v", st)
	}
	if st.LatencyP99 == nil || st.LatencyP99.Duration != 1235*time.Millisecond {
		t.Errorf("p99 %v, want 1.235s", st.LatencyP99)
	}
	if st.Verdict != v1alpha1.VerdictInconclusive {
		t.Errorf("verdict %s, want Inconclusive (3 < 20 requests)", st.Verdict)
	}
	if st := Status(Tracks{}, spec(), "abc", now); st.ErrorRate != "0.0000" || st.LatencyP99 != nil {
		t.Errorf("empty interval status %+v", st)
	}
}

// Against the stable track over the same interval.
func TestJudgeAgainstStable(t *testing.T) {
	iv := func(req, failures int64, p99 time.Duration) *Interval {
		return &Interval{Requests: req, Failures: failures, HasLatency: true, P99: p99}
	}
	ms := time.Millisecond
	cases := []struct {
		name           string
		canary, stable *Interval
		problem        string
		spec           func(*v1alpha1.AnalysisSpec)
		want           v1alpha1.Verdict
		msg            []string // substrings of the message
	}{
		{"same as stable", iv(200, 0, 40*ms), iv(400, 0, 38*ms), "", nil, v1alpha1.VerdictPass,
			[]string{"failure rate 0.0000 vs stable 0.0000 (+0.0000 <= +0.01)", "p99 40ms vs stable 38ms (x1.05 <= x2)", "(200 requests, stable 400)"}},
		{"stable's base rate of 4xx, canary the same: pass", iv(1000, 30, 40*ms), iv(1000, 30, 40*ms), "", nil, v1alpha1.VerdictPass,
			[]string{"failure rate 0.0300 vs stable 0.0300 (+0.0000 <= +0.01)"}},
		{"canary a little worse, within the increase", iv(1000, 39, 40*ms), iv(1000, 30, 40*ms), "", nil, v1alpha1.VerdictPass, nil},
		{"canary failing every request (400s the thresholds do not see)", iv(500, 500, 5*ms), iv(500, 1, 5*ms), "", nil, v1alpha1.VerdictFail,
			[]string{"failure rate 1.0000 vs stable 0.0020 (+0.9980 > +0.01)"}},
		{"canary better than stable", iv(200, 0, 40*ms), iv(200, 20, 40*ms), "", nil, v1alpha1.VerdictPass, []string{"(-0.1000 <= +0.01)"}},
		{"at the increase limit passes", iv(100, 2, 40*ms), iv(100, 1, 40*ms), "", nil, v1alpha1.VerdictPass, nil},
		{"just over the increase limit", iv(1000, 21, 40*ms), iv(1000, 10, 40*ms), "", nil, v1alpha1.VerdictFail, []string{"(+0.0110 > +0.01)"}},
		{"slow canary", iv(200, 0, 400*ms), iv(400, 0, 5*ms), "", nil, v1alpha1.VerdictFail,
			[]string{"p99 400ms vs stable 5ms (x16.00 of the 25ms floor > x2)"}},
		{"p99 ratio at the boundary passes", iv(200, 0, 100*ms), iv(200, 0, 50*ms), "", nil, v1alpha1.VerdictPass, []string{"(x2.00 <= x2)"}},
		{"p99 ratio just above", iv(200, 0, 101*ms), iv(200, 0, 50*ms), "", nil, v1alpha1.VerdictFail, []string{"(x2.02 > x2)"}},
		{"tiny latencies do not flap: the floor", iv(200, 0, 9*ms), iv(200, 0, 2*ms), "", nil, v1alpha1.VerdictPass, []string{"p99 9ms vs stable 2ms (x0.36 of the 25ms floor <= x2)"}},
		{"the issue's example: equal p99s below the floor", iv(200, 0, 10*ms), iv(200, 0, 10*ms), "", nil, v1alpha1.VerdictPass,
			[]string{"p99 10ms vs stable 10ms (x0.40 of the 25ms floor <= x2)"}},
		{"stable exactly at the floor divides by itself", iv(200, 0, 30*ms), iv(200, 0, 25*ms), "", nil, v1alpha1.VerdictPass, []string{"p99 30ms vs stable 25ms (x1.20 <= x2)"}},
		{"zero stable latency", iv(200, 0, 60*ms), iv(200, 0, 0), "", nil, v1alpha1.VerdictFail, []string{"vs stable 0s (x2.40 of the 25ms floor > x2)"}},
		{"stable below minRequests: no ratio, failure rate still compared", iv(200, 0, 900*ms), iv(5, 0, 5*ms), "", nil, v1alpha1.VerdictPass,
			[]string{"p99 ratio not judged (stable 5 requests < minRequests 20)", "failure rate 0.0000 vs stable 0.0000"}},
		{"stable with no requests: its failure rate counts as 0", iv(200, 10, 40*ms), iv(0, 0, 0), "", nil, v1alpha1.VerdictFail, []string{"vs stable 0.0000 (+0.0500 > +0.01)"}},
		{"canary below minRequests: inconclusive whatever stable did", iv(10, 10, 5*ms), iv(500, 0, 5*ms), "", nil, v1alpha1.VerdictInconclusive,
			[]string{"10 requests < minRequests 20"}},
		{"no baseline read: inconclusive, named", iv(200, 0, 5*ms), nil, "scrape stable a pods: connection refused", nil, v1alpha1.VerdictInconclusive,
			[]string{"no stable baseline (scrape stable a pods: connection refused)"}},
		{"baseline None ignores stable", iv(500, 500, 5*ms), nil, "", func(s *v1alpha1.AnalysisSpec) { s.Baseline = v1alpha1.BaselineNone }, v1alpha1.VerdictPass, nil},
		{"absolute thresholds still apply", &Interval{Requests: 200, Errors: 10, Failures: 10, HasLatency: true, P99: 5 * ms}, iv(200, 10, 5*ms), "", nil, v1alpha1.VerdictFail,
			[]string{"error rate 0.0500 > 0.01"}},
		{"a custom increase and ratio", iv(100, 10, 140*ms), iv(100, 0, 100*ms), "", func(s *v1alpha1.AnalysisSpec) {
			s.MaxFailureRateIncrease, s.MaxLatencyRatio, s.MaxErrorRate = "0.2", "1.5", "1"
		}, v1alpha1.VerdictPass, []string{"(+0.1000 <= +0.2)", "(x1.40 <= x1.5)"}},
	}
	for _, c := range cases {
		s := spec()
		s.Baseline = v1alpha1.BaselineStable
		if c.spec != nil {
			c.spec(&s)
		}
		v, msg := Judge(Tracks{Canary: *c.canary, Stable: c.stable, StableProblem: c.problem}, s)
		if v != c.want {
			t.Errorf("%s: verdict %s, want %s (%s)", c.name, v, c.want, msg)
		}
		for _, m := range c.msg {
			if !strings.Contains(msg, m) {
				t.Errorf("%s: message %q lacks %q", c.name, msg, m)
			}
		}
	}
}

func TestStatusRecordsTheBaseline(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	st := Status(Tracks{
		Canary: Interval{Requests: 100, Failures: 100, HasLatency: true, P99: 5 * time.Millisecond},
		Stable: &Interval{Requests: 400, Failures: 2, HasLatency: true, P99: 4 * time.Millisecond},
	}, spec(), "b", now)
	if st.FailureRate != "1.0000" || st.Baseline == nil || st.Baseline.Requests != 400 || st.Baseline.FailureRate != "0.0050" ||
		st.Baseline.LatencyP99 == nil || st.Baseline.LatencyP99.Duration != 4*time.Millisecond || st.Verdict != v1alpha1.VerdictFail {
		t.Errorf("status %+v baseline %+v", st, st.Baseline)
	}
	u := Unreadable(errors.New("scrape canary b pods: connection refused"), "b", now)
	if u.Verdict != v1alpha1.VerdictInconclusive || u.Message != "canary metrics unreadable: scrape canary b pods: connection refused" {
		t.Errorf("unreadable %+v", u)
	}
}

func TestFailuresCountEveryUnservedAnswer(t *testing.T) {
	iv := FromIncrease(Sample{
		Codes: map[string]float64{"200": 70, "400": 10, "404": 2, "429": 5, "499": 1, "500": 3, "503": 6, "504": 3},
		Shed:  map[string]float64{ShedQueueFull: 5, ShedQueueTimeout: 4, ShedDraining: 2},
	})
	// 100 answers: 70 ok; shed: 5 x 429 + 4 queue-timeout 503 + 2 draining 503;
	// failures: 10 + 2 + 1 (client left) + 3 + 504 x 3 = 19.
	if iv.Requests != 100 || iv.Failures != 19 || iv.Errors != 6 || iv.Shed != 9 {
		t.Errorf("interval %+v: want 100 requests, 19 failures, 6 errors, 9 shed", iv)
	}
}
