package controllers

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// canarySpec: four steps with short pauses and a one-second analysis on live
// metrics, so a rollout takes seconds.
func canarySpec(s *ragv1.RAGService) {
	s.Spec.Rollout = ragv1.RolloutSpec{
		Strategy: ragv1.StrategyCanary,
		Steps: []ragv1.RolloutStep{
			{SetWeight: ptr.To(int32(25))},
			{Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: 2 * time.Second}}},
			{SetWeight: ptr.To(int32(50))},
			{Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: 2 * time.Second}}},
		},
		ProgressDeadline: metav1.Duration{Duration: 30 * time.Second},
		Analysis: &ragv1.AnalysisSpec{
			Provider:     ragv1.AnalysisBuiltin,
			Interval:     metav1.Duration{Duration: time.Second},
			MinRequests:  ptr.To(int64(5)),
			OnNoData:     ragv1.NoDataPause,
			FailureLimit: ptr.To(int32(1)),
			MaxErrorRate: "0.05", MaxShedRate: "0.10",
			MaxLatencyP99: metav1.Duration{Duration: 2 * time.Second},
		},
	}
}

// observer records every status a test sees, so a test can assert on all of them.
type observer struct {
	mu   sync.Mutex
	seen []ragv1.RAGServiceStatus
}

func watchStatus(t *testing.T, ns, name string) *observer {
	o := &observer{}
	pollEvery(t, 50*time.Millisecond, func(ctx context.Context) {
		svc := &ragv1.RAGService{}
		if err := k8sClient.Get(ctx, keyOf(ns, name), svc); err == nil {
			o.mu.Lock()
			o.seen = append(o.seen, svc.Status)
			o.mu.Unlock()
		}
	})
	return o
}

func (o *observer) statuses() []ragv1.RAGServiceStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]ragv1.RAGServiceStatus(nil), o.seen...)
}

