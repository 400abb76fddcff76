package rollout

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// cond is a condition as the tables spell it: status and reason.
type cond struct {
	Status metav1.ConditionStatus
	Reason string
}

func condsOf(cs []metav1.Condition) map[string]cond {
	out := map[string]cond{}
	for _, c := range cs {
		out[c.Type] = cond{c.Status, c.Reason}
	}
	return out
}

func conds(m map[string]cond) []metav1.Condition {
	var out []metav1.Condition
	for t, c := range m {
		out = append(out, metav1.Condition{Type: t, Status: c.Status, Reason: c.Reason, Message: "earlier"})
	}
	return out
}

var (
	T, F = metav1.ConditionTrue, metav1.ConditionFalse

	healthyStable = Track{Revision: "a", Exists: true, Replicas: 3, ReadyReplicas: 3, ServingReplicas: 3, Pods: 3, RolledOut: true}
	healthyConds  = map[string]cond{
		v1alpha1.ConditionReady:     {T, ReasonSucceeded},
		v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable},
	}
)

func planOf(state State, transition Transition, reason string, events ...string) *Plan {
	p := &Plan{StableRevision: "a", State: state, Transition: transition, Reason: reason, Message: reason + " message"}
	for _, e := range events {
		p.Events = append(p.Events, Event{Type: EventNormal, Reason: e, Message: e})
	}
	return p
}

