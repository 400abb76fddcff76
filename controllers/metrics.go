package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/rollout"
)

// Operator metrics, served on the manager's --metrics-bind-address.
var (
	rolloutsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragops_rollouts_total",
		Help: "Finished rollouts by result: promoted, rolled_back, fast_rollback, rolling_update.",
	}, []string{"namespace", "name", "result"})
	rolloutStep = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ragops_rollout_step",
		Help: "Current canary step of a RAGService; -1 when no canary runs.",
	}, []string{"namespace", "name"})
	canaryWeight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ragops_canary_weight_percent",
		Help: "Canary share of a RAGService in percent: desired (canaryWeight) and effective (ready pods).",
	}, []string{"namespace", "name", "kind"})
	analysisVerdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragops_analysis_verdicts_total",
		Help: "Canary analysis verdicts by result: Pass, Fail, Inconclusive.",
	}, []string{"namespace", "name", "verdict"})
)

func init() {
	metrics.Registry.MustRegister(rolloutsTotal, rolloutStep, canaryWeight, analysisVerdicts)
}

// recordMetrics exports one reconcile's decision.
func recordMetrics(svc *ragv1.RAGService, plan *rollout.Plan, verdict *ragv1.AnalysisStatus) {
	ns, name := svc.Namespace, svc.Name
	st := svc.Status
	if st.CanaryRevision == "" {
		rolloutStep.WithLabelValues(ns, name).Set(-1)
	} else {
		rolloutStep.WithLabelValues(ns, name).Set(float64(st.CurrentStep))
	}
	canaryWeight.WithLabelValues(ns, name, "desired").Set(float64(st.CanaryWeight))
	canaryWeight.WithLabelValues(ns, name, "effective").Set(float64(st.EffectiveWeight))
	if verdict != nil {
		analysisVerdicts.WithLabelValues(ns, name, string(verdict.Verdict)).Inc()
	}
	if plan == nil {
		return
	}
	switch plan.Transition {
	case rollout.TransitionFinish:
		rolloutsTotal.WithLabelValues(ns, name, "promoted").Inc()
	case rollout.TransitionRollback:
		rolloutsTotal.WithLabelValues(ns, name, "rolled_back").Inc()
	case rollout.TransitionFastRollback:
		rolloutsTotal.WithLabelValues(ns, name, "fast_rollback").Inc()
	case rollout.TransitionRollingUpdate:
		rolloutsTotal.WithLabelValues(ns, name, "rolling_update").Inc()
	}
}

// forgetMetrics drops the series of a deleted RAGService.
func forgetMetrics(ns, name string) {
	labels := prometheus.Labels{"namespace": ns, "name": name}
	rolloutsTotal.DeletePartialMatch(labels)
	rolloutStep.DeletePartialMatch(labels)
	canaryWeight.DeletePartialMatch(labels)
	analysisVerdicts.DeletePartialMatch(labels)
}
