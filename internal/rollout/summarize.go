package rollout

import (
	"fmt"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Condition reasons set by Summarize (besides the planner's own, which it
// passes through), CamelCase.
const (
	ReasonSucceeded         = "Succeeded"
	ReasonProgressing       = "Progressing"
	ReasonRollingOut        = "RollingOut"
	ReasonReconcileFailed   = "ReconcileFailed"
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonMinimumAvailable  = "MinimumReplicasAvailable"
	ReasonBelowMinimum      = "MinimumReplicasUnavailable"
	ReasonDeploymentMissing = "DeploymentMissing"
	ReasonInvalidSpec       = "InvalidSpec"
)

// Problem is something a person must fix: a reason and a message.
type Problem struct {
	Reason, Message string
}

// Observation is what one reconcile pass observed and decided, for Summarize.
type Observation struct {
	// Generation of the RAGService; conditions carry it.
	Generation int64
	// Now is the time of the pass: a condition that changes its status says
	// it changed then, so two summaries of one pass are equal.
	Now time.Time
	// Replicas is spec.replicas.
	Replicas int32
	// Stable and Canary are the tracks as they stand after the pass applied them.
	Stable, Canary Track
	// Plan is this pass's decision; nil when Decide did not run (the tracks
	// could not be read).
	Plan *Plan
	// Memory is the rollout memory as it is stored after this pass (the plan's,
	// or the previous one when Decide did not run).
	Memory v1alpha1.RolloutStatus
	// SpecProblem is a spec the operator cannot act on until someone edits it
	// (InvalidSpec); nil when the spec is fine.
	SpecProblem *Problem
	// SecretProblem says why the API key Secret is unusable; "" when it is fine.
	SecretProblem string
	// Err is the pass's transient error (the next pass retries); nil when clean.
	Err error
	// Conditions are the conditions as last written.
	Conditions []metav1.Condition
	// SpaceDrift is the space watch's finding that stable serves another
	// space than its fingerprint (reason UpstreamSpaceChanged); nil when not.
	SpaceDrift *Problem
}

// Summary is what the controller writes and records.
type Summary struct {
	Conditions []metav1.Condition
	// Phase is the one-word summary; computed here and nowhere else, and never
	// read back to decide anything.
	Phase v1alpha1.Phase
	// Replicas and ReadyReplicas count the pods of both tracks.
	Replicas, ReadyReplicas int32
	// Events are the plan's transitions, the ignored commands and the condition
	// changes worth telling, in that order, to record once the status is written.
	Events []Event
}

// situation is where the service stands, classified once: the basis of the
// Reconciling, Stalled and RolledBack conditions and of the phase.
type situation struct {
	reconciling *Problem // why the service is still moving; nil when it is not
	stalled     *Problem // why a person must act; nil when none must
	rolledBack  bool
	phase       v1alpha1.Phase
}

// Summarize derives the conditions, the phase and the events of a pass.
// Ready summarises; Reconciling and Stalled exist only while true (kstatus),
// so `kubectl wait --for=condition=Ready` and kstatus-based GitOps health
// checks both work. Events come from the plan and from old vs new conditions,
// as Flux's notifications do: a condition that appears or changes its reason is
// told once, however many passes see it.
func Summarize(o Observation) Summary {
	old := o.Conditions
	conds := make([]metav1.Condition, 0, len(old)+1)
	for _, c := range old {
		conds = append(conds, *c.DeepCopy())
	}
	at := stamp{gen: o.Generation, now: o.Now}
	sit := withSpaceDrift(classify(o), o.SpaceDrift)
	conds = setSpaceDrifted(conds, at, o.SpaceDrift)
	conds = setAvailable(conds, at, o.Stable, o.Replicas)
	conds = setRolledBack(conds, at, sit.rolledBack, o.Memory.Rollback)
	conds = setStalled(conds, at, sit.stalled)
	conds = setReconciling(conds, at, sit.reconciling, o.Err)
	conds = setReady(conds, at, o.Err, o.SecretProblem)
	return Summary{
		Conditions:    conds,
		Phase:         phaseOf(sit.phase, conds),
		Replicas:      o.Stable.pods() + o.Canary.pods(),
		ReadyReplicas: o.Stable.serving() + o.Canary.serving(),
		Events:        events(o, sit, old, conds),
	}
}

// pods is the number of pods of the track: the Deployment's count, and at
// least the ready pods the pod watch already shows. The Deployment
// controller's status.replicas lags the pod watch (by a minute on a cluster
// busy with a thousand services), and a status that counted fewer pods than
// ready ones would tell less than it knows, then cost a write of its own
// when the Deployment caught up.
func (t Track) pods() int32 {
	if !t.Exists {
		return 0
	}
	return max(t.Pods, t.serving())
}

// classify decides, in this order of precedence: a bad spec; no decision this
// pass; a rolled-back or held rollout; a stable Deployment past its own
// progress deadline; a paused or progressing rollout; a stable track still
// rolling out; a Secret problem; healthy.
func classify(o Observation) situation {
	p := o.Plan
	if o.SpecProblem != nil {
		// The spec needs a person. The rollout goes on with what runs (a
		// rollback it makes meanwhile is in status.rollback and its event),
		// but while the desired revision is unknown nothing holds a
		// rolled-back one, so the RolledBack condition is not shown.
		return situation{stalled: o.SpecProblem, phase: v1alpha1.PhaseDegraded}
	}
	if p == nil {
		// No decision this pass: what the last one found to need a person stands.
		sit := situation{phase: v1alpha1.PhaseProgressing}
		if apimeta.FindStatusCondition(o.Conditions, v1alpha1.ConditionReady) == nil {
			sit = situation{reconciling: &Problem{ReasonProgressing, "waiting for the first reconcile to finish"}, phase: v1alpha1.PhasePending}
		}
		if c := apimeta.FindStatusCondition(o.Conditions, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
			sit.stalled, sit.phase = &Problem{c.Reason, c.Message}, v1alpha1.PhaseDegraded
		}
		if c := apimeta.FindStatusCondition(o.Conditions, v1alpha1.ConditionRolledBack); c != nil && c.Status == metav1.ConditionTrue {
			sit.rolledBack, sit.phase = true, v1alpha1.PhaseRolledBack
		}
		return sit
	}
	why := &Problem{p.Reason, p.Message}
	if p.Standing.Reason != "" {
		why = &Problem{p.Standing.Reason, p.Standing.Message}
	}
	switch p.State {
	case StateRolledBack:
		return situation{stalled: why, rolledBack: true, phase: v1alpha1.PhaseRolledBack}
	case StateHeld:
		return situation{stalled: why, phase: v1alpha1.PhaseDegraded}
	}
	if o.Stable.DeadlineExceeded {
		return situation{stalled: &Problem{ReasonProgressDeadlineExceeded, "stable Deployment exceeded its progress deadline"}, phase: v1alpha1.PhaseDegraded}
	}
	switch p.State {
	case StatePaused:
		return situation{reconciling: why, phase: v1alpha1.PhasePaused}
	case StateProgressing:
		return situation{reconciling: why, phase: v1alpha1.PhaseProgressing}
	}
	if st := o.Stable; !st.Exists || st.Revision != p.StableRevision || !st.RolledOut {
		if p.Transition == TransitionNone || p.Transition == TransitionInitialize || p.Transition == TransitionRollingUpdate {
			// Nothing was decided, or only what stable runs (its event says
			// so): say what the stable track is doing, in the words every
			// later pass of the roll uses, so those passes write no status
			// that changes the words alone.
			why = &Problem{ReasonRollingOut, fmt.Sprintf("Rolling out stable revision %s: %d/%d pods ready", p.StableRevision, st.serving(), o.Replicas)}
		}
		return situation{reconciling: why, phase: v1alpha1.PhaseProgressing}
	}
	if o.SecretProblem != "" {
		return situation{stalled: &Problem{ReasonSecretNotFound, o.SecretProblem}, phase: v1alpha1.PhaseDegraded}
	}
	return situation{phase: v1alpha1.PhaseHealthy}
}

// phaseOf is the phase: Healthy exactly when Ready is True.
func phaseOf(p v1alpha1.Phase, conds []metav1.Condition) v1alpha1.Phase {
	if apimeta.IsStatusConditionTrue(conds, v1alpha1.ConditionReady) {
		return v1alpha1.PhaseHealthy
	}
	if p == v1alpha1.PhaseHealthy {
		return v1alpha1.PhaseProgressing
	}
	return p
}

// setAvailable is True when the stable track serves with at least spec.replicas
// ready pods.
func setAvailable(conds []metav1.Condition, at stamp, stable Track, replicas int32) []metav1.Condition {
	if !stable.Exists {
		return set(conds, at, v1alpha1.ConditionAvailable, metav1.ConditionFalse, ReasonDeploymentMissing, "stable Deployment does not exist yet")
	}
	ready := stable.serving()
	msg := fmt.Sprintf("%d of %d stable replicas ready", ready, replicas)
	if ready >= replicas {
		return set(conds, at, v1alpha1.ConditionAvailable, metav1.ConditionTrue, ReasonMinimumAvailable, msg)
	}
	return set(conds, at, v1alpha1.ConditionAvailable, metav1.ConditionFalse, ReasonBelowMinimum, msg)
}

// setRolledBack is True while the rollout holds after a rollback.
func setRolledBack(conds []metav1.Condition, at stamp, on bool, rb *v1alpha1.RollbackStatus) []metav1.Condition {
	if !on || rb == nil {
		return remove(conds, v1alpha1.ConditionRolledBack)
	}
	return set(conds, at, v1alpha1.ConditionRolledBack, metav1.ConditionTrue, rb.Reason,
		fmt.Sprintf("revision %s was rolled back: %s", rb.Revision, rb.Message))
}

// setStalled marks a state that needs a person: a bad spec, a held or
// rolled-back rollout, a missed deadline. Absent otherwise.
func setStalled(conds []metav1.Condition, at stamp, why *Problem) []metav1.Condition {
	if why == nil {
		return remove(conds, v1alpha1.ConditionStalled)
	}
	return set(conds, at, v1alpha1.ConditionStalled, metav1.ConditionTrue, why.Reason, why.Message)
}

// setReconciling is True while the service moves toward its spec, and while a
// transient error makes the operator try again. Absent otherwise.
func setReconciling(conds []metav1.Condition, at stamp, why *Problem, err error) []metav1.Condition {
	switch {
	case err != nil:
		return set(conds, at, v1alpha1.ConditionReconciling, metav1.ConditionTrue, ReasonReconcileFailed, err.Error())
	case why != nil:
		return set(conds, at, v1alpha1.ConditionReconciling, metav1.ConditionTrue, why.Reason, why.Message)
	}
	return remove(conds, v1alpha1.ConditionReconciling)
}

// setReady summarises the other conditions into Ready: False with the reason
// of the first of a reconcile error, a Secret problem, Stalled, RolledBack,
// Reconciling, Available that stands in the way; True otherwise.
func setReady(conds []metav1.Condition, at stamp, err error, secretProblem string) []metav1.Condition {
	ready := func(status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
		return set(conds, at, v1alpha1.ConditionReady, status, reason, msg)
	}
	if err != nil {
		return ready(metav1.ConditionFalse, ReasonReconcileFailed, err.Error())
	}
	if secretProblem != "" {
		return ready(metav1.ConditionFalse, ReasonSecretNotFound, secretProblem)
	}
	for _, t := range []string{v1alpha1.ConditionStalled, v1alpha1.ConditionRolledBack, v1alpha1.ConditionReconciling} {
		if c := apimeta.FindStatusCondition(conds, t); c != nil && c.Status == metav1.ConditionTrue {
			return ready(metav1.ConditionFalse, c.Reason, c.Message)
		}
	}
	if c := apimeta.FindStatusCondition(conds, v1alpha1.ConditionAvailable); c == nil || c.Status != metav1.ConditionTrue {
		reason, msg := ReasonBelowMinimum, "stable track is not available"
		if c != nil {
			reason, msg = c.Reason, c.Message
		}
		return ready(metav1.ConditionFalse, reason, msg)
	}
	return ready(metav1.ConditionTrue, ReasonSucceeded, "all replicas of the stable revision are ready")
}

// events are the plan's own, then one per ignored command, then the condition
// changes the plan did not already tell: Stalled appearing (or changing its
// reason) is a Warning, unless it only restates a rollback already told;
// Ready flipping is Normal when it becomes True or the service is merely
// progressing, a Warning otherwise.
func events(o Observation, sit situation, old, cur []metav1.Condition) []Event {
	var out []Event
	p := o.Plan
	if p == nil {
		return nil
	}
	out = append(out, p.Events...)
	if p.CommandIgnored != "" {
		out = append(out, IgnoredEvent(p.Command, p.Token, p.CommandIgnored))
	}
	for _, c := range p.Outranked {
		out = append(out, IgnoredEvent(c, handledToken(o.Memory.LastHandled, c), fmt.Sprintf("the %s annotation takes priority", p.Command)))
	}
	told := func(reason string) bool {
		for _, e := range out {
			if e.Reason == reason {
				return true
			}
		}
		return false
	}
	rollbackTold := sit.rolledBack && changed(old, cur, v1alpha1.ConditionRolledBack) == nil
	if c := changed(old, cur, v1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && !told(c.Reason) && !rollbackTold {
		out = append(out, Event{Type: EventWarning, Reason: c.Reason, Message: c.Message})
	}
	c := apimeta.FindStatusCondition(cur, v1alpha1.ConditionReady)
	if was := apimeta.FindStatusCondition(old, v1alpha1.ConditionReady); c == nil || (was != nil && was.Status == c.Status) {
		return out
	}
	switch {
	case c.Status == metav1.ConditionTrue:
		out = append(out, Event{Type: EventNormal, Reason: "Ready", Message: c.Message})
	case told(c.Reason) || (len(p.Events) > 0 && (c.Reason == p.Reason || c.Reason == p.Standing.Reason || c.Reason == ReasonRollingOut)):
		// The plan's own events already say why.
	case sit.stalled == nil && o.Err == nil && o.SecretProblem == "":
		// Merely on its way: a canary step, a paused rollout, pods starting.
		out = append(out, Event{Type: EventNormal, Reason: c.Reason, Message: c.Message})
	default:
		out = append(out, Event{Type: EventWarning, Reason: c.Reason, Message: c.Message})
	}
	return out
}

// changed returns condition t of cur when it is new or its status or reason
// differs from old; nil otherwise.
func changed(old, cur []metav1.Condition, t string) *metav1.Condition {
	c := apimeta.FindStatusCondition(cur, t)
	if c == nil {
		return nil
	}
	if was := apimeta.FindStatusCondition(old, t); was != nil && was.Status == c.Status && was.Reason == c.Reason {
		return nil
	}
	return c
}

// stamp is what every condition of a pass carries: the generation observed
// and, for a condition that changes its status, the time of the change.
type stamp struct {
	gen int64
	now time.Time
}

func set(conds []metav1.Condition, at stamp, t string, status metav1.ConditionStatus, reason, msg string) []metav1.Condition {
	// A zero time lets SetStatusCondition take the clock's: only tests do that.
	apimeta.SetStatusCondition(&conds, metav1.Condition{Type: t, Status: status, Reason: reason, Message: msg,
		ObservedGeneration: at.gen, LastTransitionTime: metav1.NewTime(at.now)})
	return conds
}

func remove(conds []metav1.Condition, t string) []metav1.Condition {
	apimeta.RemoveStatusCondition(&conds, t)
	return conds
}
