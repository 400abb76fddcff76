package kubectlrag

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// Outcome is where a RAGService stands for someone waiting on it.
type Outcome int

const (
	// InProgress is not yet terminal: keep waiting.
	InProgress Outcome = iota
	// Succeeded is Healthy at the current generation.
	Succeeded
	// Failed is RolledBack, Degraded or Stalled at the current generation.
	Failed
)

func (o Outcome) String() string {
	switch o {
	case Succeeded:
		return "Succeeded"
	case Failed:
		return "Failed"
	default:
		return "InProgress"
	}
}

// Evaluate says whether a RAGService reached a terminal state, and why, from its
// conditions (the phase is for display: it only names the state in the
// message). A status the operator wrote for an older generation says nothing
// about the current spec, so it is always InProgress.
func Evaluate(svc *ragv1.RAGService) (Outcome, string) {
	st := &svc.Status
	// The Stalled condition's own generation says whether the stall is about the
	// current spec. It is read first because earlier operator builds left
	// status.observedGeneration behind on a spec they could not act on.
	if c := meta.FindStatusCondition(st.Conditions, ragv1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		gen := c.ObservedGeneration
		if gen == 0 {
			gen = st.ObservedGeneration
		}
		if gen >= svc.Generation {
			if rb := st.Rollback; rb != nil && meta.IsStatusConditionTrue(st.Conditions, ragv1.ConditionRolledBack) {
				msg := fmt.Sprintf("rolled back revision %s: %s", rb.Revision, rb.Reason)
				if rb.Message != "" {
					msg += ": " + rb.Message
				}
				return Failed, msg
			}
			return Failed, fmt.Sprintf("stalled: %s: %s", c.Reason, c.Message)
		}
	}
	if st.ObservedGeneration < svc.Generation {
		return InProgress, fmt.Sprintf("waiting for the operator to observe generation %d (observed %d)",
			svc.Generation, st.ObservedGeneration)
	}
	c := meta.FindStatusCondition(st.Conditions, ragv1.ConditionReady)
	switch {
	case c == nil:
		return InProgress, "no status yet"
	case c.Status == metav1.ConditionTrue:
		return Succeeded, "healthy"
	}
	// The Ready condition says what the rollout waits for.
	if c.Message == "" {
		return InProgress, fmt.Sprintf("%s: %s", st.Phase, c.Reason)
	}
	return InProgress, fmt.Sprintf("%s: %s", st.Phase, c.Message)
}
