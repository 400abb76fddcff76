package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
)

// A good change is promoted and a failing one rolled back by the analysis, while
// clients send load to the pods the Service's EndpointSlices list (a track is
// the role of a pod's revision in status). Through the canary and the
// promotion every answer is a 200; the stable track never fails a request,
// ready capacity never drops below spec.replicas (sampled every 200ms), and
// `kubectl rag status --watch` exits 0 after the promotion and 1 after the
// rollback. The promotion is a handover: the canary at 100% is at full size,
// its pods (same UIDs) are the ones docs-stable serves afterwards, and no pod
// is created for it.
func TestCanaryPromotedAndRolledBackUnderLoad(t *testing.T) {
	ns := namespace(t, "e2e-rollout")
	const replicas = 3
	base := svcSpec{Name: "docs", Namespace: ns, Replicas: replicas, Analysis: true,
		Steps: "    - setWeight: 34\n    - pause: {duration: 3s}\n    - setWeight: 67\n    - pause: {duration: 3s}\n    - setWeight: 100\n    - pause: {duration: 3s}\n"}
	apply(t, base)
	mustKubectl(t, "", "wait", "--for=condition=Ready", "ragsvc/docs", "-n", ns, "--timeout=90s")
	first := getSvc(t, ns, "docs").Status.StableRevision

	load, err := loadgen.StartLoad(context.Background(), loadgen.LoadConfig{Client: k8s, Namespace: ns, Service: "docs", Concurrency: 4, Rate: 30})
	if err != nil {
		t.Fatal(err)
	}
	capa := watchCapacity(ns, "docs")
	stopped := false
	stop := func() loadgen.Stats {
		stopped = true
		return load.Stop()
	}
	defer func() {
		if !stopped {
			load.Stop()
			capa.finish()
		}
	}()

	// The good change.
	good := base
	good.MaxInFlight = 16
	apply(t, good)
	// The canary at 100%: as many ready pods behind docs-canary as spec.replicas.
	var (
		atFull      map[types.UID]string // the pods docs-canary serves at 100%
		podsAtFull  map[types.UID]string // every pod of the service then
		fullAt      time.Time
		canaryAtTop string
	)
	eventually(t, 120*time.Second, 100*time.Millisecond, "the canary at 100% with all its pods ready", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		if s.Status.CanaryRevision == "" || s.Status.CanaryWeight != 100 {
			return false, fmt.Sprintf("canary %q weight %d step %d", s.Status.CanaryRevision, s.Status.CanaryWeight, s.Status.CurrentStep)
		}
		fullAt = time.Now()
		pods, err := instancePods(ns, "docs")
		if err != nil {
			return false, err.Error()
		}
		atFull, podsAtFull, canaryAtTop = endpointPods(t, ns, "docs-canary"), podUIDs(pods), s.Status.CanaryRevision
		return len(atFull) == replicas, fmt.Sprintf("canary %s at 100%%: %d ready endpoints behind docs-canary", s.Status.CanaryRevision, len(atFull))
	})
	code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "150s")
	if code != 0 {
		t.Fatalf("kubectl rag status --watch after the good change: exit %d, want 0\n%s", code, tail(out, 30))
	}
	s := getSvc(t, ns, "docs")
	second := s.Status.StableRevision
	if second == first || second != canaryAtTop || s.Status.CanaryRevision != "" || s.Status.Phase != ragv1.PhaseHealthy {
		t.Fatalf("after promotion: stable %s (was %s, canary at 100%% %s) canary %q phase %s", second, first, canaryAtTop, s.Status.CanaryRevision, s.Status.Phase)
	}
	var stableAfter map[types.UID]string
	eventually(t, 10*time.Second, 100*time.Millisecond, "docs-stable serving the canary's pods", func() (bool, string) {
		stableAfter = endpointPods(t, ns, "docs-stable")
		return sameUIDs(stableAfter, atFull), fmt.Sprintf("docs-stable: %s; the canary at 100%%: %s", podNames(stableAfter), podNames(atFull))
	})
	created := capa.createdSince(fullAt, podsAtFull)
	t.Logf("promoted %s -> %s: the canary at 100%% had %d ready pods (%s); docs-stable then serves %d pods, the same UIDs; pods created after the canary reached 100%%: %d %v",
		first, second, len(atFull), podNames(atFull), len(stableAfter), len(created), created)
	if len(created) != 0 {
		t.Errorf("the promotion of a canary already at full size created %d pods: %v", len(created), created)
	}
	if d, err := deploymentOf(ns, revisionDeployment("docs", second)); err != nil || *d.Spec.Replicas != replicas {
		t.Errorf("Deployment %s after the promotion: %v %+v", revisionDeployment("docs", second), err, d)
	}
	// Through the canary and the promotion, every client answer was a 200.
	promoted := load.Snapshot()
	if n, ok := promoted.Total(""), promoted.Count("", loadgen.OutcomeOK); n != ok || n < 100 {
		t.Errorf("through the canary and the promotion the clients got %d answers of %d as 200 (codes %v, failures %v)", ok, n, promoted.Codes, promoted.Failures)
	} else {
		t.Logf("through the canary and the promotion: %d requests, all 200", n)
	}

	// The bad change: an upstream that embeds in the same space (64 dimensions,
	// like the builtin model) while the guard probes it, and then fails every
	// call, so every client request the canary takes fails too, whatever its
	// retries. (A partly failing upstream is hidden by the server's retries:
	// with half the calls failing, about one client request in eight fails,
	// and a rollback after a few seconds may leave the clients none.)
	bad := good
	var badUpstream *fakeupstream.Server
	bad.Endpoint, badUpstream = startUpstreamServer(t, fakeupstream.Config{Dims: 64})
	apply(t, bad)
	var badRevision string
	eventually(t, 90*time.Second, 100*time.Millisecond, "the bad canary's space found compatible", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		es := s.Status.EmbeddingSpace
		if s.Status.CanaryRevision == "" || es == nil {
			return false, fmt.Sprintf("canary %q, no space check", s.Status.CanaryRevision)
		}
		badRevision = s.Status.CanaryRevision
		return es.Revision == s.Status.CanaryRevision && es.Verdict == ragv1.SpaceCompatible,
			fmt.Sprintf("canary %q, check of %q: %s %s", s.Status.CanaryRevision, es.Revision, es.Verdict, es.Message)
	})
	badUpstream.SetConfig(fakeupstream.Config{ErrorRate: 1, Dims: 64})
	code, out = exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "120s")
	if code != 1 {
		t.Fatalf("kubectl rag status --watch after the bad change: exit %d, want 1\n%s", code, tail(out, 30))
	}
	if !strings.Contains(out, "AnalysisFailed") {
		t.Fatalf("status output does not name the reason AnalysisFailed:\n%s", tail(out, 30))
	}
	s = getSvc(t, ns, "docs")
	if s.Status.Phase != ragv1.PhaseRolledBack || s.Status.Rollback == nil || s.Status.Rollback.Reason != "AnalysisFailed" || s.Status.StableRevision != second || s.Status.Rollback.Revision != badRevision {
		t.Fatalf("after the bad change: phase %s rollback %+v stable %s (want %s)", s.Status.Phase, s.Status.Rollback, s.Status.StableRevision, second)
	}
	// The canary's pods go at once, and its Deployment with them.
	eventually(t, 30*time.Second, 500*time.Millisecond, "canary pods removed", func() (bool, string) {
		n := revisionPods(t, ns, "docs", badRevision)
		_, err := deploymentOf(ns, revisionDeployment("docs", badRevision))
		return n == 0 && apierrors.IsNotFound(err), fmt.Sprintf("%d pods of the rolled-back revision %s, its Deployment: %v", n, badRevision, err)
	})
	// Load on the stable track after the rollback, too: as many answers as 2 s
	// of the clients' 30 a second.
	rolledBack := load.Snapshot().Count(ragv1.TrackStable, loadgen.OutcomeOK)
	eventually(t, 60*time.Second, 200*time.Millisecond, "60 answers on the stable track after the rollback", func() (bool, string) {
		n := load.Snapshot().Count(ragv1.TrackStable, loadgen.OutcomeOK)
		return n >= rolledBack+60, fmt.Sprintf("%d since the rollback", n-rolledBack)
	})

	stats := stop()
	polls, minTotal, minStable, worst := capa.finish()
	var sb strings.Builder
	stats.Print(&sb)
	t.Logf("load by track:\n%s", sb.String())
	t.Logf("capacity through the rollout, the promotion and the rollback: %d polls every 200ms, fewest ready pods %d in total, %d of the stable revision (spec.replicas %d); worst: %s", polls, minTotal, minStable, replicas, worst)
	for _, f := range stats.Failures {
		if f.Track != ragv1.TrackStable {
			continue // the canary's 502s are the point of the bad change
		}
		t.Logf("  %s %s %s (%s): %s", f.Time.Format("15:04:05.000"), f.Outcome, f.Pod, f.Track, f.Detail)
	}

	if n := stats.Count(ragv1.TrackStable, loadgen.OutcomeOK); n < 500 {
		t.Errorf("only %d successful requests on the stable track: the load did not run", n)
	}
	// Stable answers only 200s: no error, no shed (a 503 draining is a
	// failed request for a client), no connection error.
	if n, ok := stats.Total(ragv1.TrackStable), stats.Count(ragv1.TrackStable, loadgen.OutcomeOK); n != ok {
		t.Errorf("%d of %d requests on the stable track were not answered 200 (codes %v): 5xx, 503, or connection errors, to live pods or to pods being removed", n-ok, n, stats.Codes[ragv1.TrackStable])
	}
	// A pod leaving (the retiring revision's after the handover, the canary's
	// at the rollback) serves new requests through its --drain-delay rather
	// than answering 503 draining, which clients back off on.
	for _, track := range []string{ragv1.TrackStable, ragv1.TrackCanary} {
		if n := stats.NotOK[track]["503 "+contract.ShedDraining]; n != 0 {
			t.Errorf("%d requests on the %s track answered 503 draining: a stopping pod refused work", n, track)
		}
	}
	if n := stats.Count(ragv1.TrackCanary, loadgen.OutcomeError); n == 0 {
		t.Errorf("the bad canary answered no errors: the failure was not real")
	}
	if n := stats.Total(loadgen.TrackUnknown); n > 0 {
		t.Errorf("%d requests went to pods of no known track: %v", n, stats.Counts[loadgen.TrackUnknown])
	}
	if polls < 50 {
		t.Errorf("capacity polled only %d times", polls)
	}
	if minTotal < replicas || minStable < replicas {
		t.Errorf("ready capacity dropped below spec.replicas %d: total %d, stable %d at %s", replicas, minTotal, minStable, worst)
	}
}

