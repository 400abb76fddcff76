package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fleet"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
)

// fleetSpec: one pod, one canary step and a short pause, no analysis: a
// canary promotes a second after its pod is ready and its space checked (so
// canaries overlap long enough to be counted), and fails at its progress
// deadline when its pod never becomes ready. The deadline outlasts the
// manager restart midway: a canary whose start was recorded just before
// the stop gets its Deployment only at its first pass after the start,
// which comes after 50 others' (4 to 5 s on the full suite), and would
// otherwise be rolled back for a deadline spent with no manager running.
func fleetSpec(s *ragv1.RAGService) {
	s.Spec.Rollout = ragv1.RolloutSpec{
		Strategy: ragv1.StrategyCanary,
		Steps: []ragv1.RolloutStep{
			{SetWeight: ptr.To(int32(50))},
			{Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: time.Second}}},
		},
		ProgressDeadline: metav1.Duration{Duration: 15 * time.Second},
		AutoRollback:     ptr.To(true),
	}
}

// fleetSampler is what the test saw of the fleet, sampled every 25 ms.
type fleetSampler struct {
	mu sync.Mutex
	// maxCanaries is the most operator-caused canaries seen at once (the
	// services in exclude aside: their canaries are their users' own).
	maxCanaries int
	// firstCanary is when each service was first seen with a canary.
	firstCanary map[string]time.Time
	// firstRollback is when each service was first seen to have rolled
	// back its operator-caused revision.
	firstRollback map[string]time.Time
	exclude       map[string]bool
}

func sampleFleet(t *testing.T, ns string, exclude ...string) (*fleetSampler, func()) {
	s := &fleetSampler{firstCanary: map[string]time.Time{}, firstRollback: map[string]time.Time{}, exclude: map[string]bool{}}
	for _, e := range exclude {
		s.exclude[e] = true
	}
	stop := pollEvery(t, 25*time.Millisecond, func(ctx context.Context) {
		list := &ragv1.RAGServiceList{}
		if err := k8sClient.List(ctx, list, client.InNamespace(ns)); err != nil {
			return
		}
		now, n := time.Now(), 0
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, svc := range list.Items {
			if rb, fr := svc.Status.Rollback, svc.Status.FleetRollout; rb != nil && fr != nil && rb.Revision == fr.Revision {
				if _, ok := s.firstRollback[svc.Name]; !ok {
					s.firstRollback[svc.Name] = now
				}
			}
			if svc.Status.CanaryRevision == "" {
				continue
			}
			if _, ok := s.firstCanary[svc.Name]; !ok {
				s.firstCanary[svc.Name] = now
			}
			if !s.exclude[svc.Name] {
				n++
			}
		}
		s.maxCanaries = max(s.maxCanaries, n)
	})
	return s, stop
}

// stableImage is the image of the Deployment running a service's stable
// revision (whatever the Deployments are named).
func stableImage(g Gomega, ns string, svc *ragv1.RAGService) string {
	deps := &appsv1.DeploymentList{}
	g.Expect(k8sClient.List(context.Background(), deps, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: svc.Name})).To(Succeed())
	for _, d := range deps.Items {
		if d.Spec.Template.Labels[ragv1.LabelRevision] == svc.Status.StableRevision && ptr.Deref(d.Spec.Replicas, 1) > 0 {
			return d.Spec.Template.Spec.Containers[0].Image
		}
	}
	return ""
}

func fleetName(i int) string { return fmt.Sprintf("svc-%02d", i) }

