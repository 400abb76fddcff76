package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/analysis"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/rollout"
)

// An openai-provider service whose upstreams are fakes on the host end of the
// pod network (the same vectors, so the space is the same): stable's answers
// in 5 ms, the canary's in 400 ms. Every absolute threshold passes (p99 below
// 2s, no errors); the comparison with stable over the same interval rolls the
// canary back on the latency ratio, and the message says so with both values.
func TestAnalysisComparesLatencyWithStable(t *testing.T) {
	ns := namespace(t, "e2e-latency")
	fast := startUpstream(t, fakeupstream.Config{Latency: fakeupstream.Latency{Base: 5 * time.Millisecond}, Dims: 64})
	slow := startUpstream(t, fakeupstream.Config{Latency: fakeupstream.Latency{Base: 400 * time.Millisecond}, Dims: 64})
	base := svcSpec{Name: "embed", Namespace: ns, Replicas: 2, Endpoint: fast, Analysis: true,
		Steps: "    - setWeight: 50\n    - pause: {duration: 20s}\n"}
	apply(t, base)
	waitHealthy(t, ns, "embed", 90*time.Second)
	load := startClients(t, ns, "embed")
	defer load.Stop()

	canary := base
	canary.Endpoint = slow
	patched := time.Now()
	apply(t, canary)
	var s *ragv1.RAGService
	eventually(t, 120*time.Second, 250*time.Millisecond, "rollback AnalysisFailed", func() (bool, string) {
		s = getSvc(t, ns, "embed")
		rb := s.Status.Rollback
		return rb != nil && rb.Reason == rollout.ReasonAnalysisFailed, fmt.Sprintf("phase %s analysis %+v", s.Status.Phase, s.Status.Analysis)
	})
	msg := s.Status.Rollback.Message
	t.Logf("stable 5ms, canary 400ms upstream: rolled back %s after the patch: %s", time.Since(patched).Round(100*time.Millisecond), msg)
	if !strings.Contains(msg, "vs stable") || !strings.Contains(msg, "> x2") || !strings.Contains(msg, "p99") {
		t.Errorf("the rollback message does not name the latency ratio with stable's value: %s", msg)
	}
	if !strings.Contains(msg, "error rate 0.0000 <= 0.01") {
		t.Errorf("the absolute thresholds should have passed (no errors): %s", msg)
	}
	if es := s.Status.EmbeddingSpace; es == nil || es.Verdict != ragv1.SpaceCompatible {
		t.Errorf("the slow canary embeds in the same space: %+v", es)
	}
}

// A service with no client at all: the operator's probe requests alone make
// the analysis conclusive, and a good change is promoted on them.
func TestQuietServicePromotedOnProbeRequests(t *testing.T) {
	ns := namespace(t, "e2e-quiet")
	base := svcSpec{Name: "quiet", Namespace: ns, Replicas: 2, Analysis: true,
		Steps: "    - setWeight: 50\n    - pause: {duration: 6s}\n"}
	apply(t, base)
	waitHealthy(t, ns, "quiet", 90*time.Second)

	good := base
	good.MaxInFlight = 16
	patched := time.Now()
	apply(t, good)
	var passed *ragv1.AnalysisStatus
	var canaryCounts string
	eventually(t, 150*time.Second, 250*time.Millisecond, "promoted", func() (bool, string) {
		s := getSvc(t, ns, "quiet")
		if a := s.Status.Analysis; a != nil && a.Verdict == ragv1.VerdictPass && passed == nil {
			passed = a.DeepCopy()
			if ip := firstEndpoint(t, ns, "quiet-canary"); ip != "" {
				canaryCounts = requestsOf(ip)
			}
		}
		return s.Status.Phase == ragv1.PhaseHealthy && s.Status.ObservedGeneration == s.Generation && s.Status.CanaryRevision == "" && s.Status.StableRevision != "",
			fmt.Sprintf("phase %s analysis %+v", s.Status.Phase, s.Status.Analysis)
	})
	took := time.Since(patched)
	if passed == nil || passed.Requests < 5 || passed.Baseline == nil || passed.Baseline.Requests < 5 {
		t.Fatalf("no passing interval on probe requests: %+v", passed)
	}
	t.Logf("no clients: promoted %s after the patch; a passing interval of 3s: %d requests on the 1 canary pod (%.1f/s per pod), %d on the 2 stable pods (%.1f/s per pod): %s",
		took.Round(100*time.Millisecond), passed.Requests, float64(passed.Requests)/3, passed.Baseline.Requests, float64(passed.Baseline.Requests)/3/2, passed.Message)
	t.Logf("the canary pod's embedserver_requests_total by code when it passed: %s", canaryCounts)
	// Per interval of 3s and probeRequests 10 per track, a track of 1 canary pod gets 10 per 3s.
	if want := analysis.DefaultProbeRequests; passed.Requests > int64(3*want) {
		t.Errorf("an interval counted %d requests: more than the probe requests alone (%d per interval) with no clients", passed.Requests, want)
	}
}

func firstEndpoint(t *testing.T, ns, service string) string {
	t.Helper()
	var eps discoveryv1.EndpointSliceList
	if err := k8s.List(context.Background(), &eps, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		return ""
	}
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			if len(e.Addresses) > 0 {
				return e.Addresses[0]
			}
		}
	}
	return ""
}

// requestsOf reads embedserver_requests_total from a pod's admin port.
func requestsOf(ip string) string {
	resp, err := http.Get("http://" + ip + ":9090/metrics")
	if err != nil {
		return "(gone: " + err.Error() + ")"
	}
	defer resp.Body.Close()
	s, err := analysis.ParseSample(resp.Body)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%v", s.Codes)
}
