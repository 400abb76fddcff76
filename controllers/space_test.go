package controllers

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/embeddingspace"
	"github.com/ragops/rag-operator/internal/probeclient"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// spaceSpec: two short steps, no analysis: the tests are about the space.
func spaceSpec(s *ragv1.RAGService) {
	s.Spec.Rollout = ragv1.RolloutSpec{
		Strategy: ragv1.StrategyCanary,
		Steps: []ragv1.RolloutStep{
			{SetWeight: ptr.To(int32(50))},
			{Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: time.Second}}},
		},
		ProgressDeadline: metav1.Duration{Duration: 30 * time.Second},
	}
}

// servedWatch records, every 20 ms, what the shared Service sends clients to:
// the models of the ready pods its selector takes, and their number.
type servedWatch struct {
	mu        sync.Mutex
	selectors []string         // distinct track selections seen, in order
	mixed     []string         // moments when pods of two models were behind it
	minReady  int32            // fewest ready pods behind it once full
	full      bool             // it had spec.replicas ready pods behind it once
	models    map[string]bool  // every model seen behind it
	canary    map[string]int32 // most ready canary pods seen per selection
}

func watchServed(t *testing.T, sim *sim, ns, name string, replicas int32) *servedWatch {
	w := &servedWatch{models: map[string]bool{}, canary: map[string]int32{}}
	pollEvery(t, 20*time.Millisecond, func(ctx context.Context) {
		svc, rs := &corev1.Service{}, &ragv1.RAGService{}
		if err := k8sClient.Get(ctx, keyOf(ns, name), svc); err != nil {
			return
		}
		if err := k8sClient.Get(ctx, keyOf(ns, name), rs); err != nil {
			return
		}
		// The selection by role: the Service selects revisions, status
		// says which is stable and which the canary.
		sel := selectionOf(svc.Spec.Selector, rs.Status.RolloutStatus)
		models, ready := sim.behind(name, svc.Spec.Selector)
		canaryReady := int32(0)
		if c := rs.Status.CanaryRevision; c != "" {
			_, canaryReady = sim.behind(name, map[string]string{ragv1.LabelRevision: c})
		}
		w.mu.Lock()
		if n := len(w.selectors); n == 0 || w.selectors[n-1] != sel {
			w.selectors = append(w.selectors, sel)
		}
		if len(models) > 1 {
			w.mixed = append(w.mixed, time.Now().Format(time.StampMilli))
		}
		for m := range models {
			w.models[m] = true
		}
		if ready >= replicas && !w.full {
			w.full, w.minReady = true, ready
		}
		if w.full && ready < w.minReady {
			w.minReady = ready
		}
		w.canary[sel] = max(w.canary[sel], canaryReady)
		w.mu.Unlock()
	})
	NewWithT(t).Eventually(func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.selectors)
	}, poll.Budget, 10*time.Millisecond).Should(BeNumerically(">", 0), "no first sample of the Service")
	return w
}

// selectionOf names what a shared Service's selector selects: "both" (no
// revision), the role of the revision it selects (stable or canary) by the
// rollout status, or the revision itself when status names it no more.
func selectionOf(selector map[string]string, st ragv1.RolloutStatus) string {
	switch rev, ok := selector[ragv1.LabelRevision]; {
	case !ok:
		return "both"
	case rev == st.StableRevision:
		return ragv1.TrackStable
	case rev == st.CanaryRevision:
		return ragv1.TrackCanary
	default:
		return rev
	}
}

func (w *servedWatch) snapshot() (selectors, mixed []string, minReady int32, models map[string]bool, canary map[string]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ms := map[string]bool{}
	for m := range w.models {
		ms[m] = true
	}
	cs := map[string]int32{}
	for k, v := range w.canary {
		cs[k] = v
	}
	return append([]string(nil), w.selectors...), append([]string(nil), w.mixed...), w.minReady, ms, cs
}

// countingProbe counts the probe requests a manager sends.
type countingProbe struct {
	n    atomic.Int32
	next http.RoundTripper
	mu   sync.Mutex
	seen []string // "METHOD host/path at time", for a failure to say what was probed and when
}

func (c *countingProbe) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	c.mu.Lock()
	c.seen = append(c.seen, r.Method+" "+r.URL.Host+r.URL.Path+" at "+time.Now().Format("15:04:05.000"))
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

func (c *countingProbe) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

func withCountingProbe(c *countingProbe) func(*RAGServiceReconciler) {
	return func(r *RAGServiceReconciler) {
		r.Probe = &probeclient.Client{HTTP: &http.Client{Transport: c}, Timeout: 5 * time.Second}
	}
}

