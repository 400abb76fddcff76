package controllers

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// testWatchInterval is the shortened watch interval of these tests.
const testWatchInterval = 2 * time.Second

// loopbackUpstream is an OpenAI-compatible upstream on a fixed loopback
// address that can be replaced by another server behind the same address, as
// a team redeploys TEI with another model behind the same URL.
type loopbackUpstream struct {
	t    *testing.T
	addr string
	srv  *http.Server
	done chan struct{}
}

func startLoopbackUpstream(t *testing.T, sp fakeupstream.Space) *loopbackUpstream {
	u := &loopbackUpstream{t: t, addr: "127.0.0.1:0"}
	u.serve(sp)
	t.Cleanup(u.stop)
	return u
}

func (u *loopbackUpstream) url() string { return "http://" + u.addr + "/v1" }

// waitWatches waits until the space watch of ns/name has ended n more times
// with result (same, drifted, failed, recorded): the passes before the last
// of them are over, status writes included.
func waitWatches(g Gomega, ns, name, result string, n int) {
	counted := func() float64 { return testutil.ToFloat64(spaceWatches.WithLabelValues(ns, name, result)) }
	from := counted()
	g.Eventually(counted, time.Duration(n)*testWatchInterval+poll.Budget, 50*time.Millisecond).Should(BeNumerically(">=", from+float64(n)),
		"%d more space watches of %s/%s with result %s", n, ns, name, result)
}

func (u *loopbackUpstream) serve(sp fakeupstream.Space) {
	u.t.Helper()
	var ln net.Listener
	// The old server's port may take a moment to be free again.
	poll.UntilSaw(u.t, "listening on "+u.addr, func() (bool, string) {
		var err error
		if ln, err = net.Listen("tcp", u.addr); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	u.addr = ln.Addr().String()
	up := fakeupstream.New(fakeupstream.Config{Dims: 64, Space: &sp})
	u.srv, u.done = &http.Server{Handler: up, ReadHeaderTimeout: 5 * time.Second}, make(chan struct{})
	srv, done := u.srv, u.done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			u.t.Logf("upstream: %v", err)
		}
	}()
}

func (u *loopbackUpstream) stop() {
	if u.srv != nil {
		_ = u.srv.Close()
		<-u.done
		u.srv = nil
	}
}

// replace stops the upstream and starts another behind the same address.
func (u *loopbackUpstream) replace(sp fakeupstream.Space) {
	u.stop()
	u.serve(sp)
}

// watchedSpec: a service on the loopback upstream with the watch shortened.
func watchedSpec(u *loopbackUpstream, onDrift ragv1.DriftAction) func(*ragv1.RAGService) {
	return func(s *ragv1.RAGService) {
		spaceSpec(s)
		s.Spec.Embedding = ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Model: "team-model", Endpoint: u.url()}
		s.Spec.Rollout.SpaceCheck.WatchInterval = &metav1.Duration{Duration: testWatchInterval}
		s.Spec.Rollout.SpaceCheck.OnDrift = onDrift
	}
}

// podsSelected counts the pods the Service's selector takes.
func podsSelected(g Gomega, ns, name string) (selected int, selector map[string]string) {
	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(context.Background(), keyOf(ns, name), svc)).To(Succeed())
	pods := &corev1.PodList{}
	g.Expect(k8sClient.List(context.Background(), pods, client.InNamespace(ns),
		client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(svc.Spec.Selector)})).To(Succeed())
	return len(pods.Items), svc.Spec.Selector
}

