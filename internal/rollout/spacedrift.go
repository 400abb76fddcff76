package rollout

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// ReasonUpstreamSpaceChanged is the reason when the space watch found stable
// answering in another space than the fingerprint recorded when it became
// stable, with no change of spec (another model behind the same upstream URL).
const ReasonUpstreamSpaceChanged = "UpstreamSpaceChanged"

// ReasonSpaceCheckFailed is the reason when a canary's space check could not
// complete by the progress deadline (probes unanswered, errors, timeouts):
// nothing was compared, so nothing is known about the space.
const ReasonSpaceCheckFailed = "SpaceCheckFailed"

// withSpaceDrift makes a drift a state that needs a person: Stalled and
// Degraded (kstatus and the Argo CD health check read it so), unless the
// service already stands stalled for another reason, which keeps precedence.
func withSpaceDrift(sit situation, drift *Problem) situation {
	if drift == nil || sit.stalled != nil {
		return sit
	}
	sit.stalled, sit.phase = drift, v1alpha1.PhaseDegraded
	return sit
}

// setSpaceDrifted is True while the drift stands; absent otherwise.
func setSpaceDrifted(conds []metav1.Condition, at stamp, drift *Problem) []metav1.Condition {
	if drift == nil {
		return remove(conds, v1alpha1.ConditionSpaceDrifted)
	}
	return set(conds, at, v1alpha1.ConditionSpaceDrifted, metav1.ConditionTrue, drift.Reason, drift.Message)
}
