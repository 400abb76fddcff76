package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
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
	// Read your own writes: a cached read waits until the cache has seen
	// every write of the manager that started before it. The applies of a
	// pass queue the next pass at once, before the cache has the status the
	// pass wrote; read from the cache as it was, that pass decided again from
	// the older rollout memory and its status write was refused (409), or,
	// acting without writing first, acted on a memory older than its own
	// last decision. (controller-runtime's option, experimental in v0.25; it
	// replaces the operator's own ownWrites. It does not work when a kind is
	// cached in more than one namespace: the manager caches cluster-wide, or,
	// in tests, one namespace.)
	o.Client.Cache.EnableReadYourWritesConsistency = ptr.To(true)
}

// keepOwnApplyEntry trims an object's managedFields to the operator's apply
// entry before the cache stores it.
func keepOwnApplyEntry(in any) (any, error) {
	if obj, ok := in.(metav1.Object); ok {
		obj.SetManagedFields(skipapply.OwnApplyEntry(obj.GetManagedFields(), FieldOwner))
	}
	return in, nil
}

// instanceIndex indexes the cached Pods, Deployments and ControllerRevisions by their
// app.kubernetes.io/instance label, so that listing one service's objects
// reads its own and not every object of its namespace. (Label matching over a
// namespace of a thousand services' pods and revisions, on every pass of each,
// took half of the manager's CPU during a rollout of them all.)
const instanceIndex = "metadata.labels.app.kubernetes.io/instance"

// indexByInstance registers instanceIndex.
func indexByInstance(ctx context.Context, indexer client.FieldIndexer) error {
	byInstance := func(o client.Object) []string {
		if v, ok := o.GetLabels()[ragv1.LabelInstance]; ok {
			return []string{v}
		}
		return nil
	}
	for _, obj := range []client.Object{&corev1.Pod{}, &appsv1.ControllerRevision{}, &appsv1.Deployment{}} {
		if err := indexer.IndexField(ctx, obj, instanceIndex, byInstance); err != nil {
			return fmt.Errorf("indexing %T by %s: %w", obj, ragv1.LabelInstance, err)
		}
	}
	return nil
}

// ofInstance lists, through instanceIndex, the objects of one service only.
func ofInstance(svc *ragv1.RAGService) client.MatchingFields {
	return client.MatchingFields{instanceIndex: svc.Name}
}
