package kubectlrag

import (
	"bytes"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/testsupport/golden"
)

// fixedService is a canary at its second of four steps, at a fixed time.
func fixedService() *ragv1.RAGService {
	at := metav1.NewTime(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	svc := &ragv1.RAGService{
		ObjectMeta: metav1.ObjectMeta{Namespace: "search", Name: "docs", Generation: 3, UID: "0b0e5c2e-1111-4222-8333-944445555666", CreationTimestamp: at,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}}},
		Spec: ragv1.RAGServiceSpec{Replicas: ptr.To(int32(4)), Embedding: ragv1.EmbeddingSpec{Provider: ragv1.ProviderBuiltin, Model: "hash-384"},
			Rollout: ragv1.RolloutSpec{Strategy: ragv1.StrategyCanary, Steps: []ragv1.RolloutStep{
				{SetWeight: ptr.To(int32(20))}, {Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
				{SetWeight: ptr.To(int32(50))}, {Pause: &ragv1.PauseStep{}}}}},
	}
	svc.Status.ObservedGeneration = 3
	svc.Status.Phase = ragv1.PhaseProgressing
	svc.Status.StableRevision, svc.Status.CanaryRevision = "7c9f5d", "5d2a11"
	svc.Status.CurrentStep, svc.Status.CanaryWeight, svc.Status.EffectiveWeight = 1, 20, 20
	svc.Status.Replicas, svc.Status.ReadyReplicas = 5, 5
	svc.Status.StepStartTime = &at
	svc.Status.Analysis = &ragv1.AnalysisStatus{Time: at, Revision: "5d2a11", Requests: 120, ErrorRate: "0.0010", ShedRate: "0.0000",
		LatencyP99: &metav1.Duration{Duration: 12 * time.Millisecond}, Verdict: ragv1.VerdictPass,
		Message: "error rate 0.0010 <= 0.01, p99 12ms vs stable 10ms (x0.48 of the 25ms floor <= x2) (120 requests, stable 480)"}
	svc.Status.Conditions = []metav1.Condition{
		{Type: ragv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "PauseInProgress", Message: "Step 2/4: pausing until 2026-12-07T09:01:00Z", LastTransitionTime: at, ObservedGeneration: 3},
		{Type: ragv1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "PauseInProgress", Message: "Step 2/4: pausing until 2026-12-07T09:01:00Z", LastTransitionTime: at, ObservedGeneration: 3},
	}
	return svc
}

// -o json and -o yaml of status, list and history, as a script reads them.
func TestOutputFormats(t *testing.T) {
	svc := fixedService()
	tracks := []Track{{Name: "stable", Revision: "7c9f5d", Deployment: "docs-7c9f5d", Replicas: 4, Ready: 4}, {Name: "canary", Revision: "5d2a11", Deployment: "docs-5d2a11", Replicas: 1, Ready: 1},
		{Name: "retiring", Revision: "1a2b3c", Deployment: "docs-1a2b3c", Replicas: 4, Ready: 4, Note: "removed in 20s"}}
	healthy := fixedService()
	healthy.Name, healthy.Status.CanaryRevision, healthy.Status.Phase, healthy.Status.Analysis = "faq", "", ragv1.PhaseHealthy, nil
	healthy.Status.Conditions = []metav1.Condition{{Type: ragv1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Succeeded",
		Message: "all replicas of the stable revision are ready", LastTransitionTime: svc.CreationTimestamp, ObservedGeneration: 3}}
	at := svc.CreationTimestamp.Time
	rows := []HistoryRow{
		{Revision: 1, Hash: "7c9f5d", Created: at.Add(-time.Hour), State: "Stable"},
		{Revision: 2, Hash: "5d2a11", Created: at, Space: "docs-v2", State: "Canary", Message: "step 2/4, weight 20% (effective 20%)"},
	}
	events := []corev1.Event{
		{Type: "Normal", Reason: "StepAdvanced", Message: "Advanced canary 5d2a11 to step 2/4 (pause 1m0s)", LastTimestamp: metav1.NewTime(at)},
		{Type: "Normal", Reason: "CanaryStarted", Message: "Started canary 5d2a11", LastTimestamp: metav1.NewTime(at.Add(-time.Minute))},
	}
	views := map[string]any{
		"status":  NewStatusView(svc, tracks),
		"list":    NewListView([]ragv1.RAGService{*svc, *healthy}),
		"history": NewHistoryView(svc, rows, events),
	}
	for name, v := range views {
		for _, format := range []string{OutputJSON, OutputYAML} {
			t.Run(name+"."+format, func(t *testing.T) {
				var buf bytes.Buffer
				if err := printObject(&buf, format, v); err != nil {
					t.Fatal(err)
				}
				golden.Check(t, name+"."+format, buf.Bytes())
			})
		}
	}
	if err := printObject(&bytes.Buffer{}, "wide", svc); ExitCode(err) != ExitError {
		t.Errorf("-o wide: %v, exit %d", err, ExitCode(err))
	}
}
