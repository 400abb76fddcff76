package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// An operator upgrade that changes the default embedding-server image, on the
// local cluster: with --max-fleet-canaries=1 the canaries the operator causes
// run one at a time across the cluster, the services still waiting say so,
// a user's own change starts at once, and every service ends on the new
// image. (The failure limit is tested in envtest, controllers/fleet_test.go:
// the node agent runs every image alike, so no image fails here.)
func TestFleetRolloutStaged(t *testing.T) {
	const newImage = "ragops/embedserver:e2e-fleet"
	ns := namespace(t, "e2e-fleet")
	names := []string{"a", "b", "c", "d"}
	spec := func(name string) svcSpec {
		return svcSpec{Name: name, Namespace: ns, Replicas: 1, Steps: "    - setWeight: 50\n    - pause: {duration: 5s}\n"}
	}
	for _, n := range names {
		apply(t, spec(n))
	}
	for _, n := range names {
		waitHealthy(t, ns, n, 120*time.Second)
	}

	// The upgrade: the manager restarted with another default image.
	manager.stop()
	manager.args = []string{"--embedserver-image=" + newImage, "--max-fleet-canaries=1"}
	t.Cleanup(func() {
		// Back to the suite's manager, without this test's services (they
		// would roll back to the old default image for nothing).
		_, _, _ = kubectl("", "delete", "ragsvc", "--all", "-n", ns, "--wait=false")
		manager.stop()
		manager.args = nil
		if err := manager.start(); err != nil {
			t.Error(err)
		}
	})
	s := sampleCanaries(t)
	if err := manager.start(); err != nil {
		t.Fatal(err)
	}

	// The last service by name waits; its user edits its spec: the canary
	// starts at once, while services ahead of it still wait.
	user := names[len(names)-1]
	eventually(t, 60*time.Second, 200*time.Millisecond, user+" waiting for the fleet rollout", func() (bool, string) {
		svc := getSvc(t, ns, user)
		r := reason(svc, ragv1.ConditionReconciling)
		return r == "WaitingForFleetRollout", fmt.Sprintf("reason %q canary %q", r, svc.Status.CanaryRevision)
	})
	change := spec(user)
	change.MaxInFlight = 12
	apply(t, change)
	edited := time.Now()
	var stillWaiting []string
	eventually(t, 30*time.Second, 200*time.Millisecond, user+"'s own canary", func() (bool, string) {
		svc := getSvc(t, ns, user)
		if svc.Status.CanaryRevision == "" {
			return false, "no canary yet"
		}
		stillWaiting = nil
		for _, n := range names[:len(names)-1] {
			if reason(getSvc(t, ns, n), ragv1.ConditionReconciling) == "WaitingForFleetRollout" {
				stillWaiting = append(stillWaiting, n)
			}
		}
		return true, ""
	})
	t.Logf("%s's own change started its canary %s after the edit; still waiting then: %v", user, time.Since(edited).Round(time.Millisecond), stillWaiting)
	if len(stillWaiting) == 0 {
		t.Errorf("no service was waiting when %s's change started: the test shows nothing about a user's change not being queued", user)
	}

	for _, n := range names {
		eventually(t, 3*time.Minute, 500*time.Millisecond, n+" on "+newImage, func() (bool, string) {
			svc := getSvc(t, ns, n)
			img := stableImage(t, ns, svc)
			return svc.Status.Phase == ragv1.PhaseHealthy && svc.Status.CanaryRevision == "" && img == newImage,
				fmt.Sprintf("phase %s canary %q stable image %q", svc.Status.Phase, svc.Status.CanaryRevision, img)
		})
	}
	most, order := s.stop()
	t.Logf("at most %d operator-caused canaries at once across the cluster; started in the order %v", most, order)
	if most > 1 {
		t.Errorf("%d operator-caused canaries ran at once, want at most 1 (--max-fleet-canaries=1)", most)
	}
	var ours []string
	for _, k := range order {
		if ns2, name, _ := strings.Cut(k, "/"); ns2 == ns && name != user {
			ours = append(ours, name)
		}
	}
	if !slices.IsSorted(ours) || len(ours) != len(names)-1 {
		t.Errorf("operator-caused canaries of %s started in the order %v, want %v", ns, ours, names[:len(names)-1])
	}
}

func reason(svc *ragv1.RAGService, condition string) string {
	for _, c := range svc.Status.Conditions {
		if c.Type == condition {
			return c.Reason
		}
	}
	return ""
}

// stableImage is the image of the Deployment running the service's stable
// revision, whatever the Deployments are named.
func stableImage(t *testing.T, ns string, svc *ragv1.RAGService) string {
	t.Helper()
	deps := &appsv1.DeploymentList{}
	if err := k8s.List(context.Background(), deps, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: svc.Name}); err != nil {
		t.Fatalf("listing Deployments: %v", err)
	}
	for _, d := range deps.Items {
		if d.Spec.Template.Labels[ragv1.LabelRevision] == svc.Status.StableRevision && (d.Spec.Replicas == nil || *d.Spec.Replicas > 0) {
			return d.Spec.Template.Spec.Containers[0].Image
		}
	}
	return ""
}

// canarySampler counts, across the cluster, the canaries the operator caused
// (status.fleetRollout.revision is the canary's), every 100ms.
type canarySampler struct {
	mu    sync.Mutex
	most  int
	order []string // namespace/name, in the order their operator-caused canaries were first seen
	seen  map[string]bool
	poll  *poller
	once  sync.Once
}

func sampleCanaries(t *testing.T) *canarySampler {
	s := &canarySampler{seen: map[string]bool{}}
	s.poll = startPolling(100*time.Millisecond, func() {
		list := &ragv1.RAGServiceList{}
		if err := k8s.List(context.Background(), list); err != nil {
			return
		}
		n := 0
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, svc := range list.Items {
			fr := svc.Status.FleetRollout
			if svc.Status.CanaryRevision == "" || fr == nil || fr.Revision != svc.Status.CanaryRevision {
				continue
			}
			n++
			if k := svc.Namespace + "/" + svc.Name; !s.seen[k] {
				s.seen[k] = true
				s.order = append(s.order, k)
			}
		}
		s.most = max(s.most, n)
	})
	t.Cleanup(func() { s.stop() })
	return s
}

func (s *canarySampler) stop() (most int, order []string) {
	s.once.Do(s.poll.halt)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most, slices.Clone(s.order)
}