// A model change nobody declared (hash-64 to hash-32) is refused by the probes
// before any client reaches it: the shared Service selects stable only while
// the canary exists, and the canary is rolled back with the numbers.
func TestSpaceGuardRefusesUndeclaredModelChange(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	sim := startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, spaceSpec))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision
	served := watchServed(t, sim, ns, "docs", 2)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Model = "hash-32" })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil(), "status: %+v", svc.Status)
		g.Expect(svc.Status.Rollback.Reason).To(Equal(rollout.ReasonEmbeddingSpaceChanged))
		g.Expect(svc.Status.Rollback.Message).To(ContainSubstring("dimensions 64 -> 32"))
		es := svc.Status.EmbeddingSpace
		g.Expect(es).NotTo(BeNil())
		g.Expect(es.Verdict).To(Equal(ragv1.SpaceChanged))
		g.Expect([]int32{es.StableDimensions, es.CanaryDimensions}).To(Equal([]int32{64, 32}))
		g.Expect(es.Probes).To(BeNumerically(">=", 64))
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		conditionIs(g, svc, ragv1.ConditionRolledBack, metav1.ConditionTrue, rollout.ReasonEmbeddingSpaceChanged)
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		svc := &corev1.Service{}
		g.Expect(k8sClient.Get(context.Background(), keyOf(ns, "docs"), svc)).To(Succeed())
		g.Expect(svc.Spec.Selector).To(HaveKeyWithValue(ragv1.LabelRevision, stable), "after the rollback the Service selects stable's revision")
	}, poll.Budget).Should(Succeed())

	selectors, mixed, _, models, canary := served.snapshot()
	g.Expect(mixed).To(BeEmpty(), "the Service sent clients to two models at %v", mixed)
	g.Expect(models).To(Equal(map[string]bool{"hash-64": true}), "clients only ever reached hash-64 pods")
	g.Expect(selectors).To(ContainElement(ragv1.TrackStable), "the Service selected stable only during the canary: %v", selectors)
	g.Expect(canary[ragv1.TrackStable]).To(BeNumerically(">=", 1), "the canary's pods were ready (and probed) while the Service selected stable only")
	g.Expect(canary["both"]).To(BeZero(), "no canary pod was ready while the Service selected both tracks")
}

// A change that keeps the space (maxInFlight) is Compatible with a cosine of
// 1, clients reach the canary once it is proven, and it is promoted.
func TestSpaceGuardPassesCompatibleChange(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	sim := startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, spaceSpec))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	served := watchServed(t, sim, ns, "docs", 2)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	var canaryRev string
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		es := svc.Status.EmbeddingSpace
		g.Expect(es).NotTo(BeNil())
		g.Expect(es.Verdict).To(Equal(ragv1.SpaceCompatible), "status: %+v", es)
		g.Expect([]string{es.MinCosine, es.MeanCosine, es.NeighborOverlap}).To(Equal([]string{"1.0000", "1.0000", "1.0000"}))
		canaryRev = es.Revision
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.StableRevision).To(Equal(canaryRev), "the proven revision was promoted")

	selectors, mixed, minReady, _, canary := served.snapshot()
	g.Expect(mixed).To(BeEmpty())
	g.Expect(selectors).To(ContainElements(ragv1.TrackStable, "both"))
	g.Expect(canary["both"]).To(BeNumerically(">=", 1), "clients reached the canary once it was proven")
	g.Expect(minReady).To(BeNumerically(">=", 2), "ready pods behind the Service never fell below replicas")
}

// The verdict is rollout memory: a restarted operator does not probe a
// revision it already checked, and goes on where the last one stopped.
func TestSpaceVerdictSurvivesRestart(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	first := &countingProbe{next: http.DefaultTransport}
	// Both managers watch this namespace only: earlier tests' services stay
	// in theirs (envtest deletes no namespace's objects), and a manager that
	// saw them would watch their stable pods with its counted probe client.
	m := startManagerOn(t, cfg, ns, withCountingProbe(first))
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, func(s *ragv1.RAGService) {
		spaceSpec(s)
		s.Spec.Rollout.Steps = append(s.Spec.Rollout.Steps, ragv1.RolloutStep{Pause: &ragv1.PauseStep{}}) // waits for promote
		// The space watch probes stable between rollouts by design (its
		// own tests); off here, every probe counted is the canary check's.
		s.Spec.Rollout.SpaceCheck.WatchInterval = &metav1.Duration{}
	}))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.EmbeddingSpace).NotTo(BeNil())
		g.Expect(svc.Status.EmbeddingSpace.Verdict).To(Equal(ragv1.SpaceCompatible))
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhasePaused), "waiting for promote: %+v", svc.Status)
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Expect(first.n.Load()).To(BeNumerically(">=", 2), "the first manager probed both tracks")
	m.stop()

	second := &countingProbe{next: http.DefaultTransport}
	startManagerOn(t, cfg, ns, withCountingProbe(second))
	annotate(t, ns, "docs", ragv1.AnnotationPromote)
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.EmbeddingSpace.Verdict).To(Equal(ragv1.SpaceCompatible))
	g.Expect(second.n.Load()).To(BeZero(), "the restarted manager probed a revision already checked: %v; status %+v", second.requests(), svc.Status)
}

