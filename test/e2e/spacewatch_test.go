package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/rollout"
)

// readyEndpoints counts the ready endpoints behind a Service.
func readyEndpoints(t *testing.T, ns, service string) int {
	t.Helper()
	var list discoveryv1.EndpointSliceList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		t.Fatalf("listing EndpointSlices: %v", err)
	}
	n := 0
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n++
			}
		}
	}
	return n
}

// The space watch on real pods: an openai-provider service on a fake
// upstream at the pod network's host address; the upstream starts serving
// another model of the same dimension behind the same address while the
// service runs (no spec change, no canary). Within one watch interval (3 s
// here) the service is SpaceDrifted and, with onDrift StopTraffic, the shared
// Service has no ready endpoint; kubectl rag accept-space brings it back.
func TestSpaceWatchSeesUpstreamReplaced(t *testing.T) {
	ns := namespace(t, "e2e-spacewatch")
	url, up := startUpstreamServer(t, fakeupstream.Config{Dims: 64, Space: &fakeupstream.Space{}})
	apply(t, svcSpec{Name: "docs", Namespace: ns, Replicas: 2, Model: "team-model", Endpoint: url,
		SpaceCheck: "      watchInterval: 3s\n      onDrift: StopTraffic\n"})
	waitHealthy(t, ns, "docs", 90*time.Second)
	eventually(t, 30*time.Second, 200*time.Millisecond, "a fingerprint of stable's space", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.SpaceWatch != nil && s.Status.SpaceWatch.Fingerprint != nil, fmt.Sprintf("status %+v", s.Status.SpaceWatch)
	})
	eventually(t, 30*time.Second, 200*time.Millisecond, "2 ready endpoints", func() (bool, string) {
		n := readyEndpoints(t, ns, "docs")
		return n == 2, fmt.Sprintf("%d", n)
	})

	replaced := time.Now()
	up.SetConfig(fakeupstream.Config{Dims: 64, Space: &fakeupstream.Space{Seed: 7}})
	var s *ragv1.RAGService
	eventually(t, 30*time.Second, 100*time.Millisecond, "SpaceDrifted and no endpoint behind docs", func() (bool, string) {
		s = getSvc(t, ns, "docs")
		c := apimeta.FindStatusCondition(s.Status.Conditions, ragv1.ConditionSpaceDrifted)
		n := readyEndpoints(t, ns, "docs")
		return c != nil && c.Status == "True" && c.Reason == rollout.ReasonUpstreamSpaceChanged && n == 0,
			fmt.Sprintf("condition %+v, %d ready endpoints", c, n)
	})
	t.Logf("SpaceDrifted and no endpoint %s after the upstream changed model (watch interval 3s): %s",
		time.Since(replaced).Round(100*time.Millisecond), apimeta.FindStatusCondition(s.Status.Conditions, ragv1.ConditionSpaceDrifted).Message)
	if s.Status.Phase != ragv1.PhaseDegraded {
		t.Errorf("phase %s, want Degraded", s.Status.Phase)
	}
	if n := readyEndpoints(t, ns, "docs-stable"); n != 2 {
		t.Errorf("docs-stable has %d ready endpoints, want 2 (for whoever investigates)", n)
	}
	// Exit code 1: the service is Degraded (Stalled), as documented.
	out, _, _ := kubectl("", "rag", "-n", ns, "status", "docs")
	t.Logf("kubectl rag status:\n%s", out)
	if !strings.Contains(out, "Space watch: every 3s, DRIFTED") || !strings.Contains(out, "kubectl rag accept-space docs") {
		t.Errorf("kubectl rag status does not show the drift and what to do:\n%s", out)
	}

	mustKubectl(t, "", "rag", "-n", ns, "accept-space", "docs")
	eventually(t, 30*time.Second, 100*time.Millisecond, "drift accepted, endpoints back", func() (bool, string) {
		s = getSvc(t, ns, "docs")
		c := apimeta.FindStatusCondition(s.Status.Conditions, ragv1.ConditionSpaceDrifted)
		n := readyEndpoints(t, ns, "docs")
		return c == nil && n == 2 && s.Status.SpaceWatch.AcceptedToken != "", fmt.Sprintf("condition %+v, %d ready endpoints", c, n)
	})
	var svc corev1.Service
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "docs"}, &svc); err != nil {
		t.Fatal(err)
	}
	t.Logf("after accept-space: selector %v", svc.Spec.Selector)
}
