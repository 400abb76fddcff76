package controllers

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// kstatusOf is what kstatus readers (Flux health checks, cli-utils' status
// poller) conclude from a RAGService. It reads the object as they do, without
// the Go types, so a field the server holds at its zero value is still there.
func kstatusOf(g Gomega, ns, name string) *status.Result {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(ragv1.GroupVersion.WithKind("RAGService"))
	g.Expect(k8sClient.Get(context.Background(), keyOf(ns, name), u)).To(Succeed())
	res, err := status.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	return res
}

// Before the operator has written anything, a new RAGService reads as
// InProgress: the CRD defaults status.observedGeneration to 0, so kstatus sees
// that generation 1 is not yet observed instead of an object without status,
// which it would call Current.
func TestKstatusNewServiceIsInProgress(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2))).To(Succeed())
	res := kstatusOf(g, ns, "docs")
	g.Expect(res.Status).To(Equal(status.InProgressStatus), "kstatus: %s", res.Message)
	g.Expect(res.Message).To(ContainSubstring("latest observed generation is 0"))
}

// A spec the operator cannot act on reads as Failed to kstatus, not as a
// rollout that never ends, and an edit that fixes it reads Current again. The
// manager here has no default image, so a RAGService without spec.image is
// such a spec.
func TestKstatusReadsStalledSpecAsFailed(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t, func(r *RAGServiceReconciler) { r.EmbedServerImage = "" })
	startSim(t, ns)

	withImage := func(s *ragv1.RAGService) { s.Spec.Image = testImage }
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, withImage))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(kstatusOf(g, ns, "docs").Status).To(Equal(status.CurrentStatus))

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "" })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		conditionIs(g, svc, ragv1.ConditionStalled, metav1.ConditionTrue, "InvalidSpec")
		g.Expect(svc.Status.ObservedGeneration).To(Equal(svc.Generation), "the bad spec was observed")
		res := kstatusOf(g, ns, "docs")
		g.Expect(res.Status).To(Equal(status.FailedStatus), "kstatus: %s", res.Message)
		g.Expect(res.Message).To(ContainSubstring("no embedding server image"))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	// The tracks keep serving the last good revision meanwhile.
	g.Expect(stableDeployment(g, ns, "docs").Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))

	update(t, ns, "docs", withImage)
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(condition(svc, ragv1.ConditionStalled)).To(BeNil())
	g.Expect(kstatusOf(g, ns, "docs").Status).To(Equal(status.CurrentStatus))
}
