package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// Every case of the one status-write rule, by name.
func TestDecideStatusWrite(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	cond := func(typ, status, reason, msg string, when time.Time) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(when)}
	}
	rolling := func(ready int32, msg string) ragv1.RAGServiceStatus {
		return ragv1.RAGServiceStatus{
			ObservedGeneration: 2, Phase: ragv1.PhaseProgressing, Replicas: 2, ReadyReplicas: ready,
			RolloutStatus: ragv1.RolloutStatus{StableRevision: "a", CanaryRevision: "b", CanaryWeight: 50, EffectiveWeight: 25},
			Conditions:    []metav1.Condition{cond(ragv1.ConditionReconciling, "True", "WaitingForCanaryPods", msg, at)},
		}
	}
	stored := rolling(1, "1/2 canary pods ready")
	with := func(st ragv1.RAGServiceStatus, f func(*ragv1.RAGServiceStatus)) ragv1.RAGServiceStatus {
		out := *st.DeepCopy()
		f(&out)
		return out
	}
	nextStep := with(stored, func(s *ragv1.RAGServiceStatus) { s.CurrentStep = 1 })
	handled := with(stored, func(s *ragv1.RAGServiceStatus) {
		s.LastHandled = &ragv1.HandledCommands{Promote: "t1", Result: "promote token \"t1\" ignored: nothing to promote"}
	})

	for _, c := range []struct {
		name string
		in   writeInput
		want statusWrite
	}{
		// At the decision: only a changed rollout memory is written ahead.
		{"decision: memory as read", writeInput{at: atDecision, stored: stored, next: with(stored, func(s *ragv1.RAGServiceStatus) { s.ReadyReplicas = 2 })}, writeNone},
		{"decision: only the effective weight moved (counted, not remembered)", writeInput{at: atDecision, stored: stored, next: with(stored, func(s *ragv1.RAGServiceStatus) { s.EffectiveWeight = 50 })}, writeNone},
		{"decision: a step taken", writeInput{at: atDecision, stored: stored, next: nextStep}, writePatch},
		{"decision: a token handled", writeInput{at: atDecision, stored: stored, next: handled}, writePatch},
		{"decision: a first revision is acted on first", writeInput{at: atDecision, stored: ragv1.RAGServiceStatus{},
			next: ragv1.RAGServiceStatus{RolloutStatus: ragv1.RolloutStatus{StableRevision: "a"}}, initialize: true}, writeNone},
		{"decision: an adopted revision (no Initialize) is written ahead, in full", writeInput{at: atDecision, stored: ragv1.RAGServiceStatus{},
			next: ragv1.RAGServiceStatus{RolloutStatus: ragv1.RolloutStatus{StableRevision: "a"}}}, writeUpdate},
		{"decision: a stale read writes nothing", writeInput{at: atDecision, stored: stored, next: nextStep, staleRead: true}, writeNone},
		// At the end: whatever differs from what is stored, at once.
		{"end: nothing moved (idle)", writeInput{at: atEnd, stored: stored, next: stored}, writeNone},
		{"end: the same summary stamped a few nanoseconds later", writeInput{at: atEnd, stored: stored, next: with(stored, func(s *ragv1.RAGServiceStatus) {
			s.Conditions[0].LastTransitionTime = metav1.NewTime(at.Add(300 * time.Millisecond))
		})}, writeNone},
		{"end: a pod count moved", writeInput{at: atEnd, stored: stored, next: with(stored, func(s *ragv1.RAGServiceStatus) { s.ReadyReplicas = 2 })}, writePatch},
		{"end: a message moved", writeInput{at: atEnd, stored: stored, next: rolling(1, "1/2 canary pods ready; 1 starting")}, writePatch},
		{"end: the effective weight moved", writeInput{at: atEnd, stored: stored, next: with(stored, func(s *ragv1.RAGServiceStatus) { s.EffectiveWeight = 50 })}, writePatch},
		{"end: the phase moved", writeInput{at: atEnd, stored: stored, next: with(stored, func(s *ragv1.RAGServiceStatus) { s.Phase = ragv1.PhaseHealthy })}, writePatch},
		{"end: the first status of a service", writeInput{at: atEnd, stored: ragv1.RAGServiceStatus{},
			next: ragv1.RAGServiceStatus{ObservedGeneration: 1, RolloutStatus: ragv1.RolloutStatus{StableRevision: "a"}}}, writeUpdate},
		{"end: a first status that says only that nothing could be read", writeInput{at: atEnd, stored: ragv1.RAGServiceStatus{},
			next: ragv1.RAGServiceStatus{Conditions: []metav1.Condition{cond(ragv1.ConditionReady, "False", "ReconcileFailed", "m", at)}}}, writeUpdate},
		{"end: after the decision write, the summary as written", writeInput{at: atEnd, stored: nextStep, next: nextStep, initialize: false}, writeNone},
		{"end: a stale read writes nothing", writeInput{at: atEnd, stored: stored, next: nextStep, staleRead: true}, writeNone},
	} {
		got, why := decideStatusWrite(c.in)
		if got != c.want {
			t.Errorf("%s: %s (%s), want %s", c.name, got, why, c.want)
		}
		if why == "" {
			t.Errorf("%s: no reason given", c.name)
		}
	}
}
