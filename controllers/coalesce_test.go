package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

func TestMayHoldBack(t *testing.T) {
	cond := func(typ, status, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg}
	}
	status := func(ready int32, conds ...metav1.Condition) ragv1.RAGServiceStatus {
		return ragv1.RAGServiceStatus{ReadyReplicas: ready, Conditions: conds, Phase: ragv1.PhaseProgressing}
	}
	rolling := func(msg string) metav1.Condition { return cond(ragv1.ConditionReconciling, "True", "RollingOut", msg) }
	unavailable := cond("Available", "False", "MinimumReplicasUnavailable", "0 of 1 stable replicas ready")
	available := cond("Available", "True", "MinimumReplicasAvailable", "1 of 1 stable replicas ready")
	written := status(0, unavailable, rolling("0/1 pods ready"))
	healthy := ragv1.RAGServiceStatus{ReadyReplicas: 1, Phase: ragv1.PhaseHealthy,
		Conditions: []metav1.Condition{available, cond(ragv1.ConditionReady, "True", "Succeeded", "")}}

	for _, c := range []struct {
		name     string
		cur      ragv1.RAGServiceStatus
		settling bool
		want     bool
	}{
		{"a count and a message", status(1, unavailable, rolling("1/1 pods ready")), false, true},
		{"the same while settling", status(1, unavailable, rolling("1/1 pods ready")), true, true},
		// The pod watch ahead of the Deployment: Available flips a pass before Ready.
		{"a reason while settling", status(1, available, rolling("1/1 pods ready")), true, true},
		{"a reason, nothing settling", status(1, available, rolling("1/1 pods ready")), false, false},
		{"the phase, nothing settling", func() ragv1.RAGServiceStatus {
			s := status(0, unavailable, rolling("0/1 pods ready"))
			s.Phase = ragv1.PhaseDegraded
			return s
		}(), false, false},
		// Nothing to hold: the pass must not start the window's clock.
		{"nothing moved", written, false, false},
		{"nothing moved while settling", written, true, false},
		// A settled status is never held, lagging Deployment or not.
		{"settled", healthy, false, false},
		{"settled while settling", healthy, true, false},
	} {
		if got := mayHoldBack(written, c.cur, c.settling); got != c.want {
			t.Errorf("%s: mayHoldBack = %v, want %v", c.name, got, c.want)
		}
	}
	// Nothing is held over a status that was not Reconciling.
	if mayHoldBack(healthy, status(1, available, rolling("")), true) {
		t.Error("mayHoldBack held a status over a settled one")
	}
}

func TestOutlastsWindow(t *testing.T) {
	cond := func(typ, status, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg}
	}
	rolling := cond(ragv1.ConditionReconciling, "True", "RollingOut", "Rolling out stable revision abc: 0/1 pods ready")
	unavailable := cond("Available", "False", "MinimumReplicasUnavailable", "0 of 1 stable replicas ready")
	status := func(replicas, ready int32, conds ...metav1.Condition) ragv1.RAGServiceStatus {
		return ragv1.RAGServiceStatus{Replicas: replicas, ReadyReplicas: ready, Phase: ragv1.PhaseProgressing, Conditions: conds}
	}
	written := status(0, 0, unavailable, rolling)

	for _, c := range []struct {
		name string
		cur  ragv1.RAGServiceStatus
		want bool
	}{
		{"the create's pod exists, not ready", status(1, 0, unavailable, rolling), true},
		{"a surge pod exists, not ready", func() ragv1.RAGServiceStatus { s := status(2, 0, unavailable, rolling); return s }(), true},
		{"nothing moved", status(0, 0, unavailable, rolling), false},
		{"a pod turned ready", status(1, 1, unavailable, rolling), false},
		{"the weight moved", func() ragv1.RAGServiceStatus {
			s := status(1, 0, unavailable, rolling)
			s.EffectiveWeight = 50
			return s
		}(), false},
		{"a message moved", status(1, 0, cond("Available", "False", "MinimumReplicasUnavailable", "0 of 2 stable replicas ready"), rolling), false},
		{"a reason moved", status(1, 0, cond("Available", "False", "DeploymentMissing", "stable Deployment does not exist yet"), rolling), false},
		{"the phase moved", func() ragv1.RAGServiceStatus {
			s := status(1, 0, unavailable, rolling)
			s.Phase = ragv1.PhaseDegraded
			return s
		}(), false},
		{"settled", ragv1.RAGServiceStatus{Replicas: 1, Phase: ragv1.PhaseHealthy,
			Conditions: []metav1.Condition{cond(ragv1.ConditionReady, "True", "Succeeded", "")}}, false},
	} {
		if got := outlastsWindow(written, c.cur); got != c.want {
			t.Errorf("%s: outlastsWindow = %v, want %v", c.name, got, c.want)
		}
	}
	// A count with no pod left to turn ready brings no later write: it waits
	// within the window only. The Deployment's status.replicas lags the pod
	// watch, so readyReplicas (pods) may run ahead of replicas (Deployment).
	for _, c := range []struct {
		name         string
		written, cur ragv1.RAGServiceStatus
		want         bool
	}{
		{"the Deployment caught up with pods ready", status(2, 3, unavailable, rolling), status(3, 3, unavailable, rolling), false},
		{"caught up, and one more pod not ready", status(2, 3, unavailable, rolling), status(4, 3, unavailable, rolling), true},
		{"a pod went away", status(3, 2, unavailable, rolling), status(2, 2, unavailable, rolling), false},
		{"a pod not ready went away", status(4, 2, unavailable, rolling), status(3, 2, unavailable, rolling), false},
	} {
		if got := outlastsWindow(c.written, c.cur); got != c.want {
			t.Errorf("%s: outlastsWindow = %v, want %v", c.name, got, c.want)
		}
	}
	// Nothing waits over a status that was not Reconciling.
	settled := status(0, 0, unavailable)
	if outlastsWindow(settled, status(1, 0, unavailable, rolling)) {
		t.Error("outlastsWindow held a count over a status that was not Reconciling")
	}
}

