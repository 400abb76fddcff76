package controllers

import (
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// commandAnnotations are the one-shot manual commands on a RAGService.
var commandAnnotations = []string{ragv1.AnnotationPromote, ragv1.AnnotationAbort, ragv1.AnnotationRetry, ragv1.AnnotationAcceptSpace}

// commandGiven passes an update that sets a one-shot command annotation or
// changes its value. Any other annotation (kubectl apply's last-applied
// configuration, a GitOps tool's bookkeeping) passes nothing, and neither does
// the removal of a command: the operator removes it itself once it acted, in
// the pass that acted, and that pass writes the status that follows from it.
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

// ragServiceChanged is the RAGService watch's filter: spec edits (a new
// generation) and manual commands. Status writes, label and foreign annotation
// edits reconcile nothing.
var ragServiceChanged = predicate.Or(predicate.GenerationChangedPredicate{}, commandGiven)
