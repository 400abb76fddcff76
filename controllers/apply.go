package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/skipapply"
)

// ownedApplies counts the applies of owned objects the reconciler sent and the
// ones it skipped because the cache showed the object as the last apply left it.
var ownedApplies = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "ragops_owned_applies_total",
	Help: "Server-side applies of owned objects by kind and decision: applied or skipped (nothing changed).",
}, []string{"kind", "decision"})

func init() { metrics.Registry.MustRegister(ownedApplies) }

// applyConfig is a server-side apply configuration of a named object.
type applyConfig interface {
	GetName() *string
	GetKind() *string
}

// applyOwned server-side applies cfg as the operator's field owner, unless the
// cached object shows that the last apply of the same configuration still
// stands (skipapply.Decide). It returns the object as it is now: the server's
// answer to the apply, or the cached object when nothing needed writing.
func applyOwned[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, r *RAGServiceReconciler, owner *ragv1.RAGService, cfg applyConfig) (PT, error) {
	kind, name := *cfg.GetKind(), *cfg.GetName()
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s: %w", kind, name, err)
	}
	desired := skipapply.Hash(data)
	ownerKey := client.ObjectKeyFromObject(owner)
	memKey := skipapply.Key{Kind: kind, Name: name}

	cached := PT(new(T))
	var obs *skipapply.Observed
	switch err := r.Get(ctx, types.NamespacedName{Namespace: owner.Namespace, Name: name}, cached); {
	case err == nil:
		obs = &skipapply.Observed{
			UID:         cached.GetUID(),
			Terminating: !cached.GetDeletionTimestamp().IsZero(),
			Fields:      skipapply.FieldsOf(cached.GetManagedFields(), FieldOwner),
		}
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	reason := skipapply.Decide(desired, r.applied.Get(ownerKey, memKey), obs)
	if reason == skipapply.ReasonUpToDate {
		ownedApplies.WithLabelValues(kind, "skipped").Inc()
		return cached, nil
	}

	ctrl.LoggerFrom(ctx).V(1).Info("Applying", "kind", kind, "name", name, "why", string(reason))
	out := PT(new(T))
	out.SetNamespace(owner.Namespace)
	out.SetName(name)
	if err := r.Patch(ctx, out, client.RawPatch(types.ApplyPatchType, data), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		// What the failed request left is unknown: the next pass applies.
		r.applied.Forget(ownerKey, memKey)
		return nil, err
	}
	ownedApplies.WithLabelValues(kind, "applied").Inc()
	r.applied.Set(ownerKey, memKey, skipapply.Record{
		Hash:   desired,
		UID:    out.GetUID(),
		Fields: skipapply.FieldsOf(out.GetManagedFields(), FieldOwner),
	})
	return out, nil
}