// A good change goes through every step on live metrics and is promoted:
// stable takes the new revision, the canary goes, capacity never drops.
func TestCanaryPromotion(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	sim := startSim(t, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 4, canarySpec))).To(Succeed())
	before := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision
	obs := watchStatus(t, ns, "docs")

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 16 })

	// Step 0 (25% of 4): one canary pod of the new revision beside 4 stable ones.
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).NotTo(BeEmpty())
		g.Expect(svc.Status.CanaryWeight).To(Equal(int32(25)))
		d := canaryDeployment(g, ns, "docs")
		g.Expect(*d.Spec.Replicas).To(Equal(int32(1)))
		g.Expect(args(d)).To(ContainElement("--max-in-flight=16"))
		g.Expect(*stableDeployment(g, ns, "docs").Spec.Replicas).To(Equal(int32(4)))
		conditionIs(g, svc, ragv1.ConditionReconciling, metav1.ConditionTrue, "")
		g.Expect(kstatusOf(g, ns, "docs").Status).To(Equal(status.InProgressStatus))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	canaryRev := get(g, ns, "docs").Status.CanaryRevision

	// Then 50%: two canary pods; analysis has passed on real traffic.
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryWeight).To(Equal(int32(50)))
		g.Expect(*canaryDeployment(g, ns, "docs").Spec.Replicas).To(Equal(int32(2)))
		g.Expect(svc.Status.Analysis).NotTo(BeNil())
		g.Expect(svc.Status.Analysis.Verdict).To(Equal(ragv1.VerdictPass))
		g.Expect(svc.Status.Analysis.Requests).To(BeNumerically(">=", 5))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	svc := waitHealthy(t, ns, "docs", 60*time.Second)
	g.Expect(svc.Status.StableRevision).To(Equal(canaryRev))
	g.Expect(svc.Status.StableRevision).NotTo(Equal(before))
	g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
	g.Expect(kstatusOf(g, ns, "docs").Status).To(Equal(status.CurrentStatus))
	g.Expect(args(stableDeployment(g, ns, "docs"))).To(ContainElement("--max-in-flight=16"))
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, "docs")).To(ContainElements("CanaryStarted", "StepAdvanced", "PromotionStarted", "Promoted"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())

	// Across every state seen: stable never below spec.replicas, steps only
	// move forward, and ready capacity never dropped.
	var step int32
	for _, st := range obs.statuses() {
		if st.CanaryRevision == canaryRev {
			g.Expect(st.CurrentStep).To(BeNumerically(">=", step), "step went back: %+v", st)
			step = st.CurrentStep
		}
		// Every write is consistent: a running canary is never shown beside
		// Healthy (the conditions go with the decision).
		if st.CanaryRevision != "" {
			g.Expect(st.Phase).NotTo(Equal(ragv1.PhaseHealthy), "a canary beside phase Healthy: %+v", st)
		}
	}
	minReady, _ := sim.minReadySeen("docs")
	g.Expect(minReady).To(BeNumerically(">=", 4), "ready capacity dropped below spec.replicas")

	// The operator's metrics tell the same story.
	g.Expect(testutil.ToFloat64(rolloutsTotal.WithLabelValues(ns, "docs", "promoted"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(analysisVerdicts.WithLabelValues(ns, "docs", "Pass"))).To(BeNumerically(">=", 1))
	g.Expect(testutil.ToFloat64(rolloutStep.WithLabelValues(ns, "docs"))).To(Equal(-1.0))
}

// A change whose pods fail half their requests fails analysis and is rolled
// back: canary pods gone at once, stable untouched, RolledBack with the reason,
// and the revision is not tried again until retry is asked for.
func TestCanaryAnalysisFailureRollsBack(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	sim := startSim(t, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 4, canarySpec))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "ragops/embedserver:broken" })
	var bad string
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil())
		g.Expect(svc.Status.Rollback.Reason).To(Equal("AnalysisFailed"))
		bad = svc.Status.Rollback.Revision
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhaseRolledBack))
		conditionIs(g, svc, ragv1.ConditionRolledBack, metav1.ConditionTrue, "AnalysisFailed")
		conditionIs(g, svc, ragv1.ConditionReady, metav1.ConditionFalse, "")
		conditionIs(g, svc, ragv1.ConditionStalled, metav1.ConditionTrue, "")
		g.Expect(kstatusOf(g, ns, "docs").Status).To(Equal(status.FailedStatus))
		g.Expect(svc.Status.Analysis.Verdict).To(Equal(ragv1.VerdictFail))
	}, 60*time.Second, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
	g.Expect(stableDeployment(g, ns, "docs").Labels[ragv1.LabelRevision]).To(Equal(stable))
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, "docs")).To(ContainElement("AnalysisFailed"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	g.Expect(testutil.ToFloat64(rolloutsTotal.WithLabelValues(ns, "docs", "rolled_back"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(analysisVerdicts.WithLabelValues(ns, "docs", "Fail"))).To(BeNumerically(">=", 2))

	// Not retried by itself.
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, ns, "docs").Status.CanaryRevision).To(BeEmpty())
	}, 3*time.Second, 200*time.Millisecond).Should(Succeed())

	// retry starts the same revision over; its token is recorded as handled
	// and the annotation stays.
	retry := annotate(t, ns, "docs", ragv1.AnnotationRetry)
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).To(Equal(bad))
		g.Expect(svc.Status.LastHandled).NotTo(BeNil())
		g.Expect(svc.Status.LastHandled.Retry).To(Equal(retry))
		g.Expect(svc.Annotations).To(HaveKeyWithValue(ragv1.AnnotationRetry, retry))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	// A GitOps revert to the stable spec is a fast rollback: no steps, Healthy.
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "" })
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.StableRevision).To(Equal(stable))
	g.Expect(condition(svc, ragv1.ConditionRolledBack)).To(BeNil())
	minReady, _ := sim.minReadySeen("docs")
	g.Expect(minReady).To(BeNumerically(">=", 4))
}

// A canary whose pods never become ready is rolled back at the progress
// deadline, whatever else happens.
func TestProgressDeadlineRollsBack(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, canarySpec, func(s *ragv1.RAGService) {
		s.Spec.Rollout.ProgressDeadline = metav1.Duration{Duration: 3 * time.Second}
	}))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	start := time.Now()
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "ragops/embedserver:stuck" })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil())
		g.Expect(svc.Status.Rollback.Reason).To(Equal("ProgressDeadlineExceeded"))
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Expect(time.Since(start)).To(BeNumerically(">=", 3*time.Second), "rolled back before the deadline")
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
}

// The planner decides on every pass that could read the tracks: a canary whose
// spec became unbuildable (no image) still rolls back at its progress
// deadline; the service says what a person must fix, and status.rollback what
// the rollout did.
func TestUnbuildableSpecStillRollsBackAtDeadline(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t, func(r *RAGServiceReconciler) { r.EmbedServerImage = "" })
	startSim(t, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, canarySpec, func(s *ragv1.RAGService) {
		s.Spec.Image = testImage
		s.Spec.Rollout.Analysis = nil
		s.Spec.Rollout.ProgressDeadline = metav1.Duration{Duration: 4 * time.Second}
	}))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "ragops/embedserver:stuck" })
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, ns, "docs").Status.CanaryRevision).NotTo(BeEmpty())
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "" })

	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil(), "status: %+v", svc.Status)
		g.Expect(svc.Status.Rollback.Reason).To(Equal(rollout.ReasonProgressDeadlineExceeded))
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
		conditionIs(g, svc, ragv1.ConditionStalled, metav1.ConditionTrue, rollout.ReasonInvalidSpec)
		conditionIs(g, svc, ragv1.ConditionReady, metav1.ConditionFalse, rollout.ReasonInvalidSpec)
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhaseDegraded))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
	g.Expect(stableDeployment(g, ns, "docs").Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))
}