func TestSetAvailable(t *testing.T) {
	for _, c := range []struct {
		name     string
		stable   Track
		replicas int32
		want     cond
	}{
		{"no Deployment", Track{}, 3, cond{F, ReasonDeploymentMissing}},
		{"all ready", healthyStable, 3, cond{T, ReasonMinimumAvailable}},
		{"more ready than asked (scale-down in flight)", healthyStable, 2, cond{T, ReasonMinimumAvailable}},
		{"one short", Track{Exists: true, ReadyReplicas: 2, ServingReplicas: 2}, 3, cond{F, ReasonBelowMinimum}},
		{"old-revision pods serve and count", Track{Exists: true, ReadyReplicas: 1, ServingReplicas: 3}, 3, cond{T, ReasonMinimumAvailable}},
		{"zero replicas asked", Track{Exists: true}, 0, cond{T, ReasonMinimumAvailable}},
	} {
		got := condsOf(setAvailable(nil, stamp{gen: 1}, c.stable, c.replicas))[v1alpha1.ConditionAvailable]
		if got != c.want {
			t.Errorf("%s: Available %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSetRolledBack(t *testing.T) {
	rb := &v1alpha1.RollbackStatus{Revision: "b", Reason: ReasonAnalysisFailed, Message: "error rate 0.5"}
	for _, c := range []struct {
		name string
		on   bool
		rb   *v1alpha1.RollbackStatus
		want *metav1.Condition
	}{
		{"rolled back", true, rb, &metav1.Condition{Type: v1alpha1.ConditionRolledBack, Status: T, Reason: ReasonAnalysisFailed, Message: "revision b was rolled back: error rate 0.5", ObservedGeneration: 4}},
		{"not holding", false, rb, nil},
		{"no record", true, nil, nil},
	} {
		start := conds(map[string]cond{v1alpha1.ConditionRolledBack: {T, "Old"}})
		got := apimeta.FindStatusCondition(setRolledBack(start, stamp{gen: 4}, c.on, c.rb), v1alpha1.ConditionRolledBack)
		if diff := cmp.Diff(c.want, got, ignoreTime); diff != "" {
			t.Errorf("%s: RolledBack (-want +got):\n%s", c.name, diff)
		}
	}
}

var ignoreTime = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".LastTransitionTime" }, cmp.Ignore())

func TestSetStalled(t *testing.T) {
	for _, c := range []struct {
		name string
		why  *Problem
		want map[string]cond
	}{
		{"nothing for a person: absent, not False (kstatus)", nil, map[string]cond{}},
		{"a problem: True with its reason", &Problem{"X", "because"}, map[string]cond{v1alpha1.ConditionStalled: {T, "X"}}},
	} {
		got := condsOf(setStalled(conds(map[string]cond{v1alpha1.ConditionStalled: {T, "Old"}}), stamp{gen: 1}, c.why))
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestSetReconciling(t *testing.T) {
	why := &Problem{"X", "because"}
	boom := errors.New("boom")
	for _, c := range []struct {
		name string
		why  *Problem
		err  error
		want map[string]cond
	}{
		{"settled: absent, not False (kstatus)", nil, nil, map[string]cond{}},
		{"moving: True with its reason", why, nil, map[string]cond{v1alpha1.ConditionReconciling: {T, "X"}}},
		{"an error is reconciling, whatever else", why, boom, map[string]cond{v1alpha1.ConditionReconciling: {T, ReasonReconcileFailed}}},
		{"an error on a settled service", nil, boom, map[string]cond{v1alpha1.ConditionReconciling: {T, ReasonReconcileFailed}}},
	} {
		got := condsOf(setReconciling(conds(map[string]cond{v1alpha1.ConditionReconciling: {T, "Old"}}), stamp{gen: 1}, c.why, c.err))
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestSetReady(t *testing.T) {
	for _, c := range []struct {
		name   string
		conds  map[string]cond
		err    error
		secret string
		want   cond
	}{
		{"available, nothing else", map[string]cond{v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}}, nil, "", cond{T, ReasonSucceeded}},
		{"not available", map[string]cond{v1alpha1.ConditionAvailable: {F, ReasonBelowMinimum}}, nil, "", cond{F, ReasonBelowMinimum}},
		{"no Available condition", map[string]cond{}, nil, "", cond{F, ReasonBelowMinimum}},
		{"reconciling", map[string]cond{v1alpha1.ConditionAvailable: {T, ""}, v1alpha1.ConditionReconciling: {T, "StepAdvanced"}}, nil, "", cond{F, "StepAdvanced"}},
		{"stalled beats reconciling", map[string]cond{v1alpha1.ConditionAvailable: {T, ""}, v1alpha1.ConditionReconciling: {T, "R"}, v1alpha1.ConditionStalled: {T, "S"}}, nil, "", cond{F, "S"}},
		{"rolled back beats reconciling", map[string]cond{v1alpha1.ConditionAvailable: {T, ""}, v1alpha1.ConditionReconciling: {T, "R"}, v1alpha1.ConditionRolledBack: {T, "Aborted"}}, nil, "", cond{F, "Aborted"}},
		{"a Secret problem beats the rest", map[string]cond{v1alpha1.ConditionAvailable: {T, ""}, v1alpha1.ConditionStalled: {T, "S"}}, nil, "no key", cond{F, ReasonSecretNotFound}},
		{"an error beats everything", map[string]cond{v1alpha1.ConditionAvailable: {T, ""}}, errors.New("x"), "no key", cond{F, ReasonReconcileFailed}},
	} {
		got := condsOf(setReady(conds(c.conds), stamp{gen: 1}, c.err, c.secret))[v1alpha1.ConditionReady]
		if got != c.want {
			t.Errorf("%s: Ready %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	rb := &v1alpha1.RollbackStatus{Revision: "b", Reason: ReasonAnalysisFailed, Message: "m"}
	notRolledOut := healthyStable
	notRolledOut.RolledOut, notRolledOut.ReadyReplicas, notRolledOut.ServingReplicas = false, 2, 2
	pastDeadline := healthyStable
	pastDeadline.DeadlineExceeded = true
	warn := func(reason string) Event { return Event{Type: EventWarning, Reason: reason} }
	normal := func(reason string) Event { return Event{Type: EventNormal, Reason: reason} }

	for _, c := range []struct {
		name   string
		o      Observation
		phase  v1alpha1.Phase
		conds  map[string]cond
		events []Event // types and reasons
	}{
		{
			name:  "steady and rolled out: healthy, no news",
			o:     Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(healthyConds)},
			phase: v1alpha1.PhaseHealthy,
			conds: healthyConds,
		},
		{
			name: "the space watch found a drift: SpaceDrifted and Stalled, Degraded, one Warning event",
			o: Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(healthyConds),
				SpaceDrift: &Problem{ReasonUpstreamSpaceChanged, "stable answers in another space"}},
			phase: v1alpha1.PhaseDegraded,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable},
				v1alpha1.ConditionStalled: {T, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionSpaceDrifted: {T, ReasonUpstreamSpaceChanged}},
			events: []Event{warn(ReasonUpstreamSpaceChanged)},
		},
		{
			name: "a drift that stands: no news",
			o: Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady"),
				Conditions: conds(map[string]cond{v1alpha1.ConditionReady: {F, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable},
					v1alpha1.ConditionStalled: {T, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionSpaceDrifted: {T, ReasonUpstreamSpaceChanged}}),
				SpaceDrift: &Problem{ReasonUpstreamSpaceChanged, "earlier"}},
			phase: v1alpha1.PhaseDegraded,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable},
				v1alpha1.ConditionStalled: {T, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionSpaceDrifted: {T, ReasonUpstreamSpaceChanged}},
		},
		{
			name: "a drift under a rolled-back canary: the rollback stays the Stalled reason, SpaceDrifted shows",
			o: Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateRolledBack, TransitionNone, ReasonAnalysisFailed), Memory: v1alpha1.RolloutStatus{Rollback: rb},
				Conditions: conds(healthyConds), SpaceDrift: &Problem{ReasonUpstreamSpaceChanged, "stable answers in another space"}},
			phase: v1alpha1.PhaseRolledBack,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable},
				v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}, v1alpha1.ConditionSpaceDrifted: {T, ReasonUpstreamSpaceChanged}},
			events: []Event{warn(ReasonAnalysisFailed)},
		},
		{
			name:   "the drift is over: SpaceDrifted and Stalled go, Ready again",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(map[string]cond{v1alpha1.ConditionReady: {F, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonUpstreamSpaceChanged}, v1alpha1.ConditionSpaceDrifted: {T, ReasonUpstreamSpaceChanged}})},
			phase:  v1alpha1.PhaseHealthy,
			conds:  healthyConds,
			events: []Event{normal("Ready")},
		},
		{
			name:   "becomes ready: one Normal Ready event",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady")},
			phase:  v1alpha1.PhaseHealthy,
			conds:  healthyConds,
			events: []Event{normal("Ready")},
		},
		{
			name:   "stable still rolling out, nothing decided: Reconciling RollingOut",
			o:      Observation{Replicas: 3, Stable: notRolledOut, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(healthyConds)},
			phase:  v1alpha1.PhaseProgressing,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonRollingOut}, v1alpha1.ConditionAvailable: {F, ReasonBelowMinimum}, v1alpha1.ConditionReconciling: {T, ReasonRollingOut}},
			events: []Event{normal(ReasonRollingOut)},
		},
		{
			// Worded as every later pass of the roll words it (no status write
			// for the words alone); the plan's event tells the transition.
			name:   "first revision deploying: rolling out, told by the plan's event",
			o:      Observation{Replicas: 3, Stable: Track{}, Plan: planOf(StateSteady, TransitionInitialize, "Initialized", "Initialized")},
			phase:  v1alpha1.PhaseProgressing,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonRollingOut}, v1alpha1.ConditionAvailable: {F, ReasonDeploymentMissing}, v1alpha1.ConditionReconciling: {T, ReasonRollingOut}},
			events: []Event{normal("Initialized")},
		},
		{
			name:   "canary under way",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateProgressing, TransitionStart, "CanaryStarted", "CanaryStarted"), Conditions: conds(healthyConds)},
			phase:  v1alpha1.PhaseProgressing,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, "CanaryStarted"}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionReconciling: {T, "CanaryStarted"}},
			events: []Event{normal("CanaryStarted")},
		},
		{
			name:   "paused for promote",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StatePaused, TransitionWait, "WaitingForPromote"), Conditions: conds(healthyConds)},
			phase:  v1alpha1.PhasePaused,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, "WaitingForPromote"}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionReconciling: {T, "WaitingForPromote"}},
			events: []Event{normal("WaitingForPromote")},
		},
		{
			name:   "held: Stalled appears with one Warning",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateHeld, TransitionHold, ReasonAnalysisFailed), Conditions: conds(healthyConds)},
			phase:  v1alpha1.PhaseDegraded,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}},
			events: []Event{warn(ReasonAnalysisFailed)},
		},
		{
			name: "held again: no repeated Warning",
			o: Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateHeld, TransitionHold, ReasonAnalysisFailed),
				Conditions: conds(map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}})},
			phase: v1alpha1.PhaseDegraded,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}},
		},
		{
			// The bug the phase-reading planner had: with autoRollback off, a
			// stable Deployment past its deadline (Degraded) hid the warning
			// of the analysis failure that came next.
			name: "held after the stable deadline: the new reason is told",
			o: Observation{Replicas: 3, Stable: pastDeadline, Plan: planOf(StateHeld, TransitionHold, ReasonAnalysisFailed),
				Conditions: conds(map[string]cond{v1alpha1.ConditionReady: {F, ReasonProgressDeadlineExceeded}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonProgressDeadlineExceeded}})},
			phase:  v1alpha1.PhaseDegraded,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}},
			events: []Event{warn(ReasonAnalysisFailed)},
		},
		{
			name:   "stable Deployment past its own deadline",
			o:      Observation{Replicas: 3, Stable: pastDeadline, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(healthyConds)},
			phase:  v1alpha1.PhaseDegraded,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonProgressDeadlineExceeded}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonProgressDeadlineExceeded}},
			events: []Event{warn(ReasonProgressDeadlineExceeded)},
		},
		{
			name: "rollback: told by the plan's own Warning",
			o: Observation{Replicas: 3, Stable: healthyStable, Memory: v1alpha1.RolloutStatus{Rollback: rb}, Conditions: conds(healthyConds),
				Plan: func() *Plan {
					p := planOf(StateRolledBack, TransitionRollback, ReasonAnalysisFailed)
					p.Events = []Event{warn(ReasonAnalysisFailed)}
					return p
				}()},
			phase:  v1alpha1.PhaseRolledBack,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}},
			events: []Event{warn(ReasonAnalysisFailed)},
		},
		{
			name: "holding after the rollback: the rollback is not told again",
			o: Observation{Replicas: 3, Stable: healthyStable, Memory: v1alpha1.RolloutStatus{Rollback: rb}, Plan: planOf(StateRolledBack, TransitionHold, "RolledBack"),
				Conditions: conds(map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}})},
			phase: v1alpha1.PhaseRolledBack,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, "RolledBack"}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, "RolledBack"}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}},
		},
		{
			name: "spec back on a rolled-back revision: told",
			o: Observation{Replicas: 3, Stable: healthyStable, Memory: v1alpha1.RolloutStatus{Rollback: rb}, Plan: planOf(StateRolledBack, TransitionHold, "RolledBack"),
				Conditions: conds(healthyConds)},
			phase:  v1alpha1.PhaseRolledBack,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, "RolledBack"}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, "RolledBack"}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}},
			events: []Event{warn("RolledBack")},
		},
		{
			name: "a bad spec is Stalled even while a canary runs",
			o: Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateProgressing, TransitionWait, "PauseInProgress"), Conditions: conds(healthyConds),
				SpecProblem: &Problem{ReasonInvalidSpec, "no image"}},
			phase:  v1alpha1.PhaseDegraded,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonInvalidSpec}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonInvalidSpec}},
			events: []Event{warn(ReasonInvalidSpec)},
		},
		{
			name: "a bad spec while the rollout rolled back: the spec is what a person must fix",
			o: Observation{Replicas: 3, Stable: healthyStable, Memory: v1alpha1.RolloutStatus{Rollback: rb}, Conditions: conds(healthyConds),
				SpecProblem: &Problem{ReasonInvalidSpec, "no image"},
				Plan: func() *Plan {
					p := planOf(StateRolledBack, TransitionRollback, ReasonAnalysisFailed)
					p.Events = []Event{warn(ReasonAnalysisFailed)}
					return p
				}()},
			phase:  v1alpha1.PhaseDegraded,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonInvalidSpec}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonInvalidSpec}},
			events: []Event{warn(ReasonAnalysisFailed), warn(ReasonInvalidSpec)},
		},
		{
			name:   "a Secret problem on a healthy service",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(healthyConds), SecretProblem: "Secret \"k\" does not exist"},
			phase:  v1alpha1.PhaseDegraded,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonSecretNotFound}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonSecretNotFound}},
			events: []Event{warn(ReasonSecretNotFound)},
		},
		{
			name:   "a transient error after a decision",
			o:      Observation{Replicas: 3, Stable: healthyStable, Plan: planOf(StateSteady, TransitionNone, "Steady"), Conditions: conds(healthyConds), Err: errors.New("applying Service: conflict")},
			phase:  v1alpha1.PhaseProgressing,
			conds:  map[string]cond{v1alpha1.ConditionReady: {F, ReasonReconcileFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionReconciling: {T, ReasonReconcileFailed}},
			events: []Event{warn(ReasonReconcileFailed)},
		},
		{
			name: "no decision (tracks unreadable): a rollback stands",
			o: Observation{Replicas: 3, Stable: healthyStable, Memory: v1alpha1.RolloutStatus{Rollback: rb}, Err: errors.New("listing pods: timeout"),
				Conditions: conds(map[string]cond{v1alpha1.ConditionReady: {F, ReasonAnalysisFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}})},
			phase: v1alpha1.PhaseRolledBack,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, ReasonReconcileFailed}, v1alpha1.ConditionAvailable: {T, ReasonMinimumAvailable}, v1alpha1.ConditionStalled: {T, ReasonAnalysisFailed}, v1alpha1.ConditionRolledBack: {T, ReasonAnalysisFailed}, v1alpha1.ConditionReconciling: {T, ReasonReconcileFailed}},
		},
		{
			name:  "no decision on a new service: Pending",
			o:     Observation{Replicas: 3, Err: errors.New("listing pods: timeout")},
			phase: v1alpha1.PhasePending,
			conds: map[string]cond{v1alpha1.ConditionReady: {F, ReasonReconcileFailed}, v1alpha1.ConditionAvailable: {F, ReasonDeploymentMissing}, v1alpha1.ConditionReconciling: {T, ReasonReconcileFailed}},
		},
		{
			name: "ignored commands: the outranked one and the declined one",
			o: Observation{Replicas: 3, Stable: healthyStable, Conditions: conds(healthyConds),
				Plan: func() *Plan {
					p := planOf(StateSteady, TransitionNone, "Steady")
					p.Command, p.Token, p.CommandIgnored, p.Outranked = CommandAbort, "t1", "no canary runs", []Command{CommandPromote}
					return p
				}()},
			phase:  v1alpha1.PhaseHealthy,
			conds:  healthyConds,
			events: []Event{normal("AnnotationIgnored"), normal("AnnotationIgnored")},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.Generation = 7
			s := Summarize(c.o)
			if s.Phase != c.phase {
				t.Errorf("phase %s, want %s", s.Phase, c.phase)
			}
			if diff := cmp.Diff(c.conds, condsOf(s.Conditions)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			for _, cd := range s.Conditions {
				if cd.ObservedGeneration != 7 && cd.Message != "earlier" {
					t.Errorf("condition %s carries generation %d, want 7", cd.Type, cd.ObservedGeneration)
				}
			}
			var got []Event
			for _, e := range s.Events {
				got = append(got, Event{Type: e.Type, Reason: e.Reason})
			}
			if diff := cmp.Diff(c.events, got); diff != "" {
				t.Errorf("events (-want +got):\n%s\nall: %+v", diff, s.Events)
			}
			// The input's conditions are never changed in place.
			if len(c.o.Conditions) > 0 && c.o.Conditions[0].Message != "earlier" {
				t.Errorf("Summarize changed its input's conditions")
			}
		})
	}
}