// An operator upgrade that changes the default embedding-server image of 50
// services starts at most --max-fleet-canaries canaries at once, in
// namespace/name order, and every service ends on the new image; a user's
// own change made meanwhile is not queued, and a manager restarted midway
// keeps the limit. Then a default image whose pods
// never become ready: after --fleet-failure-limit rollbacks nothing more
// starts, the waiting services stay on their image and say why.
func TestFleetRollout(t *testing.T) {
	const (
		n            = 50
		maxCanaries  = 5
		failureLimit = 2
		v1           = "ragops/embedserver:fleet-v1"
		v2           = "ragops/embedserver:fleet-v2"
		bad          = "ragops/embedserver:stuck"
	)
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	// Last, once this test's managers stopped: its 50 services go, or every
	// later manager that watches all namespaces (with another default image)
	// would start a fleet rollout of them before its own test's services.
	// Their 150 Services go too: envtest runs no garbage collector, and its
	// API server hands out cluster IPs from a /24, so the cluster IPs they
	// hold would leave later tests' Services none ("range is full").
	t.Cleanup(func() { deleteFleet(t, ns) })
	startSim(t, ns, quiet)
	withImage := func(image string) func(*RAGServiceReconciler) {
		return func(r *RAGServiceReconciler) {
			r.EmbedServerImage, r.MaxFleetCanaries, r.FleetFailureLimit = image, maxCanaries, failureLimit
		}
	}

	// The fleet on v1.
	m := startManagerOn(t, cfg, ns, withImage(v1))
	start := time.Now()
	for i := range n {
		g.Expect(k8sClient.Create(ctx, newService(ns, fleetName(i), 1, fleetSpec))).To(Succeed())
	}
	for i := range n {
		waitHealthy(t, ns, fleetName(i), 90*time.Second)
	}
	t.Logf("%d services healthy on %s in %s", n, v1, time.Since(start).Round(time.Millisecond))
	m.stop()

	// The upgrade: a manager whose default image is v2. The last service's
	// user edits its spec while it waits: its canary starts at once.
	user := fleetName(n - 1)
	sampler, stopSampling := sampleFleet(t, ns, user)
	start = time.Now()
	m = startManagerOn(t, cfg, ns, withImage(v2))
	// The services waiting say so (the last by name, which waits longest).
	waiter := fleetName(n - 2)
	g.Eventually(func(g Gomega) {
		c := condition(get(g, ns, waiter), ragv1.ConditionReconciling)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Reason).To(Equal(fleet.ReasonWaiting))
		g.Expect(c.Message).To(ContainSubstring(v2))
		g.Expect(c.Message).To(ContainSubstring(fmt.Sprintf("at most %d operator-caused canaries", maxCanaries)))
		conditionIs(g, get(g, ns, waiter), ragv1.ConditionReady, metav1.ConditionFalse, fleet.ReasonWaiting)
	}, time.Minute, 25*time.Millisecond).Should(Succeed())
	waiterSaid := time.Since(start)
	update(t, ns, user, func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight++ })
	userEdited := time.Now()
	g.Eventually(func() bool {
		sampler.mu.Lock()
		defer sampler.mu.Unlock()
		_, ok := sampler.firstCanary[user]
		return ok
	}, 10*time.Second, 25*time.Millisecond).Should(BeTrue(), "the user's own change waited")
	userStarted := time.Since(userEdited)
	// Services ahead of it by name that had not started when it did.
	waitingWhenUserStarted := 0
	sampler.mu.Lock()
	for i := range n - 1 {
		if at, ok := sampler.firstCanary[fleetName(i)]; !ok || at.After(sampler.firstCanary[user]) {
			waitingWhenUserStarted++
		}
	}
	sampler.mu.Unlock()

	// A manager restart midway: the new one counts the canaries running and
	// the services done from their status alone (the old one's slots handed
	// out die with it), and starts no more than the limit either.
	g.Eventually(func() int {
		sampler.mu.Lock()
		defer sampler.mu.Unlock()
		return len(sampler.firstCanary)
	}, time.Minute, 25*time.Millisecond).Should(BeNumerically(">=", n/3))
	m.stop()
	runningAtRestart := 0
	for _, svc := range listFleet(g, ns) {
		if svc.Status.CanaryRevision != "" {
			runningAtRestart++
		}
	}
	m = startManagerOn(t, cfg, ns, withImage(v2))

	g.Eventually(func(g Gomega) {
		for _, svc := range listFleet(g, ns) {
			g.Expect(svc.Status.CanaryRevision).To(BeEmpty(), "%s", svc.Name)
			g.Expect(stableImage(g, ns, &svc)).To(Equal(v2), "%s", svc.Name)
			g.Expect(apimeta.IsStatusConditionTrue(svc.Status.Conditions, ragv1.ConditionReady)).To(BeTrue(), "%s: %+v", svc.Name, svc.Status.Conditions)
		}
	}, 5*time.Minute, 200*time.Millisecond).Should(Succeed())
	upgradeTook := time.Since(start)
	stopSampling()

	sampler.mu.Lock()
	maxSeen, first := sampler.maxCanaries, sampler.firstCanary
	sampler.mu.Unlock()
	t.Logf("upgrade to %s: %d services in %s, at most %d operator-caused canaries at once; %s said it waits %s after the manager started; the user's change started %s after the edit with %d services still waiting; the manager restarted with %d canaries running (the user's among them)",
		v2, n, upgradeTook.Round(time.Millisecond), maxSeen, waiter, waiterSaid.Round(time.Millisecond), userStarted.Round(time.Millisecond), waitingWhenUserStarted, runningAtRestart)
	g.Expect(maxSeen).To(BeNumerically("<=", maxCanaries), "more operator-caused canaries at once than --max-fleet-canaries")
	g.Expect(maxSeen).To(BeNumerically(">=", 2), "the canaries never overlapped: the sample says nothing of the limit")
	g.Expect(waitingWhenUserStarted).To(BeNumerically(">=", 10), "the user's change did not start before its turn")
	g.Expect(first).To(HaveLen(n), "every service ran a canary")
	// The order: slots go by name, so when a service starts, every one
	// ahead of it was admitted too; those not started yet hold slots of
	// their own (admitted together, their passes come in the work queue's
	// order), so fewer than maxCanaries of them can start after it.
	for k := 1; k < n-1; k++ {
		var later []string
		for j := range k {
			if first[fleetName(j)].After(first[fleetName(k)]) {
				later = append(later, fleetName(j))
			}
		}
		g.Expect(len(later)).To(BeNumerically("<", maxCanaries), "%s started before %v, ahead of it by name", fleetName(k), later)
	}
	m.stop()

	// A default image whose pods never become ready.
	sampler, stopSampling = sampleFleet(t, ns)
	start = time.Now()
	startManagerOn(t, cfg, ns, withImage(bad))
	var rolledBack, stopped []string
	// Each rollback comes a progress deadline (15 s) after its start, and a
	// start after a rollback freed its slot: about two deadlines in all.
	g.Eventually(func(g Gomega) {
		rolledBack, stopped = nil, nil
		for _, svc := range listFleet(g, ns) {
			switch c := condition(&svc, ragv1.ConditionStalled); {
			case svc.Status.Rollback != nil && svc.Status.FleetRollout != nil && svc.Status.Rollback.Revision == svc.Status.FleetRollout.Revision:
				g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
				rolledBack = append(rolledBack, svc.Name)
			case c != nil && c.Reason == fleet.ReasonStopped:
				g.Expect(c.Message).To(ContainSubstring(bad))
				conditionIs(g, &svc, ragv1.ConditionReady, metav1.ConditionFalse, fleet.ReasonStopped)
				stopped = append(stopped, svc.Name)
			}
		}
		g.Expect(len(rolledBack) + len(stopped)).To(Equal(n))
	}, 2*time.Minute, 100*time.Millisecond).Should(Succeed())
	stopTook := time.Since(start)
	// Nothing more starts: what was stopped stays so.
	g.Consistently(func(g Gomega) {
		for _, svc := range listFleet(g, ns) {
			g.Expect(svc.Status.CanaryRevision).To(BeEmpty(), "%s started a canary after the fleet rollout stopped", svc.Name)
		}
	}, 2*time.Second, 100*time.Millisecond).Should(Succeed())
	stopSampling()
	sampler.mu.Lock()
	maxBad, started := sampler.maxCanaries, len(sampler.firstCanary)
	var rollbackTimes []time.Time
	for _, at := range sampler.firstRollback {
		rollbackTimes = append(rollbackTimes, at)
	}
	slices.SortFunc(rollbackTimes, time.Time.Compare)
	lateStarts := []string{}
	if len(rollbackTimes) >= failureLimit {
		// The limit was reached when the failureLimit-th rollback showed: no
		// canary may show after it (one seen in the same sample may have
		// started before it: the sample cannot order them).
		limitAt := rollbackTimes[failureLimit-1]
		for name, at := range sampler.firstCanary {
			if at.After(limitAt) {
				lateStarts = append(lateStarts, name)
			}
		}
	}
	sampler.mu.Unlock()
	t.Logf("bad image %s: %d canaries started (at most %d at once), %d rolled back, %d services stopped on %s, in %s",
		bad, started, maxBad, len(rolledBack), len(stopped), v2, stopTook.Round(time.Millisecond))
	g.Expect(len(rolledBack)).To(BeNumerically(">=", failureLimit))
	g.Expect(lateStarts).To(BeEmpty(), "canaries started after the failure limit was reached")
	// The first maxCanaries start together; each later start needs a slot a
	// rollback freed, and only failureLimit-1 rollbacks come before the stop.
	g.Expect(len(rolledBack)).To(BeNumerically("<=", maxCanaries+failureLimit-1), "canaries started after the failure limit was reached")
	g.Expect(started).To(Equal(len(rolledBack)))
	g.Expect(maxBad).To(BeNumerically("<=", maxCanaries))
	slices.Sort(rolledBack)
	g.Expect(rolledBack[0]).To(Equal(fleetName(0)), "the queue's order")
	for _, name := range stopped {
		svc := get(g, ns, name)
		g.Expect(stableImage(g, ns, svc)).To(Equal(v2), "%s left its image", name)
	}
	g.Eventually(func() []string { return eventReasons(g, ns, stopped[0]) }, 10*time.Second, 100*time.Millisecond).Should(ContainElement(fleet.ReasonStopped))
	g.Expect(testutil.ToFloat64(fleetStopped)).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(fleetWaiting)).To(BeNumerically(">=", 1))

	// A user who pins the image the service runs takes it out of the fleet
	// rollout at once, stopped or not; once every waiting service is pinned
	// none is counted waiting, and the image's rollout stays stopped.
	for _, name := range stopped {
		update(t, ns, name, func(s *ragv1.RAGService) { s.Spec.Image = v2 })
	}
	for _, name := range stopped {
		waitHealthy(t, ns, name, 30*time.Second)
	}
	g.Eventually(func() float64 { return testutil.ToFloat64(fleetWaiting) }, 10*time.Second, 50*time.Millisecond).Should(BeZero())
	g.Expect(testutil.ToFloat64(fleetStopped)).To(Equal(1.0))
}

func listFleet(g Gomega, ns string) []ragv1.RAGService {
	list := &ragv1.RAGServiceList{}
	g.Expect(k8sClient.List(context.Background(), list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// deleteFleet deletes what the fleet's services and the sim made in ns.
// Services have no delete-collection: one by one.
func deleteFleet(t *testing.T, ns string) {
	ctx := context.Background()
	for _, obj := range []client.Object{&ragv1.RAGService{}, &appsv1.Deployment{}, &corev1.Pod{}, &policyv1.PodDisruptionBudget{}} {
		if err := k8sClient.DeleteAllOf(ctx, obj, client.InNamespace(ns), client.GracePeriodSeconds(0)); err != nil {
			t.Errorf("deleting the fleet's %T: %v", obj, err)
		}
	}
	svcs := &corev1.ServiceList{}
	if err := k8sClient.List(ctx, svcs, client.InNamespace(ns)); err != nil {
		t.Errorf("listing the fleet's Services: %v", err)
		return
	}
	for i := range svcs.Items {
		if err := k8sClient.Delete(ctx, &svcs.Items[i]); client.IgnoreNotFound(err) != nil {
			t.Errorf("deleting Service %s: %v", svcs.Items[i].Name, err)
		}
	}
}
