package controllers

import (
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/analysis"
	"github.com/ragops/rag-operator/internal/probeclient"
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
		Help: "Index of the current canary step of a RAGService, from 0 (messages number steps from 1); -1 when no canary runs.",
	}, []string{"namespace", "name"})
	canaryWeight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ragops_canary_weight_percent",
		Help: "Canary share of a RAGService in percent: desired (canaryWeight) and effective (ready pods).",
	}, []string{"namespace", "name", "kind"})
	analysisVerdicts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragops_analysis_verdicts_total",
		Help: "Canary analysis verdicts by result: Pass, Fail, Inconclusive.",
	}, []string{"namespace", "name", "verdict"})
	analysisValue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ragops_analysis_value",
		Help: "The last analysis interval's values by track (canary, stable): requests, error_rate, shed_rate, failure_rate, latency_p99_seconds.",
	}, []string{"namespace", "name", "metric", "track"})
	probeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragops_probe_requests_total",
		Help: "Synthetic analysis requests the operator sent to a track's pods, by result: an HTTP status code, failed or not_sent.",
	}, []string{"namespace", "name", "track", "result"})
)

func init() {
	metrics.Registry.MustRegister(rolloutsTotal, rolloutStep, canaryWeight, analysisVerdicts, analysisValue, probeRequests)
}

// recordAnalysis exports what one interval measured of each track.
func recordAnalysis(svc *ragv1.RAGService, res *analysis.Result) {
	set := func(track string, iv *analysis.Interval) {
		if iv == nil {
			return
		}
		ratio := func(n int64) float64 {
			if iv.Requests == 0 {
				return 0
			}
			return float64(n) / float64(iv.Requests)
		}
		for metric, v := range map[string]float64{
			"requests": float64(iv.Requests), "error_rate": ratio(iv.Errors), "shed_rate": ratio(iv.Shed),
			"failure_rate": ratio(iv.Failures), "latency_p99_seconds": iv.P99.Seconds(),
		} {
			analysisValue.WithLabelValues(svc.Namespace, svc.Name, metric, track).Set(v)
		}
	}
	set(ragv1.TrackCanary, &res.Canary)
	set(ragv1.TrackStable, res.Stable)
}

// observeProbeTraffic counts a slice of probe requests (probetraffic.Observer).
func observeProbeTraffic(key, track string, st probeclient.Stats) {
	ns, name, _ := strings.Cut(key, "/")
	for code, n := range st.ByStatus {
		probeRequests.WithLabelValues(ns, name, track, strconv.Itoa(code)).Add(float64(n))
	}
	if st.Failed > 0 {
		probeRequests.WithLabelValues(ns, name, track, "failed").Add(float64(st.Failed))
	}
	if st.NotSent > 0 {
		probeRequests.WithLabelValues(ns, name, track, "not_sent").Add(float64(st.NotSent))
	}
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
	analysisValue.DeletePartialMatch(labels)
	probeRequests.DeletePartialMatch(labels)
}
