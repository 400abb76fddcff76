package analysis

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Thresholds used when the spec leaves them empty or unparsable (the CRD
// defaults and validates them; these guard objects that skipped both).
const (
	DefaultMinRequests   = 20
	DefaultMaxErrorRate  = 0.01
	DefaultMaxShedRate   = 0.10
	DefaultMaxLatencyP99 = 2 * time.Second
)

// Judge gives the verdict of one interval and says why in words.
// Inconclusive: fewer requests than minRequests (or none at all), or requests
// without a latency histogram. Fail: any threshold exceeded. Pass otherwise.
func Judge(iv Interval, spec v1alpha1.AnalysisSpec) (v1alpha1.Verdict, string) {
	minReq := int64(DefaultMinRequests)
	if spec.MinRequests != nil {
		minReq = *spec.MinRequests
	}
	if iv.Requests == 0 || iv.Requests < minReq {
		return v1alpha1.VerdictInconclusive, fmt.Sprintf("%d requests < minRequests %d", iv.Requests, minReq)
	}
	if !iv.HasLatency {
		return v1alpha1.VerdictInconclusive, fmt.Sprintf("%d requests but no %s observations", iv.Requests, MetricDuration)
	}
	maxErr := parseRate(spec.MaxErrorRate, DefaultMaxErrorRate)
	maxShed := parseRate(spec.MaxShedRate, DefaultMaxShedRate)
	maxP99 := spec.MaxLatencyP99.Duration
	if maxP99 <= 0 {
		maxP99 = DefaultMaxLatencyP99
	}
	errRate, shedRate := rate(iv.Errors, iv.Requests), rate(iv.Shed, iv.Requests)
	checks := []struct {
		ok   bool
		text string
	}{
		{errRate <= maxErr, fmt.Sprintf("error rate %s %s %s", FormatRate(errRate), cmp(errRate <= maxErr), strconv.FormatFloat(maxErr, 'f', -1, 64))},
		{shedRate <= maxShed, fmt.Sprintf("shed rate %s %s %s", FormatRate(shedRate), cmp(shedRate <= maxShed), strconv.FormatFloat(maxShed, 'f', -1, 64))},
		{iv.P99 <= maxP99, fmt.Sprintf("p99 %s %s %s", iv.P99.Round(time.Millisecond), cmp(iv.P99 <= maxP99), maxP99)},
	}
	var failed, passed []string
	for _, c := range checks {
		if c.ok {
			passed = append(passed, c.text)
		} else {
			failed = append(failed, c.text)
		}
	}
	if len(failed) > 0 {
		return v1alpha1.VerdictFail, fmt.Sprintf("%s (%d requests)", strings.Join(failed, ", "), iv.Requests)
	}
	return v1alpha1.VerdictPass, fmt.Sprintf("%s (%d requests)", strings.Join(passed, ", "), iv.Requests)
}

// Status is the interval as status.analysis records it.
func Status(iv Interval, spec v1alpha1.AnalysisSpec, revision string, now time.Time) v1alpha1.AnalysisStatus {
	v, msg := Judge(iv, spec)
	st := v1alpha1.AnalysisStatus{
		Time:      metav1.NewTime(now),
		Revision:  revision,
		Requests:  iv.Requests,
		ErrorRate: FormatRate(rate(iv.Errors, iv.Requests)),
		ShedRate:  FormatRate(rate(iv.Shed, iv.Requests)),
		Verdict:   v,
		Message:   msg,
	}
	if iv.HasLatency {
		st.LatencyP99 = &metav1.Duration{Duration: iv.P99.Round(time.Millisecond)}
	}
	return st
}

// FormatRate renders a rate as status stores it: a decimal with 4 places.
func FormatRate(r float64) string { return strconv.FormatFloat(r, 'f', 4, 64) }

func rate(n, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(n) / float64(total)
}

func parseRate(s string, def float64) float64 {
	if s == "" {
		return def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 {
		return def
	}
	return f
}

func cmp(ok bool) string {
	if ok {
		return "<="
	}
	return ">"
}
