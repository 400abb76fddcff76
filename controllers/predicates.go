package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/observe"
)

// commandAnnotations are the manual commands on a RAGService (tokens).
var commandAnnotations = []string{ragv1.AnnotationPromote, ragv1.AnnotationPromoteFull, ragv1.AnnotationAbort, ragv1.AnnotationRetry, ragv1.AnnotationAcceptSpace}

// commandGiven passes an update that sets a command annotation or changes its
// value (a new token). Any other annotation (kubectl apply's last-applied
// configuration, a GitOps tool's bookkeeping) passes nothing, and neither does
// the removal of a command: a removed token asks for nothing (the operator
// never removes one itself).
var commandGiven = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		if e.ObjectOld == nil || e.ObjectNew == nil {
			return false
		}
		old, cur := e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()
		for _, k := range commandAnnotations {
			if v, ok := cur[k]; ok {
				if was, had := old[k]; !had || was != v {
					return true
				}
			}
		}
		return false
	},
}

// podMoved passes what a pod event changes of what a pass reads of it:
// its creation and deletion, and an update of its readiness, phase, IP,
// revision or deletion. A pod's other status updates pass nothing.
var podMoved = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*corev1.Pod)
		cur, okCur := e.ObjectNew.(*corev1.Pod)
		if !okOld || !okCur {
			return false
		}
		return observe.PodReady(old) != observe.PodReady(cur) || old.Status.Phase != cur.Status.Phase ||
			old.Status.PodIP != cur.Status.PodIP || (old.DeletionTimestamp == nil) != (cur.DeletionTimestamp == nil) ||
			old.Labels[ragv1.LabelRevision] != cur.Labels[ragv1.LabelRevision]
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
}

// ragServiceChanged is the RAGService watch's filter: spec edits (a new
// generation) and manual commands. Status writes, label and foreign annotation
// edits reconcile nothing.
var ragServiceChanged = predicate.Or(predicate.GenerationChangedPredicate{}, commandGiven)