// Manual control: a pause step without duration waits for promote; abort rolls
// back; spec.rollout.paused holds a new canary until it is cleared.
func TestManualControl(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)

	manual := func(s *ragv1.RAGService) {
		s.Spec.Rollout.Steps = []ragv1.RolloutStep{{SetWeight: ptr.To(int32(50))}, {Pause: &ragv1.PauseStep{}}}
		s.Spec.Rollout.Analysis = nil
	}
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, manual))).To(Succeed())
	first := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	// Promote from an indefinite pause.
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhasePaused))
		g.Expect(svc.Status.CurrentStep).To(Equal(int32(1)))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	second := get(g, ns, "docs").Status.CanaryRevision
	promote := annotate(t, ns, "docs", ragv1.AnnotationPromote)
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.StableRevision).To(Equal(second))
	g.Expect(svc.Status.LastHandled.Promote).To(Equal(promote))
	g.Expect(svc.Annotations).To(HaveKeyWithValue(ragv1.AnnotationPromote, promote))

	// Abort a running canary.
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 5 })
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, ns, "docs").Status.Phase).To(Equal(ragv1.PhasePaused))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	abort := annotate(t, ns, "docs", ragv1.AnnotationAbort)
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil())
		g.Expect(svc.Status.Rollback.Reason).To(Equal("Aborted"))
		g.Expect(svc.Status.StableRevision).To(Equal(second))
		g.Expect(svc.Status.LastHandled.Abort).To(Equal(abort))
		g.Expect(svc.Annotations).To(HaveKeyWithValue(ragv1.AnnotationAbort, abort))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())

	// paused holds a new change; clearing it lets the canary start.
	update(t, ns, "docs", func(s *ragv1.RAGService) {
		s.Spec.Rollout.Paused = true
		s.Spec.Concurrency.MaxInFlight = 6
	})
	g.Consistently(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
		g.Expect(svc.Status.StableRevision).To(Equal(second))
	}, 2*time.Second, 200*time.Millisecond).Should(Succeed())
	svc = get(g, ns, "docs")
	g.Expect(svc.Status.Phase).To(Equal(ragv1.PhasePaused), "generation %d, status %+v", svc.Generation, svc.Status)
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Rollout.Paused = false })
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, ns, "docs").Status.CanaryRevision).NotTo(BeEmpty())
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Expect(first).NotTo(Equal(second))
}

// A spec change during a canary restarts it with the new revision at its first step.
func TestSpecChangeDuringCanary(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, canarySpec, func(s *ragv1.RAGService) {
		s.Spec.Rollout.Steps = append(s.Spec.Rollout.Steps, ragv1.RolloutStep{Pause: &ragv1.PauseStep{}})
	}))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 3 })
	var first string
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CurrentStep).To(BeNumerically(">=", 1))
		first = svc.Status.CanaryRevision
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).NotTo(Equal(first))
		g.Expect(svc.Status.CanaryRevision).NotTo(BeEmpty())
		g.Expect(args(canaryDeployment(g, ns, "docs"))).To(ContainElement("--max-in-flight=4"))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, "docs")).To(ContainElement("CanaryRestarted"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
}

// A manager stopped mid-rollout and started again (with no memory) resumes
// from status and finishes the promotion.
func TestManagerRestartMidRollout(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	m := startManager(t)
	sim := startSim(t, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 4, canarySpec))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 12 })

	var atStop ragv1.RAGServiceStatus
	g.Eventually(func(g Gomega) {
		atStop = get(g, ns, "docs").Status
		g.Expect(atStop.CurrentStep).To(BeNumerically(">=", 1))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	m.stop()

	// While no operator runs, nothing moves.
	g.Consistently(func(g Gomega) {
		st := get(g, ns, "docs").Status
		g.Expect(st.CanaryRevision).To(Equal(atStop.CanaryRevision))
		g.Expect(st.CurrentStep).To(Equal(atStop.CurrentStep))
	}, time.Second, 100*time.Millisecond).Should(Succeed())

	startManager(t)
	svc := waitHealthy(t, ns, "docs", 60*time.Second)
	g.Expect(svc.Status.StableRevision).To(Equal(atStop.CanaryRevision))
	minReady, _ := sim.minReadySeen("docs")
	g.Expect(minReady).To(BeNumerically(">=", 4))
}