// The manager is SIGKILLed in the middle of a canary; the one started after it
// picks the rollout up from the status and promotes it.
func TestManagerKilledMidRolloutResumes(t *testing.T) {
	ns := namespace(t, "e2e-restart")
	base := svcSpec{Name: "docs", Namespace: ns, Replicas: 2,
		Steps: "    - setWeight: 50\n    - pause: {duration: 15s}\n    - setWeight: 100\n    - pause: {duration: 2s}\n"}
	apply(t, base)
	first := waitHealthy(t, ns, "docs", 90*time.Second).Status.StableRevision

	change := base
	change.MaxInFlight = 12
	apply(t, change)
	var during *ragv1.RAGService
	eventually(t, 60*time.Second, 300*time.Millisecond, "canary in its pause step", func() (bool, string) {
		during = getSvc(t, ns, "docs")
		return during.Status.CanaryRevision != "" && during.Status.CurrentStep == 1,
			fmt.Sprintf("canary %q step %d", during.Status.CanaryRevision, during.Status.CurrentStep)
	})
	manager.kill()
	t.Logf("killed the manager at step %d of canary %s", during.Status.CurrentStep, during.Status.CanaryRevision)
	time.Sleep(3 * time.Second)
	// Nothing moves while no operator runs.
	if s := getSvc(t, ns, "docs"); s.Status.CurrentStep != 1 || s.Status.CanaryRevision != during.Status.CanaryRevision {
		t.Fatalf("status changed with no manager: step %d canary %s", s.Status.CurrentStep, s.Status.CanaryRevision)
	}
	if err := manager.start(); err != nil {
		t.Fatal(err)
	}
	code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "120s")
	if code != 0 {
		t.Fatalf("after the restart: kubectl rag status --watch exit %d\n%s", code, tail(out, 30))
	}
	s := getSvc(t, ns, "docs")
	if s.Status.StableRevision != during.Status.CanaryRevision || s.Status.StableRevision == first {
		t.Fatalf("after the restart: stable %s, want the canary %s", s.Status.StableRevision, during.Status.CanaryRevision)
	}
	// As after any promotion, the count settles at the end of the promoting pass.
	eventually(t, 10*time.Second, 100*time.Millisecond, "ready replicas after the resumed promotion", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.ReadyReplicas == 2 && s.Status.StableRevision == during.Status.CanaryRevision, fmt.Sprintf("stable %s ready %d, want 2", s.Status.StableRevision, s.Status.ReadyReplicas)
	})
}

