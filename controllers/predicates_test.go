package controllers

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

func TestRAGServiceChangedPredicate(t *testing.T) {
	obj := func(gen int64, ann map[string]string) *ragv1.RAGService {
		return &ragv1.RAGService{ObjectMeta: metav1.ObjectMeta{Name: "docs", Generation: gen, Annotations: ann}}
	}
	lastApplied := map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}
	promote := map[string]string{ragv1.AnnotationPromote: "true"}
	cases := []struct {
		name     string
		old, cur *ragv1.RAGService
		want     bool
	}{
		{"spec edit", obj(1, nil), obj(2, nil), true},
		{"status write", obj(1, nil), obj(1, nil), false},
		{"kubectl apply's annotation", obj(1, nil), obj(1, lastApplied), false},
		{"foreign annotation changed", obj(1, map[string]string{"a": "1"}), obj(1, map[string]string{"a": "2"}), false},
		{"promote set", obj(1, lastApplied), obj(1, map[string]string{ragv1.AnnotationPromote: "true", "kubectl.kubernetes.io/last-applied-configuration": "{}"}), true},
		{"abort set", obj(1, nil), obj(1, map[string]string{ragv1.AnnotationAbort: ""}), true},
		{"retry set", obj(1, nil), obj(1, map[string]string{ragv1.AnnotationRetry: "true"}), true},
		{"promote given again with another value", obj(1, promote), obj(1, map[string]string{ragv1.AnnotationPromote: "again"}), true},
		{"promote unchanged, foreign changed", obj(1, promote), obj(1, map[string]string{ragv1.AnnotationPromote: "true", "a": "b"}), false},
		{"promote removed (a removed token asks for nothing)", obj(1, promote), obj(1, nil), false},
		{"promote-full set", obj(1, nil), obj(1, map[string]string{ragv1.AnnotationPromoteFull: "t1"}), true},
		{"promote-full given a new token", obj(1, map[string]string{ragv1.AnnotationPromoteFull: "t1"}), obj(1, map[string]string{ragv1.AnnotationPromoteFull: "t2"}), true},
		{"promote re-applied with the same token (a GitOps sync)", obj(1, promote), obj(1, promote), false},
		{"lookalike annotation", obj(1, nil), obj(1, map[string]string{"rag.ragops.io/promoted": "true"}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ragServiceChanged.Update(event.UpdateEvent{ObjectOld: c.old, ObjectNew: c.cur}); got != c.want {
				t.Errorf("Update = %v, want %v", got, c.want)
			}
		})
	}
	if !ragServiceChanged.Create(event.CreateEvent{Object: obj(1, nil)}) {
		t.Error("a created RAGService is not reconciled")
	}
	if !ragServiceChanged.Delete(event.DeleteEvent{Object: obj(1, nil)}) {
		t.Error("a deleted RAGService is not reconciled")
	}
}

func TestPodMovedPredicate(t *testing.T) {
	pod := func(ready bool, mutate ...func(*corev1.Pod)) *corev1.Pod {
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "docs-stable-x", Labels: map[string]string{ragv1.LabelRevision: "a"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}}
		for _, m := range mutate {
			m(p)
		}
		return p
	}
	for _, c := range []struct {
		name     string
		old, cur *corev1.Pod
		want     bool
	}{
		{"turned ready", pod(false), pod(true), true},
		{"turned not ready", pod(true), pod(false), true},
		{"terminating", pod(true), pod(true, func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }), true},
		{"got its IP", pod(false, func(p *corev1.Pod) { p.Status.PodIP = "" }), pod(false), true},
		{"finished", pod(true), pod(false, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }), true},
		{"another revision", pod(true), pod(true, func(p *corev1.Pod) { p.Labels[ragv1.LabelRevision] = "b" }), true},
		{"a status detail only", pod(true), pod(true, func(p *corev1.Pod) { p.Status.Message = "x" }), false},
		{"a foreign label", pod(true), pod(true, func(p *corev1.Pod) { p.Labels["team"] = "search" }), false},
	} {
		if got := podMoved.Update(event.UpdateEvent{ObjectOld: c.old, ObjectNew: c.cur}); got != c.want {
			t.Errorf("%s: Update = %v, want %v", c.name, got, c.want)
		}
	}
	if !podMoved.Create(event.CreateEvent{Object: pod(false)}) || !podMoved.Delete(event.DeleteEvent{Object: pod(true)}) {
		t.Error("a created or deleted pod is not news")
	}
}