// A declared change of space is a cutover: the preview grows to full size on
// the canary Service while clients stay on stable; on promote the preview's
// pods take over as stable, none restarted. No moment serves both spaces,
// and capacity never drops.
func TestCutover(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	sim := startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 3, spaceSpec, func(s *ragv1.RAGService) {
		s.Spec.Embedding.Space = "v1"
	}))).To(Succeed())
	old := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(old.Status.EmbeddingSpace.Name).To(Equal("v1"))
	served := watchServed(t, sim, ns, "docs", 3)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Model, s.Spec.Embedding.Space = "hash-32", "v2" })
	var preview string
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhasePaused), "status: %+v", svc.Status)
		conditionIs(g, svc, ragv1.ConditionReconciling, metav1.ConditionTrue, rollout.ReasonAwaitingCutover)
		g.Expect(svc.Status.EmbeddingSpace.CanarySpace).To(Equal("v2"))
		preview = svc.Status.CanaryRevision
		g.Expect(*canaryDeployment(g, ns, "docs").Spec.Replicas).To(Equal(int32(3)), "the preview runs at full size")
		g.Expect(svc.Status.EffectiveWeight).To(BeZero(), "no client reaches the preview")
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	previewSvc := &corev1.Service{}
	g.Expect(k8sClient.Get(context.Background(), keyOf(ns, "docs-canary"), previewSvc)).To(Succeed())
	g.Expect(previewSvc.Spec.Selector).To(HaveKeyWithValue(ragv1.LabelRevision, preview), "docs-canary is the preview a re-indexing job uses")
	shared := &corev1.Service{}
	g.Expect(k8sClient.Get(context.Background(), keyOf(ns, "docs"), shared)).To(Succeed())
	g.Expect(shared.Spec.Selector).To(HaveKeyWithValue(ragv1.LabelRevision, old.Status.StableRevision))
	previewPods := podUIDs(g, ns, preview)
	g.Expect(previewPods).To(HaveLen(3))

	annotate(t, ns, "docs", ragv1.AnnotationPromote)
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.StableRevision).To(Equal(preview))
	g.Expect(svc.Status.EmbeddingSpace.Name).To(Equal("v2"))
	g.Expect(stableDeployment(g, ns, "docs").Spec.Template.Spec.Containers[0].Args).To(ContainElement("--space=v2"))
	g.Expect(podUIDs(g, ns, preview)).To(Equal(previewPods), "the preview's pods serve as stable: none was restarted")
	g.Eventually(func() bool { return canaryGone(ns, "docs") }, poll.Budget).Should(BeTrue())
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), keyOf(ns, "docs"), shared)).To(Succeed())
		g.Expect(shared.Spec.Selector).To(HaveKeyWithValue(ragv1.LabelRevision, preview))
	}, poll.Budget).Should(Succeed())

	selectors, mixed, minReady, models, _ := served.snapshot()
	g.Expect(mixed).To(BeEmpty(), "the Service sent clients to both spaces at %v", mixed)
	g.Expect(selectors).NotTo(ContainElement("both"), "the shared Service never selected both spaces: %v", selectors)
	g.Expect(models).To(Equal(map[string]bool{"hash-64": true, "hash-32": true}))
	g.Expect(minReady).To(BeNumerically(">=", 3), "ready pods behind the Service fell below replicas")
}

// A probe set named by the spec that does not exist makes the service Stalled,
// naming the ConfigMap; it heals when the ConfigMap appears, and a canary is
// then checked with those probes.
func TestProbeConfigMap(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 1, spaceSpec, func(s *ragv1.RAGService) {
		s.Spec.Rollout.SpaceCheck.Probes = &ragv1.ProbeSource{ConfigMapRef: &ragv1.ConfigMapKeyRef{Name: "golden", Key: "probes.txt"}}
	}))).To(Succeed())
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		conditionIs(g, svc, ragv1.ConditionStalled, metav1.ConditionTrue, ReasonProbesNotFound)
		g.Expect(condition(svc, ragv1.ConditionStalled).Message).To(ContainSubstring(`ConfigMap "golden" named by spec.rollout.spaceCheck.probes.configMapRef does not exist`))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "golden", Namespace: ns}, Data: map[string]string{"other": "x"}}
	g.Expect(k8sClient.Create(context.Background(), cm)).To(Succeed())
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		conditionIs(g, svc, ragv1.ConditionStalled, metav1.ConditionTrue, ReasonProbesNotFound)
		g.Expect(condition(svc, ragv1.ConditionStalled).Message).To(ContainSubstring(`has no key "probes.txt"`))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	cm.Data = map[string]string{"probes.txt": "# golden queries\nhow do I rotate an API key\nWie setze ich mein Passwort zurück?\nrefund policy for annual plans\n"}
	g.Expect(k8sClient.Update(context.Background(), cm)).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	g.Eventually(func(g Gomega) {
		es := get(g, ns, "docs").Status.EmbeddingSpace
		g.Expect(es).NotTo(BeNil())
		g.Expect(es.Verdict).To(Equal(ragv1.SpaceCompatible))
		g.Expect(es.Probes).To(Equal(int32(3+len(embeddingspace.LongProbeWords))), "the ConfigMap's three probes were compared, with the long probes")
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
}
