package controllers

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/rollout"
)

// Condition reasons, CamelCase.
const (
	ReasonSucceeded         = "Succeeded"
	ReasonProgressing       = "Progressing"
	ReasonReconcileFailed   = "ReconcileFailed"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonMinimumAvailable  = "MinimumReplicasAvailable"
	ReasonBelowMinimum      = "MinimumReplicasUnavailable"
	ReasonDeploymentMissing = "DeploymentMissing"
	ReasonDeadlineExceeded  = "ProgressDeadlineExceeded"
)

// summarize derives the counts, the conditions and the phase from what the
// reconcile observed and the planner decided. Ready summarises; Reconciling and
// Stalled exist only while true (kstatus), so `kubectl wait
// --for=condition=Ready` and kstatus-based GitOps health checks both work.
func summarize(s *scope, reconcileErr error) {
	st := &s.obj.Status
	gen := s.obj.Generation
	st.Selector = labels.SelectorFromSet(podtemplate.SelectorLabels(s.obj.Name)).String()

	st.Replicas, st.ReadyReplicas = 0, 0
	for _, d := range []*appsv1.Deployment{s.stable, s.canary} {
		if d != nil {
			st.Replicas += d.Status.Replicas
			st.ReadyReplicas += d.Status.ReadyReplicas
		}
	}

	if s.desired == nil {
		// The template could not be built: reconcileTemplate marked Stalled.
		st.Conditions = removeCondition(st.Conditions, ragv1.ConditionReconciling)
		if cond := apimeta.FindStatusCondition(st.Conditions, ragv1.ConditionStalled); cond != nil {
			st.Conditions = setCondition(st.Conditions, gen, ragv1.ConditionReady, metav1.ConditionFalse, cond.Reason, cond.Message)
		}
		st.Phase = ragv1.PhaseDegraded
		return
	}
	st.Conditions = setAvailable(st.Conditions, gen, s.stable, replicasOf(s.obj))

	phase, reason, msg := ragv1.PhasePending, ReasonProgressing, "waiting for the first reconcile to finish"
	if st.Phase != "" {
		// No decision this pass (an error came first): the last one stands.
		phase, reason, msg = st.Phase, ReasonReconcileFailed, "reconcile failed before the rollout was planned"
	}
	if s.plan != nil {
		phase, reason, msg = s.plan.Phase, s.plan.Reason, s.plan.Message
	}
	if rb := st.Rollback; rb != nil && phase == ragv1.PhaseRolledBack {
		st.Conditions = setCondition(st.Conditions, gen, ragv1.ConditionRolledBack, metav1.ConditionTrue, rb.Reason,
			fmt.Sprintf("revision %s was rolled back: %s", rb.Revision, rb.Message))
	} else {
		st.Conditions = removeCondition(st.Conditions, ragv1.ConditionRolledBack)
	}
	if (phase == ragv1.PhaseProgressing || phase == ragv1.PhaseHealthy) && stableDeadlineExceeded(s.stable) {
		phase, reason, msg = ragv1.PhaseDegraded, ReasonDeadlineExceeded, "stable Deployment exceeded its progress deadline"
	}
	if s.secretProblem != "" && phase == ragv1.PhaseHealthy {
		phase, reason, msg = ragv1.PhaseDegraded, ReasonSecretNotFound, s.secretProblem
	}

	switch phase {
	case ragv1.PhaseProgressing, ragv1.PhasePaused, ragv1.PhasePending:
		st.Conditions = setCondition(st.Conditions, gen, ragv1.ConditionReconciling, metav1.ConditionTrue, reason, msg)
		st.Conditions = removeCondition(st.Conditions, ragv1.ConditionStalled)
	case ragv1.PhaseDegraded, ragv1.PhaseRolledBack:
		// A failed or rolled-back rollout needs a person (or a new spec):
		// kstatus reports it as failed instead of waiting forever.
		st.Conditions = removeCondition(st.Conditions, ragv1.ConditionReconciling)
		st.Conditions = setStalled(st.Conditions, gen, reason, msg)
	default:
		st.Conditions = removeCondition(st.Conditions, ragv1.ConditionReconciling)
		st.Conditions = removeCondition(st.Conditions, ragv1.ConditionStalled)
	}
	if reconcileErr != nil {
		st.Conditions = setCondition(st.Conditions, gen, ragv1.ConditionReconciling, metav1.ConditionTrue, ReasonReconcileFailed, reconcileErr.Error())
	}
	st.Conditions = setReady(st.Conditions, gen, reconcileErr, s.secretProblem)
	if apimeta.IsStatusConditionTrue(st.Conditions, ragv1.ConditionReady) {
		phase = ragv1.PhaseHealthy
	} else if phase == ragv1.PhaseHealthy {
		phase = ragv1.PhaseProgressing
	}
	st.Phase = phase
}

