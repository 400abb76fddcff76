package controllers

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// newService is a small builtin-model RAGService; mutate adjusts it.
func newService(ns, name string, replicas int32, mutate ...func(*ragv1.RAGService)) *ragv1.RAGService {
	svc := &ragv1.RAGService{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: ragv1.RAGServiceSpec{
			Replicas:  &replicas,
			Embedding: ragv1.EmbeddingSpec{Provider: ragv1.ProviderBuiltin, Model: "hash-64"},
		},
	}
	for _, m := range mutate {
		m(svc)
	}
	return svc
}

func get(g Gomega, ns, name string) *ragv1.RAGService {
	svc := &ragv1.RAGService{}
	g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
	return svc
}

func getDeployment(g Gomega, ns, name string) *appsv1.Deployment {
	d := &appsv1.Deployment{}
	g.Expect(k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d)).To(Succeed())
	return d
}

// update applies mutate to the latest version of a RAGService, retrying conflicts.
func update(t *testing.T, ns, name string, mutate func(*ragv1.RAGService)) {
	t.Helper()
	NewWithT(t).Eventually(func() error {
		svc := &ragv1.RAGService{}
		if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, svc); err != nil {
			return err
		}
		mutate(svc)
		return k8sClient.Update(context.Background(), svc)
	}, 10*time.Second, 100*time.Millisecond).Should(Succeed())
}

// annotate sets a command annotation to a fresh token, as kubectl rag does,
// and returns the token.
func annotate(t *testing.T, ns, name, key string) string {
	token := freshToken()
	setToken(t, ns, name, key, token)
	return token
}

// setToken sets an annotation to a given value (a token kept in Git).
func setToken(t *testing.T, ns, name, key, token string) {
	update(t, ns, name, func(s *ragv1.RAGService) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[key] = token
	})
}

var tokens atomic.Int64

// freshToken is a token no test used before.
func freshToken() string {
	return fmt.Sprintf("%s-%d", time.Now().UTC().Format(time.RFC3339Nano), tokens.Add(1))
}

func condition(svc *ragv1.RAGService, t string) *metav1.Condition {
	return apimeta.FindStatusCondition(svc.Status.Conditions, t)
}

// conditionIs checks a condition's status and reason ("" matches any reason).
func conditionIs(g Gomega, svc *ragv1.RAGService, t string, status metav1.ConditionStatus, reason string) {
	c := condition(svc, t)
	g.Expect(c).NotTo(BeNil(), "condition %s missing; conditions: %+v", t, svc.Status.Conditions)
	g.Expect(c.Status).To(Equal(status), "condition %s: %+v", t, c)
	if reason != "" {
		g.Expect(c.Reason).To(Equal(reason), "condition %s: %+v", t, c)
	}
}

// events returns the reasons of the events recorded for a RAGService, oldest first.
func eventReasons(g Gomega, ns, name string) []string {
	list := &corev1.EventList{}
	g.Expect(k8sClient.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "RAGService" && e.InvolvedObject.Name == name {
			out = append(out, e.Reason)
		}
	}
	return out
}

func args(d *appsv1.Deployment) []string { return d.Spec.Template.Spec.Containers[0].Args }

// waitHealthy waits until the service is Ready with every stable pod ready.
func waitHealthy(t *testing.T, ns, name string, within time.Duration) *ragv1.RAGService {
	t.Helper()
	var svc *ragv1.RAGService
	NewWithT(t).Eventually(func(g Gomega) {
		svc = get(g, ns, name)
		g.Expect(svc.Status.ObservedGeneration).To(Equal(svc.Generation))
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhaseHealthy), "status: %+v\nstable Deployment: %s", svc.Status, describeDeployment(ns, name+"-"+svc.Status.StableRevision))
		conditionIs(g, svc, ragv1.ConditionReady, metav1.ConditionTrue, "")
	}, within, 100*time.Millisecond).Should(Succeed())
	return svc
}

// describeDeployment is a Deployment's spec size and status, for failure messages.
func describeDeployment(ns, name string) string {
	d := &appsv1.Deployment{}
	if err := k8sClient.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d); err != nil {
		return err.Error()
	}
	return fmt.Sprintf("generation %d replicas %d revision %s status %+v", d.Generation, *d.Spec.Replicas, d.Spec.Template.Labels[ragv1.LabelRevision], d.Status)
}

func keyOf(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

// revisionDeployment is the Deployment of the revision that status says
// plays role (stable or canary) for RAGService name.
func revisionDeployment(g Gomega, ns, name, role string) *appsv1.Deployment {
	svc := get(g, ns, name)
	rev := svc.Status.StableRevision
	if role == ragv1.TrackCanary {
		rev = svc.Status.CanaryRevision
	}
	g.Expect(rev).NotTo(BeEmpty(), "no %s revision: %+v", role, svc.Status)
	return getDeployment(g, ns, name+"-"+rev)
}

// stableDeployment and canaryDeployment are the Deployments of the stable
// and canary revisions.
func stableDeployment(g Gomega, ns, name string) *appsv1.Deployment {
	return revisionDeployment(g, ns, name, ragv1.TrackStable)
}

func canaryDeployment(g Gomega, ns, name string) *appsv1.Deployment {
	return revisionDeployment(g, ns, name, ragv1.TrackCanary)
}

// canaryGone is true when no canary runs and no Deployment of the service
// runs a revision other than stable's or the retiring one's.
func canaryGone(ns, name string) bool {
	svc := &ragv1.RAGService{}
	if err := k8sClient.Get(context.Background(), keyOf(ns, name), svc); err != nil || svc.Status.CanaryRevision != "" {
		return false
	}
	keep := map[string]bool{svc.Status.StableRevision: true}
	if r := svc.Status.Retiring; r != nil {
		keep[r.Revision] = true
	}
	deps := &appsv1.DeploymentList{}
	if err := k8sClient.List(context.Background(), deps, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: name}); err != nil {
		return false
	}
	for _, d := range deps.Items {
		if !keep[d.Spec.Template.Labels[ragv1.LabelRevision]] {
			return false
		}
	}
	return true
}

// podUIDs are the UIDs of the pods of revision, not terminating, sorted.
func podUIDs(g Gomega, ns, revision string) []string {
	pods := &corev1.PodList{}
	g.Expect(k8sClient.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelRevision: revision})).To(Succeed())
	var out []string
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, string(p.UID))
		}
	}
	sort.Strings(out)
	return out
}