// waitFingerprint waits for the fingerprint of stable's space.
func waitFingerprint(t *testing.T, ns, name string) *ragv1.SpaceFingerprint {
	t.Helper()
	var fp *ragv1.SpaceFingerprint
	NewWithT(t).Eventually(func(g Gomega) {
		svc := get(g, ns, name)
		g.Expect(svc.Status.SpaceWatch).NotTo(BeNil(), "status: %+v", svc.Status)
		fp = svc.Status.SpaceWatch.Fingerprint
		g.Expect(fp).NotTo(BeNil())
		g.Expect(fp.Revision).To(Equal(svc.Status.StableRevision))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	return fp
}

// An upstream replaced behind the same address while the service runs (no
// spec change, so no canary) sets SpaceDrifted within one watch interval,
// with a Warning event, the metric and a Degraded service; the upstream put
// back ends the drift.
func TestSpaceWatchSeesUpstreamReplaced(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	u := startLoopbackUpstream(t, fakeupstream.Space{})
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, watchedSpec(u, ragv1.DriftAlert)))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	fp := waitFingerprint(t, ns, "docs")
	g.Expect(fp.Dimensions).To(Equal(int32(64)))

	// Two intervals of the same upstream: the same space, no drift, no write.
	before := get(g, ns, "docs")
	waitWatches(g, ns, "docs", "same", 2)
	after := get(g, ns, "docs")
	g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion), "a watch that found the recorded space wrote the status")
	g.Expect(testutil.ToFloat64(spaceWatches.WithLabelValues(ns, "docs", "same"))).To(BeNumerically(">=", 1))

	// Another model of the same dimension behind the same address.
	swapped := time.Now()
	u.replace(fakeupstream.Space{Seed: 7})
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		conditionIs(g, svc, ragv1.ConditionSpaceDrifted, metav1.ConditionTrue, rollout.ReasonUpstreamSpaceChanged)
		g.Expect(condition(svc, ragv1.ConditionSpaceDrifted).Message).To(ContainSubstring("min cosine"))
		conditionIs(g, svc, ragv1.ConditionStalled, metav1.ConditionTrue, rollout.ReasonUpstreamSpaceChanged)
		conditionIs(g, svc, ragv1.ConditionReady, metav1.ConditionFalse, rollout.ReasonUpstreamSpaceChanged)
		g.Expect(svc.Status.Phase).To(Equal(ragv1.PhaseDegraded))
		g.Expect(svc.Status.SpaceWatch.Verdict).To(Equal(ragv1.SpaceChanged))
	}, testWatchInterval+poll.Budget, 50*time.Millisecond).Should(Succeed())
	t.Logf("SpaceDrifted %v after the upstream was replaced (watch interval %v)", time.Since(swapped).Round(10*time.Millisecond), testWatchInterval)
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "docs") }, poll.Budget).Should(ContainElement(rollout.ReasonUpstreamSpaceChanged))
	g.Expect(testutil.ToFloat64(spaceDrifted.WithLabelValues(ns, "docs"))).To(Equal(1.0))
	g.Expect(testutil.ToFloat64(spaceWatches.WithLabelValues(ns, "docs", "drifted"))).To(BeNumerically(">=", 1))
	g.Expect(testutil.ToFloat64(spaceProbeRequests.WithLabelValues(ns, "docs", ragv1.TrackStable, "200"))).To(BeNumerically(">=", 3), "the watch's requests are counted")
	// Alert: clients still reach the pods.
	n, _ := podsSelected(g, ns, "docs")
	g.Expect(n).To(Equal(2))

	// The upstream is put back: the next watch ends the drift.
	u.replace(fakeupstream.Space{})
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(condition(svc, ragv1.ConditionSpaceDrifted)).To(BeNil())
		conditionIs(g, svc, ragv1.ConditionReady, metav1.ConditionTrue, "")
		g.Expect(svc.Status.SpaceWatch.DriftedSince).To(BeNil())
	}, testWatchInterval+poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Expect(testutil.ToFloat64(spaceDrifted.WithLabelValues(ns, "docs"))).To(BeZero())
	g.Expect(get(g, ns, "docs").Status.SpaceWatch.Fingerprint.Time).To(Equal(fp.Time), "the fingerprint was kept")
}

// onDrift StopTraffic: the shared Service selects no pod until a person acts;
// the accept-space token records stable's space again, once.
func TestSpaceWatchStopTraffic(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	u := startLoopbackUpstream(t, fakeupstream.Space{})
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, watchedSpec(u, ragv1.DriftStopTraffic)))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	first := waitFingerprint(t, ns, "docs")

	// A shorter input window: only the long probes see it.
	u.replace(fakeupstream.Space{Window: 1024})
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		conditionIs(g, svc, ragv1.ConditionSpaceDrifted, metav1.ConditionTrue, rollout.ReasonUpstreamSpaceChanged)
		g.Expect(condition(svc, ragv1.ConditionSpaceDrifted).Message).To(ContainSubstring("the shared Service selects no pod"))
		n, sel := podsSelected(g, ns, "docs")
		g.Expect(n).To(BeZero(), "the shared Service still selects pods: %v", sel)
	}, testWatchInterval+poll.Budget, 50*time.Millisecond).Should(Succeed())
	// The track Services still reach the pods, for whoever investigates.
	n, _ := podsSelected(g, ns, "docs-stable")
	g.Expect(n).To(Equal(2))

	// It stays so while nobody acts.
	waitWatches(g, ns, "docs", "drifted", 2)
	n, _ = podsSelected(g, ns, "docs")
	g.Expect(n).To(BeZero())

	// A person accepts the space stable serves now.
	update(t, ns, "docs", func(s *ragv1.RAGService) {
		s.Annotations = map[string]string{ragv1.AnnotationAcceptSpace: "2026-12-07T05:00:00Z"}
	})
	var accepted *ragv1.SpaceFingerprint
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(condition(svc, ragv1.ConditionSpaceDrifted)).To(BeNil())
		g.Expect(svc.Status.SpaceWatch.AcceptedToken).To(Equal("2026-12-07T05:00:00Z"))
		accepted = svc.Status.SpaceWatch.Fingerprint
		g.Expect(accepted.Data).NotTo(Equal(first.Data))
		n, _ := podsSelected(g, ns, "docs")
		g.Expect(n).To(Equal(2))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) []string { return eventReasons(g, ns, "docs") }, poll.Budget).Should(ContainElement(ReasonSpaceFingerprintRecorded))

	// The token kept on the object acts no more: later watches compare.
	waitWatches(g, ns, "docs", "same", 2)
	svc := get(g, ns, "docs")
	g.Expect(svc.Status.SpaceWatch.Fingerprint.Time).To(Equal(accepted.Time))
	g.Expect(condition(svc, ragv1.ConditionSpaceDrifted)).To(BeNil())
}