// kubectl rag status: 3 while in progress without --watch, 2 when --watch times
// out, 4 for a service that does not exist (0 and 1 are checked above).
func TestKubectlRagStatusExitCodes(t *testing.T) {
	ns := namespace(t, "e2e-status")
	base := svcSpec{Name: "docs", Namespace: ns, Replicas: 1, Steps: "    - setWeight: 100\n    - pause: {}\n"}
	apply(t, base)
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "90s"); code != 0 {
		t.Fatalf("first revision: exit %d\n%s", code, tail(out, 20))
	}
	change := base
	change.MaxInFlight = 4
	apply(t, change) // waits in `pause: {}` for a promote that never comes
	eventually(t, 60*time.Second, 300*time.Millisecond, "Paused at the manual step", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.Phase == ragv1.PhasePaused && s.Status.ObservedGeneration == s.Generation, string(s.Status.Phase)
	})
	if code, out := exitCode("rag", "status", "docs", "-n", ns); code != 3 {
		t.Errorf("in progress without --watch: exit %d, want 3\n%s", code, out)
	}
	start := time.Now()
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "3s"); code != 2 {
		t.Errorf("--watch --timeout 3s on a paused rollout: exit %d, want 2\n%s", code, tail(out, 10))
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("--timeout 3s returned after %v", d)
	}
	if code, out := exitCode("rag", "status", "nothere", "-n", ns); code != 4 {
		t.Errorf("missing service: exit %d, want 4\n%s", code, out)
	}
	// And the manual step ends with kubectl rag promote.
	mustKubectl(t, "", "rag", "promote", "docs", "-n", ns)
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "90s"); code != 0 {
		t.Fatalf("after kubectl rag promote: exit %d\n%s", code, tail(out, 20))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// deploymentOf reads a Deployment.
func deploymentOf(ns, name string) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d)
	return &d, err
}
