package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
)

// capacity polls the service's pods every 200ms and remembers the fewest ready
// ones seen (Ready condition true and not being deleted), in total and on the
// stable track.
type capacity struct {
	mu                  sync.Mutex
	polls               int
	minTotal, minStable int
	worst               string
	stop                chan struct{}
	done                chan struct{}
}

func watchCapacity(ns, name string) *capacity {
	c := &capacity{minTotal: 1 << 30, minStable: 1 << 30, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			var pods corev1.PodList
			if err := k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: name}); err != nil {
				continue
			}
			total, stable := 0, 0
			var desc []string
			for _, p := range pods.Items {
				ready := p.DeletionTimestamp == nil
				if ready {
					ready = false
					for _, cond := range p.Status.Conditions {
						if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
							ready = true
						}
					}
				}
				if ready {
					total++
					if p.Labels[ragv1.LabelTrack] == ragv1.TrackStable {
						stable++
					}
				}
				desc = append(desc, fmt.Sprintf("%s(ready=%v)", p.Name, ready))
			}
			c.mu.Lock()
			c.polls++
			if total < c.minTotal || stable < c.minStable {
				c.worst = fmt.Sprintf("%s: total %d stable %d: %s", time.Now().Format("15:04:05.000"), total, stable, strings.Join(desc, " "))
			}
			c.minTotal = min(c.minTotal, total)
			c.minStable = min(c.minStable, stable)
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *capacity) finish() (polls, minTotal, minStable int, worst string) {
	close(c.stop)
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.polls, c.minTotal, c.minStable, c.worst
}

// A good change is promoted and a failing one rolled back by the analysis, while
// clients send load to the pods the Service's EndpointSlices list. The stable
// track never fails a request, ready capacity never drops below spec.replicas,
// and `kubectl rag status --watch` exits 0 after the promotion and 1 after the
// rollback.
func TestCanaryPromotedAndRolledBackUnderLoad(t *testing.T) {
	ns := namespace(t, "e2e-rollout")
	const replicas = 3
	base := svcSpec{Name: "docs", Namespace: ns, Replicas: replicas, Analysis: true,
		Steps: "    - setWeight: 34\n    - pause: {duration: 3s}\n    - setWeight: 67\n    - pause: {duration: 3s}\n"}
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
	code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "150s")
	if code != 0 {
		t.Fatalf("kubectl rag status --watch after the good change: exit %d, want 0\n%s", code, tail(out, 30))
	}
	s := getSvc(t, ns, "docs")
	second := s.Status.StableRevision
	if second == first || s.Status.CanaryRevision != "" || s.Status.Phase != ragv1.PhaseHealthy {
		t.Fatalf("after promotion: stable %s (was %s) canary %q phase %s", second, first, s.Status.CanaryRevision, s.Status.Phase)
	}
	// The promoting pass records its decision before it deletes the canary,
	// so that write still counts the canary's ready pods (they serve until
	// deleted); the end of the same pass writes the count without them.
	eventually(t, 10*time.Second, 100*time.Millisecond, "ready replicas after promotion", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.ReadyReplicas == replicas && s.Status.StableRevision == second, fmt.Sprintf("stable %s ready %d, want %d", s.Status.StableRevision, s.Status.ReadyReplicas, replicas)
	})
	t.Logf("promoted %s -> %s", first, second)

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
	eventually(t, 90*time.Second, 100*time.Millisecond, "the bad canary's space found compatible", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		es := s.Status.EmbeddingSpace
		if s.Status.CanaryRevision == "" || es == nil {
			return false, fmt.Sprintf("canary %q, no space check", s.Status.CanaryRevision)
		}
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
	if s.Status.Phase != ragv1.PhaseRolledBack || s.Status.Rollback == nil || s.Status.Rollback.Reason != "AnalysisFailed" || s.Status.StableRevision != second {
		t.Fatalf("after the bad change: phase %s rollback %+v stable %s (want %s)", s.Status.Phase, s.Status.Rollback, s.Status.StableRevision, second)
	}
	// The canary pods go at once.
	eventually(t, 30*time.Second, 500*time.Millisecond, "canary pods removed", func() (bool, string) {
		var pods corev1.PodList
		_ = k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelTrack: ragv1.TrackCanary})
		return len(pods.Items) == 0, fmt.Sprintf("%d canary pods", len(pods.Items))
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
	t.Logf("capacity: %d polls, fewest ready pods %d in total, %d stable (spec.replicas %d); worst: %s", polls, minTotal, minStable, replicas, worst)
	for _, f := range stats.Failures {
		if f.Track != ragv1.TrackStable {
			continue // the canary's 502s are the point of the bad change
		}
		t.Logf("  %s %s %s (%s): %s", f.Time.Format("15:04:05.000"), f.Outcome, f.Pod, f.Track, f.Detail)
	}

	if n := stats.Count(ragv1.TrackStable, loadgen.OutcomeOK); n < 500 {
		t.Errorf("only %d successful requests on the stable track: the load did not run", n)
	}
	if n := stats.Count(ragv1.TrackStable, loadgen.OutcomeError) + stats.Count(ragv1.TrackStable, loadgen.OutcomeConnFail); n != 0 {
		t.Errorf("%d failed requests on the stable track (5xx, 503 without Retry-After, or connection errors to a live pod)", n)
	}
	// A stable pod being deleted (promotion replaces them) keeps answering for
	// its --drain-delay while clients catch up with the endpoints: no request may
	// meet a refused connection there either.
	if n := stats.Count(ragv1.TrackStable, loadgen.OutcomeDrain); n != 0 {
		t.Errorf("%d connection errors to stable pods being deleted: the drain delay did not cover the endpoint update", n)
	}
	// A pod leaving (the old stable pods at the promotion, the canary's at the
	// rollback) serves new requests through its --drain-delay rather than
	// answering 503 draining, which clients back off on (issue 23 item 5).
	for _, track := range []string{ragv1.TrackStable, ragv1.TrackCanary} {
		if n := stats.NotOK[track]["503 "+contract.ShedDraining]; n != 0 {
			t.Errorf("%d requests on the %s track answered 503 draining: a stopping pod refused work", n, track)
		}
	}
	if n := stats.Count(ragv1.TrackCanary, loadgen.OutcomeError); n == 0 {
		t.Errorf("the bad canary answered no errors: the failure was not real")
	}
	if stats.Count("unknown", loadgen.OutcomeOK)+stats.Count("unknown", loadgen.OutcomeError) > 0 {
		t.Errorf("requests went to pods of no known track: %v", stats.Counts["unknown"])
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
