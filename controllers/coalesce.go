package controllers

import (
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// DefaultProgressWindow is how long the status may hold back counts and
// messages that moved while a service is Reconciling (see progressDetailOnly).
const DefaultProgressWindow = 10 * time.Second

// progressDetailOnly says whether cur differs from written, the status last
// written, only in what a person reads while the service is on its way: the
// pod counts (replicas, readyReplicas, effectiveWeight) and the conditions'
// messages, with Reconciling True in both. Such a status is written with the
// next change that matters, or once the progress window is over: while pods
// start one by one, each count is a state of a few seconds, and writing each
// cost a status write per pod and track.
//
// Everything a machine reads is never held back: the rollout memory (it is
// written before anything acts on it), observedGeneration, the phase, the
// selector, and each condition's presence, status and reason (kstatus,
// `kubectl wait`, Argo CD's health check, the printer columns Ready and
// Phase), unless a Deployment's status lags (mayHoldBack). Nor is a settled
// status (no Reconciling): its counts are written at once, so the end state is
// always the truth.
func progressDetailOnly(written, cur ragv1.RAGServiceStatus) bool {
	if !bothReconciling(written, cur) {
		return false
	}
	return sameStatus(withoutDetails(written), withoutDetails(cur))
}

// withoutDetails is st with its pod counts and conditions' messages cleared
// and the conditions of the types drop removed: what is left must match for
// a difference to be a detail.
func withoutDetails(st ragv1.RAGServiceStatus, drop ...string) ragv1.RAGServiceStatus {
	out := *st.DeepCopy()
	out.Replicas, out.ReadyReplicas, out.EffectiveWeight = 0, 0, 0
	for _, t := range drop {
		apimeta.RemoveStatusCondition(&out.Conditions, t)
	}
	for i := range out.Conditions {
		out.Conditions[i].Message = ""
	}
	return out
}

// mayHoldBack says whether cur, the summary of a pass, may wait for a later
// pass instead of being written now over written, the status last written:
// when it moved in progress details only (progressDetailOnly), or, with the
// service Reconciling in both, when the pass saw a Deployment whose status has
// yet to catch up with its pods (observe.Settling). The Deployment
// controller's update that ends such a moment is on its way and brings the
// next pass, so a pod reported ready before its Deployment counts it (which
// flips Available one pass ahead of Ready) is written with what that update
// changes, not apart. Both wait within the progress window only (a lag that
// moved only what pods move, lagWindows of it: holdWindow); a settled status
// is never held. Nor is a status that differs in nothing: there is nothing to
// hold, and a pass that held it would start the window's clock, so that the
// first real change after it was written at once.
func mayHoldBack(written, cur ragv1.RAGServiceStatus, settling bool) bool {
	return bothReconciling(written, cur) && !sameStatus(written, cur) && (settling || progressDetailOnly(written, cur))
}

// outlastsWindow says whether cur may wait past the progress window, and
// without starting its clock: when it differs from written, with the service
// Reconciling in both, in status.replicas alone, grown by pods that exist but
// serve no one yet (a pod being scheduled, pulling its image or loading its
// model: cur counts more pods than ready ones). Such a count is written with
// the next write that matters, which always comes for a pod not ready: it
// turns ready (readyReplicas and the messages move), the
// progress deadline passes (a canary is rolled back or held, a stable
// Deployment reports it: Stalled), or the service settles. Without this,
// every pod slower to start than the window cost one status write of a number
// few read mid-rollout (no printer column; an HPA reads it, through the scale
// subresource, only to average Object and External metrics per pod, and while
// Reconciling it counts both tracks anyway), and the window's length was a
// bet on pod start times. A count that only caught up (the Deployment's
// status.replicas reaching pods the pod watch already saw ready) or fell has
// no such pod to bring the next write: it is a detail like any other, held
// within the window only.
func outlastsWindow(written, cur ragv1.RAGServiceStatus) bool {
	if !bothReconciling(written, cur) || cur.Replicas <= written.Replicas || cur.Replicas <= cur.ReadyReplicas {
		return false
	}
	a := *cur.DeepCopy()
	a.Replicas = written.Replicas
	return sameStatus(written, a)
}

// lagWindows is how many progress windows a summary may wait while a
// Deployment's status lags its pods and what moved is what the pods moved
// (podsMovedOnly): what waits is what the Deployment itself does not show yet
// either, so the status is no staler than `kubectl get deployment`. The
// Deployment controller of a loaded cluster is that far behind the pod watch:
// 11 s on the benchmark cluster with 100 services created at once, about a
// minute with 1,000 (its client's rate limit, 20 requests a second by
// default, sets the pace). Two minutes at the default window; past that the
// pods' view is written anyway, so that a Deployment controller that is down
// does not hide ready pods for longer.
const lagWindows = 12

// holdWindow is how long a summary held back may wait, from the first pass
// that held it: the progress window, or lagWindows of it while a lagging
// Deployment explains the wait (podsAhead); a window that holds nothing back
// (zero or less) stays so.
func holdWindow(window time.Duration, podsAhead bool) time.Duration {
	if podsAhead && window > 0 {
		return lagWindows * window
	}
	return window
}

// podsMovedOnly says whether cur differs from written, with the service
// Reconciling in both, only in what the pod watch moves ahead of a
// Deployment's status: the counts, the conditions' messages and the
// Available condition. Anything else (a Secret found, a step, a reason of
// Ready) has its own cause, and a lagging Deployment is no reason to hold it
// longer than the window.
func podsMovedOnly(written, cur ragv1.RAGServiceStatus) bool {
	if !bothReconciling(written, cur) {
		return false
	}
	return sameStatus(withoutDetails(written, ragv1.ConditionAvailable), withoutDetails(cur, ragv1.ConditionAvailable))
}

func bothReconciling(written, cur ragv1.RAGServiceStatus) bool {
	return apimeta.IsStatusConditionTrue(written.Conditions, ragv1.ConditionReconciling) &&
		apimeta.IsStatusConditionTrue(cur.Conditions, ragv1.ConditionReconciling)
}

// heldBack remembers, per RAGService, since when its status holds back
// progress details; lost on restart, when the next such pass starts over.
type heldBack struct {
	mu    sync.Mutex
	since map[types.NamespacedName]time.Time
}

// hold returns how much longer the details of key may be held back at now:
// the window from the first pass that held them back; zero or less means
// write them now.
func (h *heldBack) hold(key types.NamespacedName, now time.Time, window time.Duration) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since == nil {
		h.since = map[types.NamespacedName]time.Time{}
	}
	since, ok := h.since[key]
	if !ok {
		since = now
		h.since[key] = now
	}
	return since.Add(window).Sub(now)
}

// done forgets key: its status is written (or needs no write).
func (h *heldBack) done(key types.NamespacedName) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.since, key)
}
