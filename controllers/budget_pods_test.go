package controllers

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// The budget is divided by every pod the service's Deployments may run; the
// stable revision's Deployment counts at least spec.replicas (it may not have
// grown yet), any other revision's at its own size.
func TestAllowedPods(t *testing.T) {
	dep := func(rev string, replicas int32) appsv1.Deployment {
		d := appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "docs-" + rev}}
		d.Spec.Replicas = ptr.To(replicas)
		d.Spec.Template.Labels = map[string]string{ragv1.LabelRevision: rev}
		return d
	}
	svc := func(replicas int32, stable string) *ragv1.RAGService {
		s := &ragv1.RAGService{}
		s.Spec.Replicas = ptr.To(replicas)
		s.Status.StableRevision = stable
		return s
	}
	for _, c := range []struct {
		name string
		svc  *ragv1.RAGService
		deps []appsv1.Deployment
		want int
	}{
		{"nothing yet: the stable Deployment comes next", svc(4, ""), nil, 4},
		{"stable at full size: 4 + 25% surge", svc(4, "aaa"), []appsv1.Deployment{dep("aaa", 4)}, 5},
		{"stable still small counts spec.replicas", svc(4, "aaa"), []appsv1.Deployment{dep("aaa", 1)}, 5},
		{"a canary of 1 beside stable", svc(4, "aaa"), []appsv1.Deployment{dep("aaa", 4), dep("bbb", 1)}, 5 + 2},
		{"handover: both at full size", svc(4, "aaa"), []appsv1.Deployment{dep("aaa", 4), dep("bbb", 4)}, 10},
		{"after the handover the retiring one still counts", svc(4, "bbb"), []appsv1.Deployment{dep("aaa", 4), dep("bbb", 4)}, 10},
		{"no Deployment of stable's revision: stable comes next", svc(2, "ccc"), []appsv1.Deployment{dep("aaa", 1)}, 2 + 2},
	} {
		if got := allowedPods(c.svc, c.deps); got != c.want {
			t.Errorf("%s: allowedPods = %d, want %d", c.name, got, c.want)
		}
	}
	// A Deployment that stops surging (Recreate) counts no surge.
	d := dep("aaa", 4)
	d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType
	if got := allowedPods(svc(4, "aaa"), []appsv1.Deployment{d}); got != 4 {
		t.Errorf("Recreate: allowedPods = %d, want 4", got)
	}
}