// Two summaries of one pass are equal, so the one written with the decision
// and the one written at the end of the pass differ only in what the pass
// changed.
func TestSummarizeIsRepeatable(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	o := Observation{Now: now, Generation: 3, Replicas: 3, Stable: healthyStable, Plan: planOf(StateProgressing, TransitionStart, "CanaryStarted", "CanaryStarted"), Conditions: conds(healthyConds)}
	a, b := Summarize(o), Summarize(o)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two summaries of one pass differ (-first +second):\n%s", diff)
	}
	if c := apimeta.FindStatusCondition(a.Conditions, v1alpha1.ConditionReconciling); c == nil || !c.LastTransitionTime.Time.Equal(now) {
		t.Errorf("Reconciling %+v: a condition that appears carries the pass's time", c)
	}
}

func TestSummarizeCounts(t *testing.T) {
	for _, c := range []struct {
		name                  string
		stable, canary        Track
		wantReplicas, wantRdy int32
	}{
		{"all pods; every ready pod of both tracks",
			Track{Exists: true, Pods: 4, ReadyReplicas: 2, ServingReplicas: 3}, Track{Exists: true, Pods: 2, ReadyReplicas: 1}, 6, 4},
		// The Deployment controller has yet to count the canary's pod that
		// the pod watch shows ready: it is a pod all the same.
		{"a ready pod its Deployment has not counted yet",
			Track{Exists: true, Pods: 1, ReadyReplicas: 1, ServingReplicas: 1}, Track{Exists: true, Pods: 0, ReadyReplicas: 1}, 2, 2},
		{"the Deployment counts more ready than the pod watch shows",
			Track{Exists: true, Pods: 1, ReadyReplicas: 0, ServingReplicas: 2}, Track{}, 2, 2},
		{"pods not ready yet",
			Track{Exists: true, Pods: 3, ReadyReplicas: 1, ServingReplicas: 0}, Track{Exists: true, Pods: 1}, 4, 1},
		{"no Deployment: nothing counts",
			Track{Pods: 2, ReadyReplicas: 2}, Track{}, 0, 0},
	} {
		s := Summarize(Observation{
			Replicas: 3,
			Stable:   c.stable,
			Canary:   c.canary,
			Plan:     planOf(StateProgressing, TransitionWait, "PauseInProgress"),
		})
		if s.Replicas != c.wantReplicas || s.ReadyReplicas != c.wantRdy {
			t.Errorf("%s: replicas %d ready %d, want %d and %d", c.name, s.Replicas, s.ReadyReplicas, c.wantReplicas, c.wantRdy)
		}
		if s.Replicas < s.ReadyReplicas {
			t.Errorf("%s: replicas %d below ready %d", c.name, s.Replicas, s.ReadyReplicas)
		}
	}
}

