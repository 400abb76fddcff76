package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/skipapply"
)

// OwnedSelector selects what the operator creates: every owned object and
// every pod of a track carries both labels (a user's pod labels never
// override them).
var OwnedSelector = labels.SelectorFromSet(labels.Set{
	ragv1.LabelName:    ragv1.NameEmbedServer,
	ragv1.LabelManaged: "rag-operator",
})

// ConfigureCache limits the manager's informers to what the operator owns or
// reads, so its memory grows with its own objects only, not with the cluster:
//   - Deployments, Services, PodDisruptionBudgets, ControllerRevisions and Pods
//     only when OwnedSelector selects them;
//   - of the applied kinds, only the operator's own managedFields entry (what
//     skipapply needs), of everything else none;
//   - Secrets and ConfigMaps (the ones a spec names) never whole: the watches
//     cache their metadata, and a read goes to the API server (the
//     controller's APIReader), so no key, and no other app's data, sits in
//     memory.
//
// RAGServices and HorizontalPodAutoscalers (few, and read whole) are cached
// cluster-wide.
func ConfigureCache(o *ctrl.Options) {
	applied := cache.ByObject{Label: OwnedSelector, Transform: keepOwnApplyEntry}
	owned := cache.ByObject{Label: OwnedSelector}
	o.Cache.DefaultTransform = cache.TransformStripManagedFields()
	o.Cache.ByObject = map[client.Object]cache.ByObject{
		&appsv1.Deployment{}:            applied,
		&corev1.Service{}:               applied,
		&policyv1.PodDisruptionBudget{}: applied,
		&appsv1.ControllerRevision{}:    owned,
		&corev1.Pod{}:                   owned,
	}
	if o.Client.Cache == nil {
		o.Client.Cache = &client.CacheOptions{}
	}
	o.Client.Cache.DisableFor = append(o.Client.Cache.DisableFor, &corev1.Secret{}, &corev1.ConfigMap{})
}

// keepOwnApplyEntry trims an object's managedFields to the operator's apply
// entry before the cache stores it.
func keepOwnApplyEntry(in any) (any, error) {
	if obj, ok := in.(metav1.Object); ok {
		obj.SetManagedFields(skipapply.OwnApplyEntry(obj.GetManagedFields(), FieldOwner))
	}
	return in, nil
}