// setReady summarises the other conditions into Ready.
func setReady(conds []metav1.Condition, gen int64, reconcileErr error, secretProblem string) []metav1.Condition {
	set := func(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
		return setCondition(conds, gen, ragv1.ConditionReady, status, reason, msg)
	}
	if reconcileErr != nil {
		return set(metav1.ConditionFalse, ReasonReconcileFailed, reconcileErr.Error())
	}
	if secretProblem != "" {
		return set(metav1.ConditionFalse, ReasonSecretNotFound, secretProblem)
	}
	for _, t := range []string{ragv1.ConditionStalled, ragv1.ConditionRolledBack, ragv1.ConditionReconciling} {
		if c := apimeta.FindStatusCondition(conds, t); c != nil && c.Status == metav1.ConditionTrue {
			return set(metav1.ConditionFalse, c.Reason, c.Message)
		}
	}
	if c := apimeta.FindStatusCondition(conds, ragv1.ConditionAvailable); c == nil || c.Status != metav1.ConditionTrue {
		reason, msg := ReasonBelowMinimum, "stable track is not available"
		if c != nil {
			reason, msg = c.Reason, c.Message
		}
		return set(metav1.ConditionFalse, reason, msg)
	}
	return set(metav1.ConditionTrue, ReasonSucceeded, "all replicas of the stable revision are ready")
}

// setAvailable is True when the stable track serves with at least spec.replicas
// ready pods.
func setAvailable(conds []metav1.Condition, gen int64, stable *appsv1.Deployment, replicas int32) []metav1.Condition {
	if stable == nil {
		return setCondition(conds, gen, ragv1.ConditionAvailable, metav1.ConditionFalse, ReasonDeploymentMissing, "stable Deployment does not exist yet")
	}
	ready := stable.Status.ReadyReplicas
	if ready >= replicas {
		return setCondition(conds, gen, ragv1.ConditionAvailable, metav1.ConditionTrue, ReasonMinimumAvailable,
			fmt.Sprintf("%d of %d stable replicas ready", ready, replicas))
	}
	return setCondition(conds, gen, ragv1.ConditionAvailable, metav1.ConditionFalse, ReasonBelowMinimum,
		fmt.Sprintf("%d of %d stable replicas ready", ready, replicas))
}

// setStalled marks a state that needs a person: a bad spec or a missed deadline.
func setStalled(conds []metav1.Condition, gen int64, reason, msg string) []metav1.Condition {
	return setCondition(conds, gen, ragv1.ConditionStalled, metav1.ConditionTrue, reason, msg)
}

func setCondition(conds []metav1.Condition, gen int64, t string, status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
	apimeta.SetStatusCondition(&conds, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen})
	return conds
}

// rolledOut is true when every pod of a Deployment runs its
// current template and is ready; otherwise the message says what is missing.
func rolledOut(d *appsv1.Deployment, revision string) (bool, string) {
	if d == nil {
		return false, "stable Deployment does not exist yet"
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return false, fmt.Sprintf("waiting for the stable Deployment to observe revision %s", revision)
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("rolling out revision %s: %d of %d replicas updated", revision, st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("rolling out revision %s: %d old replicas pending termination", revision, st.Replicas-st.UpdatedReplicas)
	case st.ReadyReplicas < want:
		return false, fmt.Sprintf("rolling out revision %s: %d of %d replicas ready", revision, st.ReadyReplicas, want)
	}
	return true, fmt.Sprintf("revision %s rolled out", revision)
}

func stableDeadlineExceeded(d *appsv1.Deployment) bool {
	if d == nil {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return true
		}
	}
	return false
}

// recordTransitions emits an event when Ready flips. A flip the planner
// already explained with its own event (a canary started, a rollback) is not
// told twice.
func (r *RAGServiceReconciler) recordTransitions(before, after *ragv1.RAGService, plan *rollout.Plan) {
	if r.Recorder == nil {
		return
	}
	old := apimeta.FindStatusCondition(before.Status.Conditions, ragv1.ConditionReady)
	cur := apimeta.FindStatusCondition(after.Status.Conditions, ragv1.ConditionReady)
	if cur == nil || (old != nil && old.Status == cur.Status) {
		return
	}
	if cur.Status == metav1.ConditionTrue {
		r.Recorder.Eventf(after, nil, corev1.EventTypeNormal, "Ready", "Reconcile", "%s", cur.Message)
		return
	}
	if plan != nil {
		for _, e := range plan.Events {
			if e.Reason == cur.Reason || plan.Reason == cur.Reason {
				return
			}
		}
	}
	eventType := corev1.EventTypeWarning
	if cur.Reason == ReasonProgressing || (plan != nil && cur.Reason == plan.Reason) {
		eventType = corev1.EventTypeNormal
	}
	r.Recorder.Eventf(after, nil, eventType, cur.Reason, "Reconcile", "%s", cur.Message)
}

// fromApplyResult reads the object the API server returned into an apply
// configuration (client.Apply fills it from the response).
func fromApplyResult[T any](applied any) (*T, error) {
	b, err := json.Marshal(applied)
	if err != nil {
		return nil, fmt.Errorf("reading apply result: %w", err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("reading apply result: %w", err)
	}
	return out, nil
}

func removeCondition(conds []metav1.Condition, t string) []metav1.Condition {
	apimeta.RemoveStatusCondition(&conds, t)
	return conds
}
