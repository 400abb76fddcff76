package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// baselineSpec: one step, a one-second analysis against the stable track.
func baselineSpec(s *ragv1.RAGService) {
	s.Spec.Rollout = ragv1.RolloutSpec{
		Strategy:         ragv1.StrategyCanary,
		Steps:            []ragv1.RolloutStep{{SetWeight: ptr.To(int32(50))}, {Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: 2 * time.Second}}}},
		ProgressDeadline: metav1.Duration{Duration: 60 * time.Second},
		Analysis: &ragv1.AnalysisSpec{
			Provider:     ragv1.AnalysisBuiltin,
			Interval:     metav1.Duration{Duration: time.Second},
			MinRequests:  ptr.To(int64(5)),
			OnNoData:     ragv1.NoDataPause,
			FailureLimit: ptr.To(int32(1)),
			Baseline:     ragv1.BaselineStable,
		},
	}
}

// A canary whose pods answer 400 to every client request that stable serves
// (a build that refuses a field clients send) passes every 5xx threshold; the
// comparison with stable rolls it back, the message naming both rates.
func TestAnalysisAgainstStableRollsBackClientErrors(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, baselineSpec))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "ragops/embedserver:rejects-user" })
	var failed *ragv1.AnalysisStatus
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		if a := svc.Status.Analysis; a != nil && a.Verdict == ragv1.VerdictFail {
			failed = a.DeepCopy()
		}
		g.Expect(svc.Status.Rollback).NotTo(BeNil(), "status: %+v", svc.Status)
		g.Expect(svc.Status.Rollback.Reason).To(Equal(rollout.ReasonAnalysisFailed))
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		g.Expect(svc.Status.Rollback.Message).To(MatchRegexp(`failure rate 0\.\d{4} vs stable 0\.0000 \(\+0\.\d{4} > \+0\.01\)`))
		g.Expect(svc.Status.Rollback.Message).To(ContainSubstring("error rate 0.0000 <= 0.01"), "no 5xx: the thresholds alone would pass it")
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	if failed != nil {
		g.Expect(failed.ErrorRate).To(Equal("0.0000"))
		g.Expect(failed.Baseline).NotTo(BeNil())
		g.Expect(failed.Baseline.FailureRate).To(Equal("0.0000"))
		g.Expect(failed.Baseline.Requests).To(BeNumerically(">=", 5))
	}
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
	g.Expect(testutil.ToFloat64(analysisValue.WithLabelValues(ns, "docs", "failure_rate", ragv1.TrackCanary))).To(BeNumerically(">", 0.5))
	g.Expect(testutil.ToFloat64(analysisValue.WithLabelValues(ns, "docs", "failure_rate", ragv1.TrackStable))).To(BeZero())
}

// A service with no clients at all: the operator's probe requests alone make
// the intervals conclusive, and a good change is promoted on them. Without
// probe requests the same service holds, inconclusive.
func TestQuietServicePromotesOnProbeRequests(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, baselineSpec, func(s *ragv1.RAGService) {
		s.Spec.Rollout.Analysis.ProbeRequests = ptr.To(int32(10))
	}))).To(Succeed())
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "silent", 2, baselineSpec, func(s *ragv1.RAGService) {
		s.Spec.Rollout.Analysis.ProbeRequests = ptr.To(int32(0))
	}))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	waitHealthy(t, ns, "silent", poll.Budget)

	for _, name := range []string{"docs", "silent"} {
		update(t, ns, name, func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	}
	var passed *ragv1.AnalysisStatus
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		if a := svc.Status.Analysis; a != nil && a.Verdict == ragv1.VerdictPass {
			passed = a.DeepCopy()
		}
		g.Expect(passed).NotTo(BeNil(), "no passing interval yet: %+v", svc.Status.Analysis)
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Expect(passed.Requests).To(BeNumerically(">=", 5), "the probe requests counted like any request")
	g.Expect(passed.Baseline).NotTo(BeNil())
	g.Expect(passed.Baseline.Requests).To(BeNumerically(">=", 5), "stable got its probe requests too")
	waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(testutil.ToFloat64(probeRequests.WithLabelValues(ns, "docs", ragv1.TrackCanary, "200"))).To(BeNumerically(">=", 5))

	// The silent one, meanwhile, holds for lack of data.
	svc := get(g, ns, "silent")
	g.Expect(svc.Status.CanaryRevision).NotTo(BeEmpty())
	g.Expect(svc.Status.Analysis).NotTo(BeNil())
	g.Expect(svc.Status.Analysis.Verdict).To(Equal(ragv1.VerdictInconclusive))
	conditionIs(g, svc, ragv1.ConditionReconciling, metav1.ConditionTrue, "WaitingForAnalysisData")
	g.Expect(testutil.ToFloat64(probeRequests.WithLabelValues(ns, "silent", ragv1.TrackCanary, "200"))).To(BeZero())
}

// A canary whose metrics port is closed while its pods are ready is never a
// silent pass: the interval is Inconclusive with the error named, and with
// onNoData Fail the canary is rolled back.
func TestUnreadableCanaryMetricsFailClosed(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, baselineSpec, func(s *ragv1.RAGService) {
		s.Spec.Rollout.Analysis.OnNoData = ragv1.NoDataFail
	}))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "ragops/embedserver:no-metrics" })
	var held bool
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		if a := svc.Status.Analysis; a != nil && svc.Status.CanaryRevision != "" && a.Verdict == ragv1.VerdictInconclusive && a.Failures == 1 {
			g.Expect(a.Message).To(ContainSubstring("canary metrics unreadable: scrape canary"))
			held = true
		}
		g.Expect(svc.Status.Rollback).NotTo(BeNil())
		g.Expect(svc.Status.Rollback.Reason).To(Equal(rollout.ReasonAnalysisFailed))
		g.Expect(svc.Status.Rollback.Message).To(ContainSubstring("canary metrics unreadable"))
	}, poll.Budget, 20*time.Millisecond).Should(Succeed())
	g.Expect(held).To(BeTrue(), "the first unreadable interval was held as Inconclusive (failureLimit 1) before the rollback")
}
