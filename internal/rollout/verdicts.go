package rollout

import (
	"fmt"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// AnalysisDue says whether the controller should run analysis before calling
// Decide: a canary runs (not yet promoted) with at least one ready pod,
// analysis is configured and no verdict on this canary is younger than the
// interval. A canary without ready pods is not analysed at all: that is the
// progress deadline's business, and "no data" from pods that are not serving
// yet must never count as a failure.
func AnalysisDue(in Input) bool {
	st := in.Memory
	if !AnalysisActive(in.Rollout, st, in.Space) {
		return false
	}
	if cn := in.Canary; !cn.Exists || cn.Revision != st.CanaryRevision || cn.ReadyReplicas == 0 {
		return false
	}
	a := in.Rollout.Analysis
	if st.Analysis == nil || st.Analysis.Revision != st.CanaryRevision {
		return true
	}
	return !in.Now.Before(st.Analysis.Time.Add(interval(a)))
}

// AnalysisActive says whether analysis judges the running canary: it is
// configured and a canary runs that clients reach (not promoting, not the
// preview of a cutover, its space proven when the check is on). A canary that
// clients do not reach has no traffic of theirs to judge. Probe traffic runs
// exactly while this holds.
func AnalysisActive(r v1alpha1.RolloutSpec, m v1alpha1.RolloutStatus, space SpaceInput) bool {
	c := m.CanaryRevision
	if r.Analysis == nil || r.Strategy == v1alpha1.StrategyRollingUpdate || c == "" || c == m.StableRevision || m.Promoting {
		return false
	}
	es := m.EmbeddingSpace
	if es != nil && es.Revision == c && es.CanarySpace != es.Name {
		return false
	}
	return !space.Check || (es != nil && es.Revision == c && es.Verdict == v1alpha1.SpaceCompatible)
}

// recordVerdict folds a new verdict on the current canary into the memory and
// counts failed intervals.
func (p *planner) recordVerdict() {
	v, a, c := p.in.Verdict, p.in.Rollout.Analysis, p.st.CanaryRevision
	if v == nil || a == nil || v.Revision != c {
		return
	}
	prev := p.st.Analysis
	if prev != nil && prev.Revision == c && !v.Time.After(prev.Time.Time) {
		return // already counted
	}
	rec := v.DeepCopy()
	rec.Failures = 0
	if prev != nil && prev.Revision == c {
		rec.Failures = prev.Failures
	}
	if v.Verdict == v1alpha1.VerdictFail || (v.Verdict == v1alpha1.VerdictInconclusive && a.OnNoData == v1alpha1.NoDataFail) {
		rec.Failures++
		// Once over the limit the rollout has failed; more failed intervals are
		// not news.
		if rec.Failures <= failureLimit(a)+1 {
			p.event(EventWarning, "AnalysisIntervalFailed", fmt.Sprintf("Analysis of canary %s failed: %s (failed intervals %d, failureLimit %d)", c, orVerdict(rec.Message, rec.Verdict), rec.Failures, failureLimit(a)))
		}
	}
	p.st.Analysis = rec
}

func (p *planner) analysisFailed() bool {
	a, last := p.in.Rollout.Analysis, p.st.Analysis
	return a != nil && last != nil && last.Revision == p.st.CanaryRevision && last.Failures > failureLimit(a)
}

func (p *planner) failMessage() string {
	last := p.st.Analysis
	return fmt.Sprintf("%d failed analysis intervals exceed failureLimit %d: %s", last.Failures, failureLimit(p.in.Rollout.Analysis), orVerdict(last.Message, last.Verdict))
}

// analysisPassed says whether analysis lets step n (0-based) of total end: without
// analysis always; with it, only on a conclusive verdict dated after the step
// began. When it does not, it records why the rollout waits.
func (p *planner) analysisPassed(n int32, total int) bool {
	a := p.in.Rollout.Analysis
	if a == nil {
		return true
	}
	c := p.st.CanaryRevision
	last := p.st.Analysis
	if last == nil || last.Revision != c || !last.Time.After(p.stepStart()) {
		p.wait("WaitingForAnalysis", fmt.Sprintf("Step %s: waiting for an analysis verdict on %s", stepOf(n, total), c))
		return false
	}
	switch {
	case last.Verdict == v1alpha1.VerdictPass:
		return true
	case last.Verdict == v1alpha1.VerdictInconclusive && a.OnNoData == v1alpha1.NoDataContinue:
		return true
	case last.Verdict == v1alpha1.VerdictInconclusive && a.OnNoData != v1alpha1.NoDataFail:
		p.wait("WaitingForAnalysisData", fmt.Sprintf("Step %s: last analysis inconclusive (%s); onNoData is Pause", stepOf(n, total), last.Message))
		return false
	default:
		p.wait("WaitingForAnalysis", fmt.Sprintf("Step %s: last analysis %s (%d failed intervals so far)", stepOf(n, total), last.Verdict, last.Failures))
		return false
	}
}

func interval(a *v1alpha1.AnalysisSpec) time.Duration {
	if a.Interval.Duration > 0 {
		return a.Interval.Duration
	}
	return DefaultInterval
}

func failureLimit(a *v1alpha1.AnalysisSpec) int32 {
	if a.FailureLimit == nil {
		return 1
	}
	return *a.FailureLimit
}

func orVerdict(msg string, v v1alpha1.Verdict) string {
	if msg != "" {
		return msg
	}
	return string(v)
}