func TestHoldWindow(t *testing.T) {
	for _, c := range []struct {
		window    time.Duration
		podsAhead bool
		want      time.Duration
	}{
		{10 * time.Second, false, 10 * time.Second},
		{10 * time.Second, true, 2 * time.Minute},
		{2 * time.Second, true, 24 * time.Second},
		// --status-progress-window=0s holds nothing back, lag or not.
		{-1, false, -1},
		{-1, true, -1},
	} {
		if got := holdWindow(c.window, c.podsAhead); got != c.want {
			t.Errorf("holdWindow(%s, podsAhead %v) = %s, want %s", c.window, c.podsAhead, got, c.want)
		}
	}
}

func TestPodsMovedOnly(t *testing.T) {
	cond := func(typ, status, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(status), Reason: reason, Message: msg}
	}
	status := func(replicas, ready int32, conds ...metav1.Condition) ragv1.RAGServiceStatus {
		return ragv1.RAGServiceStatus{Replicas: replicas, ReadyReplicas: ready, Phase: ragv1.PhaseProgressing, Conditions: conds}
	}
	rolling := func(msg string) metav1.Condition { return cond(ragv1.ConditionReconciling, "True", "RollingOut", msg) }
	notReady := func(reason, msg string) metav1.Condition { return cond(ragv1.ConditionReady, "False", reason, msg) }
	unavailable := cond("Available", "False", "MinimumReplicasUnavailable", "0 of 1 stable replicas ready")
	available := cond("Available", "True", "MinimumReplicasAvailable", "1 of 1 stable replicas ready")
	written := status(0, 0, unavailable, rolling("0/1 pods ready"), notReady("RollingOut", "0/1 pods ready"))

	for _, c := range []struct {
		name string
		cur  ragv1.RAGServiceStatus
		want bool
	}{
		// The benchmark's create: the pod watch shows the pod ready, its
		// Deployment has not counted it.
		{"a pod ready ahead of its Deployment", status(0, 1, available, rolling("1/1 pods ready"), notReady("RollingOut", "1/1 pods ready")), true},
		{"counts only", status(1, 1, unavailable, rolling("0/1 pods ready"), notReady("RollingOut", "0/1 pods ready")), true},
		{"a Secret found: Ready's reason", status(0, 0, unavailable, rolling("0/1 pods ready"), notReady("SecretNotFound", `Secret "openai" not found`)), false},
		{"Reconciling's reason", status(0, 1, available, cond(ragv1.ConditionReconciling, "True", "WaitingForCanaryPods", ""), notReady("RollingOut", "")), false},
		{"the phase", func() ragv1.RAGServiceStatus {
			s := status(0, 1, available, rolling("1/1 pods ready"), notReady("RollingOut", "1/1 pods ready"))
			s.Phase = ragv1.PhaseDegraded
			return s
		}(), false},
		{"settled", ragv1.RAGServiceStatus{ReadyReplicas: 1, Phase: ragv1.PhaseHealthy,
			Conditions: []metav1.Condition{available, cond(ragv1.ConditionReady, "True", "Succeeded", "")}}, false},
	} {
		if got := podsMovedOnly(written, c.cur); got != c.want {
			t.Errorf("%s: podsMovedOnly = %v, want %v", c.name, got, c.want)
		}
	}
}
