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
	DefaultMinRequests            = 20
	DefaultMaxErrorRate           = 0.01
	DefaultMaxShedRate            = 0.10
	DefaultMaxLatencyP99          = 2 * time.Second
	DefaultMaxFailureRateIncrease = 0.01
	DefaultMaxLatencyRatio        = 2.0
	DefaultProbeRequests          = 10
)

// LatencyRatioFloor is the least p99 the latency ratio divides by: two fast
// tracks (a stable p99 of 2 ms, a canary's of 5 ms, both within one histogram
// bucket of each other) must not fail on a ratio of tiny numbers.
const LatencyRatioFloor = 25 * time.Millisecond

// Tracks is what one interval saw of the canary and, for the baseline, of the
// stable track over the same window.
type Tracks struct {
	Canary Interval
	// Stable is nil when it was not read; StableProblem then says why (a
	// baseline needs it).
	Stable        *Interval
	StableProblem string
}

// Judge gives the verdict of one interval and says why in words: each metric
// with its value, the stable track's and the limit.
//
// Inconclusive: the canary answered fewer than minRequests (or no) requests,
// or without a latency histogram; or, with baseline Stable, the stable track
// could not be read. Fail: any absolute threshold exceeded, or (baseline
// Stable) the canary's failure rate above stable's by more than
// maxFailureRateIncrease, or its p99 above maxLatencyRatio times stable's when
// both tracks served minRequests. Pass otherwise.
func Judge(t Tracks, spec v1alpha1.AnalysisSpec) (v1alpha1.Verdict, string) {
	iv := t.Canary
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
	baseline := spec.Baseline != v1alpha1.BaselineNone
	if baseline && t.Stable == nil {
		return v1alpha1.VerdictInconclusive, fmt.Sprintf("no stable baseline (%s); baseline Stable compares with it", cmpOr(t.StableProblem, "not read"))
	}
	maxErr := parseRate(spec.MaxErrorRate, DefaultMaxErrorRate)
	maxShed := parseRate(spec.MaxShedRate, DefaultMaxShedRate)
	maxP99 := spec.MaxLatencyP99.Duration
	if maxP99 <= 0 {
		maxP99 = DefaultMaxLatencyP99
	}
	errRate, shedRate := rate(iv.Errors, iv.Requests), rate(iv.Shed, iv.Requests)
	type check struct {
		ok   bool
		text string
	}
	checks := []check{
		{errRate <= maxErr, fmt.Sprintf("error rate %s %s %s", FormatRate(errRate), cmp(errRate <= maxErr), formatLimit(maxErr))},
		{shedRate <= maxShed, fmt.Sprintf("shed rate %s %s %s", FormatRate(shedRate), cmp(shedRate <= maxShed), formatLimit(maxShed))},
		{iv.P99 <= maxP99, fmt.Sprintf("p99 %s %s %s", iv.P99.Round(time.Millisecond), cmp(iv.P99 <= maxP99), maxP99)},
	}
	counts := fmt.Sprintf("(%d requests)", iv.Requests)
	if baseline {
		st := *t.Stable
		maxInc := parseRate(spec.MaxFailureRateIncrease, DefaultMaxFailureRateIncrease)
		cf, sf := rate(iv.Failures, iv.Requests), rate(st.Failures, st.Requests)
		inc := cf - sf
		ok := inc <= maxInc+1e-12 // rates are ratios of counts: forgive float noise at the limit
		checks = append(checks, check{ok, fmt.Sprintf("failure rate %s vs stable %s (%+.4f %s +%s)", FormatRate(cf), FormatRate(sf), inc, cmp(ok), formatLimit(maxInc))})
		if text, ok, judged := latencyRatio(iv, st, minReq, parseRatio(spec.MaxLatencyRatio)); judged {
			checks = append(checks, check{ok, text})
		} else if text != "" {
			checks = append(checks, check{true, text})
		}
		counts = fmt.Sprintf("(%d requests, stable %d)", iv.Requests, st.Requests)
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
		msg := strings.Join(failed, ", ")
		if len(passed) > 0 {
			msg += "; within limits: " + strings.Join(passed, ", ")
		}
		return v1alpha1.VerdictFail, fmt.Sprintf("%s %s", msg, counts)
	}
	return v1alpha1.VerdictPass, fmt.Sprintf("%s %s", strings.Join(passed, ", "), counts)
}