func TestResolve(t *testing.T) {
	P, F, A, R := v1alpha1.AnnotationPromote, v1alpha1.AnnotationPromoteFull, v1alpha1.AnnotationAbort, v1alpha1.AnnotationRetry
	for _, c := range []struct {
		name      string
		ann       map[string]string
		handled   *v1alpha1.HandledCommands
		cmd       Command
		token     string
		outranked []Command
	}{
		{"none", nil, nil, CommandNone, "", nil},
		{"foreign annotations only", map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"}, nil, CommandNone, "", nil},
		{"an empty value carries no token", map[string]string{P: ""}, nil, CommandNone, "", nil},
		{"a new token", map[string]string{R: "yes"}, nil, CommandRetry, "yes", nil},
		{"a legacy timestamp is a token", map[string]string{P: "2026-12-01T10:00:00Z"}, nil, CommandPromote, "2026-12-01T10:00:00Z", nil},
		{"abort outranks promote", map[string]string{A: "1", P: "1"}, nil, CommandAbort, "1", []Command{CommandPromote}},
		{"retry outranks promote", map[string]string{R: "1", P: "1"}, nil, CommandRetry, "1", []Command{CommandPromote}},
		{"promote-full outranks promote", map[string]string{F: "2", P: "1"}, nil, CommandPromoteFull, "2", []Command{CommandPromote}},
		{"all of them", map[string]string{P: "1", F: "1", A: "1", R: "1"}, nil, CommandAbort, "1", []Command{CommandRetry, CommandPromoteFull, CommandPromote}},
		{"a handled token is nothing", map[string]string{P: "1"}, &v1alpha1.HandledCommands{Promote: "1"}, CommandNone, "", nil},
		{"a token handled for another command is still new", map[string]string{P: "1"}, &v1alpha1.HandledCommands{PromoteFull: "1"}, CommandPromote, "1", nil},
		{"a handled abort leaves a new promote the command", map[string]string{A: "1", P: "2"}, &v1alpha1.HandledCommands{Abort: "1", Promote: "1"}, CommandPromote, "2", nil},
	} {
		cmd, token, outranked := resolve(Tokens(c.ann), c.handled)
		if cmd != c.cmd || token != c.token || !cmp.Equal(outranked, c.outranked) {
			t.Errorf("%s: command %q token %q outranked %v; want %q %q %v", c.name, cmd, token, outranked, c.cmd, c.token, c.outranked)
		}
	}
}

// A pass that advances to a step that waits says where the rollout stands
// now, not what it did: Reconciling carries the wait's reason.
func TestSummarizeStandsWhereThePassEnded(t *testing.T) {
	in := base()
	running(2, time.Hour, 2)(&in) // step 2 done: advances to step 3, a pause until promoted
	p := Decide(in)
	if p.Transition != TransitionAdvance || p.Standing.Reason != "WaitingForPromote" {
		t.Fatalf("plan %s %s, standing %+v: want an advance that stands waiting for promote", p.Transition, p.Reason, p.Standing)
	}
	s := Summarize(Observation{Replicas: 4, Stable: in.Stable, Plan: &p, Conditions: conds(healthyConds)})
	if c := condsOf(s.Conditions)[v1alpha1.ConditionReconciling]; c != (cond{T, "WaitingForPromote"}) || s.Phase != v1alpha1.PhasePaused {
		t.Errorf("Reconciling %+v phase %s, want WaitingForPromote and Paused", c, s.Phase)
	}
	for _, e := range s.Events {
		if e.Reason == "WaitingForPromote" {
			t.Errorf("the pass's StepAdvanced event already tells it; got another: %+v", e)
		}
	}
}
