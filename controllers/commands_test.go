package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// Command annotations are tokens: each value acts once, is recorded in
// status.lastHandled, and the annotation is left where it was written (in Git,
// for a GitOps tool).

// twoPauses is a canary that stops twice for a person: promote moves past
// one pause, promote-full past all of them.
func twoPauses(s *ragv1.RAGService) {
	s.Spec.Rollout.Steps = []ragv1.RolloutStep{
		{SetWeight: ptr.To(int32(50))}, {Pause: &ragv1.PauseStep{}},
		{SetWeight: ptr.To(int32(50))}, {Pause: &ragv1.PauseStep{}},
	}
	s.Spec.Rollout.Analysis = nil
}

// shipCanary changes the template and waits for the canary to pause at step.
func shipCanary(t *testing.T, ns string, maxInFlight int32, step int32) string {
	t.Helper()
	g := NewWithT(t)
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = maxInFlight })
	waitPausedAt(t, ns, step)
	return get(g, ns, "docs").Status.CanaryRevision
}

func waitPausedAt(t *testing.T, ns string, step int32) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhasePaused))
		g.Expect(svc.Status.CurrentStep).To(Equal(step))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
}

// reapply removes an annotation and sets it again with the same value, as a
// GitOps tool's self-heal does after someone removed it by hand.
func reapply(t *testing.T, ns, key, token string) {
	t.Helper()
	update(t, ns, "docs", func(s *ragv1.RAGService) { delete(s.Annotations, key) })
	setToken(t, ns, "docs", key, token)
}

func TestPromoteTokenActsOnceAndMovesOneStep(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, twoPauses))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	canary := shipCanary(t, ns, 4, 1)
	token := annotate(t, ns, "docs", ragv1.AnnotationPromote)
	// Past the first pause only: the canary waits at the second.
	waitPausedAt(t, ns, 3)
	svc := get(g, ns, "docs")
	g.Expect(svc.Status.CanaryRevision).To(Equal(canary))
	g.Expect(svc.Status.LastHandled.Promote).To(Equal(token))
	g.Expect(svc.Status.LastHandled.Result).To(ContainSubstring(token))
	g.Expect(svc.Status.LastHandled.Result).To(ContainSubstring("past step 2/4"))
	g.Expect(svc.Annotations).To(HaveKeyWithValue(ragv1.AnnotationPromote, token))
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, "docs")).To(ContainElement("StepPromoted"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())

	// The same token applied again does nothing.
	reapply(t, ns, ragv1.AnnotationPromote, token)
	g.Consistently(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CurrentStep).To(Equal(int32(3)))
		g.Expect(svc.Status.CanaryRevision).To(Equal(canary))
	}, 2*time.Second, 100*time.Millisecond).Should(Succeed())

	// A new token moves past the last pause: promotion.
	annotate(t, ns, "docs", ragv1.AnnotationPromote)
	g.Expect(waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision).To(Equal(canary))
}

func TestPromoteFullSkipsEveryStep(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, twoPauses))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	canary := shipCanary(t, ns, 4, 1)
	token := annotate(t, ns, "docs", ragv1.AnnotationPromoteFull)
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.StableRevision).To(Equal(canary))
	g.Expect(svc.Status.LastHandled.PromoteFull).To(Equal(token))
	g.Expect(svc.Status.LastHandled.Result).To(ContainSubstring("skipping the remaining steps"))
	g.Expect(svc.Annotations).To(HaveKeyWithValue(ragv1.AnnotationPromoteFull, token))
}

// A promote kept in Git promotes the canary it was written for, and no later
// one: the next canary stops at its pause, and a re-sync of the same value
// changes nothing.
func TestPromoteTokenLeftInPlaceDoesNotReplay(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, twoPauses))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	first := shipCanary(t, ns, 4, 1)
	annotate(t, ns, "docs", ragv1.AnnotationPromoteFull)
	g.Expect(waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision).To(Equal(first))

	second := shipCanary(t, ns, 5, 1)
	token := get(g, ns, "docs").Annotations[ragv1.AnnotationPromoteFull]
	reapply(t, ns, ragv1.AnnotationPromoteFull, token)
	g.Consistently(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).To(Equal(second))
		g.Expect(svc.Status.StableRevision).To(Equal(first))
		g.Expect(svc.Status.CurrentStep).To(Equal(int32(1)))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed())
}

// abort and retry act once per token as well: the same abort token applied
// again after a retry does not abort the retried canary.
func TestAbortAndRetryTokensActOnce(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, twoPauses))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	canary := shipCanary(t, ns, 4, 1)
	abort := annotate(t, ns, "docs", ragv1.AnnotationAbort)
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil())
		g.Expect(svc.Status.Rollback.Revision).To(Equal(canary))
		g.Expect(svc.Status.LastHandled.Abort).To(Equal(abort))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	retry := annotate(t, ns, "docs", ragv1.AnnotationRetry)
	waitPausedAt(t, ns, 1)
	g.Expect(get(g, ns, "docs").Status.LastHandled.Retry).To(Equal(retry))

	reapply(t, ns, ragv1.AnnotationAbort, abort)
	reapply(t, ns, ragv1.AnnotationRetry, retry)
	g.Consistently(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).To(Equal(canary))
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		g.Expect(svc.Status.CurrentStep).To(Equal(int32(1)))
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhasePaused))
	}, 3*time.Second, 100*time.Millisecond).Should(Succeed())
}