// latencyRatio compares the p99s when both tracks served minRequests with a
// histogram: judged is false (and text says why, or is empty) otherwise.
func latencyRatio(canary, stable Interval, minReq int64, maxRatio float64) (text string, ok, judged bool) {
	switch {
	case stable.Requests < minReq:
		return fmt.Sprintf("p99 ratio not judged (stable %d requests < minRequests %d)", stable.Requests, minReq), true, false
	case !stable.HasLatency:
		return "", true, false
	}
	base := max(stable.P99, LatencyRatioFloor)
	ratio := float64(canary.P99) / float64(base)
	ok = ratio <= maxRatio
	// The message says what the ratio divides by when it is the floor, or a
	// reader divides 10ms by 10ms and wonders where x0.40 came from.
	of := ""
	if stable.P99 < LatencyRatioFloor {
		of = fmt.Sprintf(" of the %s floor", LatencyRatioFloor)
	}
	return fmt.Sprintf("p99 %s vs stable %s (x%.2f%s %s x%s)", canary.P99.Round(time.Millisecond), stable.P99.Round(time.Millisecond),
		ratio, of, cmp(ok), formatLimit(maxRatio)), ok, true
}

// Status is the interval as status.analysis records it.
func Status(t Tracks, spec v1alpha1.AnalysisSpec, revision string, now time.Time) v1alpha1.AnalysisStatus {
	v, msg := Judge(t, spec)
	iv := t.Canary
	st := v1alpha1.AnalysisStatus{
		Time:        metav1.NewTime(now),
		Revision:    revision,
		Requests:    iv.Requests,
		ErrorRate:   FormatRate(rate(iv.Errors, iv.Requests)),
		ShedRate:    FormatRate(rate(iv.Shed, iv.Requests)),
		FailureRate: FormatRate(rate(iv.Failures, iv.Requests)),
		Verdict:     v,
		Message:     msg,
	}
	if iv.HasLatency {
		st.LatencyP99 = &metav1.Duration{Duration: iv.P99.Round(time.Millisecond)}
	}
	if s := t.Stable; s != nil && spec.Baseline != v1alpha1.BaselineNone {
		st.Baseline = &v1alpha1.BaselineStatus{Requests: s.Requests, FailureRate: FormatRate(rate(s.Failures, s.Requests))}
		if s.HasLatency {
			st.Baseline.LatencyP99 = &metav1.Duration{Duration: s.P99.Round(time.Millisecond)}
		}
	}
	return st
}

// Unreadable is the verdict of an interval whose canary metrics could not be
// read while its pods are ready: Inconclusive with the error named (so
// onNoData decides), never a silent pass.
func Unreadable(err error, revision string, now time.Time) v1alpha1.AnalysisStatus {
	return v1alpha1.AnalysisStatus{Time: metav1.NewTime(now), Revision: revision, Verdict: v1alpha1.VerdictInconclusive,
		Message: "canary metrics unreadable: " + err.Error()}
}

// ProbeRequests is spec.rollout.analysis.probeRequests, defaulted.
func ProbeRequests(spec v1alpha1.AnalysisSpec) int {
	if spec.ProbeRequests == nil {
		return DefaultProbeRequests
	}
	return int(*spec.ProbeRequests)
}

// FormatRate renders a rate as status stores it: a decimal with 4 places.
func FormatRate(r float64) string { return strconv.FormatFloat(r, 'f', 4, 64) }

func formatLimit(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

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

func parseRatio(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 1 {
		return DefaultMaxLatencyRatio
	}
	return f
}

func cmp(ok bool) string {
	if ok {
		return "<="
	}
	return ">"
}

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