// A declared cutover records the fingerprint of the new space.
func TestSpaceWatchRecordsAfterCutover(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 1, spaceSpec, func(s *ragv1.RAGService) {
		s.Spec.Embedding.Space = "docs-v1"
		s.Spec.Rollout.SpaceCheck.WatchInterval = &metav1.Duration{Duration: testWatchInterval}
	}))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	fp := waitFingerprint(t, ns, "docs")
	g.Expect([]any{fp.Space, fp.Dimensions}).To(Equal([]any{"docs-v1", int32(64)}))

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Model, s.Spec.Embedding.Space = "hash-32", "docs-v2" })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		conditionIs(g, svc, ragv1.ConditionReconciling, metav1.ConditionTrue, rollout.ReasonAwaitingCutover)
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	annotate(t, ns, "docs", ragv1.AnnotationPromote)
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
		g.Expect(svc.Status.SpaceWatch).NotTo(BeNil())
		fp := svc.Status.SpaceWatch.Fingerprint
		g.Expect([]any{fp.Space, fp.Dimensions, fp.Revision}).To(Equal([]any{"docs-v2", int32(32), svc.Status.StableRevision}))
		g.Expect(condition(svc, ragv1.ConditionSpaceDrifted)).To(BeNil())
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
}

// A canary whose probes cannot be answered (its upstream unreachable from the
// pods) is rolled back as SpaceCheckFailed naming the error, not as
// EmbeddingSpaceChanged: nothing was compared.
func TestSpaceCheckFailedIsNotASpaceChange(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	u := startLoopbackUpstream(t, fakeupstream.Space{})
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 1, watchedSpec(u, ragv1.DriftAlert), func(s *ragv1.RAGService) {
		s.Spec.Rollout.ProgressDeadline = metav1.Duration{Duration: 4 * time.Second}
	}))).To(Succeed())
	stable := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	// Nothing listens on the discard port: every upstream call is refused.
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Endpoint = "http://127.0.0.1:9/v1" })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.Rollback).NotTo(BeNil(), "status: %+v", svc.Status)
		g.Expect(svc.Status.Rollback.Reason).To(Equal(rollout.ReasonSpaceCheckFailed))
		g.Expect(svc.Status.Rollback.Message).To(And(ContainSubstring("could not complete"), ContainSubstring("HTTP 502"), Not(ContainSubstring("embeds in another vector space"))))
		g.Expect(svc.Status.EmbeddingSpace.Verdict).To(Equal(ragv1.SpaceUnverified))
		g.Expect(svc.Status.StableRevision).To(Equal(stable))
		conditionIs(g, svc, ragv1.ConditionRolledBack, metav1.ConditionTrue, rollout.ReasonSpaceCheckFailed)
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	g.Expect(eventReasons(g, ns, "docs")).NotTo(ContainElement(rollout.ReasonEmbeddingSpaceChanged))
}

// The same space from another endpoint (a spec change): the canary check
// finds it Compatible and it is promoted; the fingerprint recorded before
// stays, and the watch finds the same space from the new endpoint.
func TestSpaceWatchSameSpaceOtherEndpoint(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	first := startLoopbackUpstream(t, fakeupstream.Space{})
	second := startLoopbackUpstream(t, fakeupstream.Space{})
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 1, watchedSpec(first, ragv1.DriftStopTraffic)))).To(Succeed())
	before := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision
	fp := waitFingerprint(t, ns, "docs")

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Endpoint = second.url() })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.StableRevision).NotTo(Equal(before))
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
		g.Expect(svc.Status.EmbeddingSpace.Verdict).To(Equal(ragv1.SpaceCompatible))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	watchedBefore := testutil.ToFloat64(spaceWatches.WithLabelValues(ns, "docs", "same"))
	g.Eventually(func() float64 { return testutil.ToFloat64(spaceWatches.WithLabelValues(ns, "docs", "same")) }, 2*testWatchInterval+poll.Budget, 50*time.Millisecond).
		Should(BeNumerically(">", watchedBefore), "no watch after the promotion")
	svc := get(g, ns, "docs")
	g.Expect(condition(svc, ragv1.ConditionSpaceDrifted)).To(BeNil())
	g.Expect(svc.Status.SpaceWatch.Fingerprint.Time).To(Equal(fp.Time), "a promotion after a Compatible check keeps the fingerprint")
	n, _ := podsSelected(g, ns, "docs")
	g.Expect(n).To(Equal(1))
}
