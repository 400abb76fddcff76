package controllers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// writeCounter counts the write requests (anything but GET) a manager sends.
type writeCounter struct {
	mu      sync.Mutex
	writes  []string // "PATCH /apis/apps/v1/..."
	refused []string // those of them the server answered 409 Conflict
	status  []string // the bodies of the RAGService status writes, to show what each changed
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet {
			return rt.RoundTrip(req)
		}
		var body string
		if strings.HasSuffix(req.URL.Path, "/status") && req.GetBody != nil {
			if rc, err := req.GetBody(); err == nil {
				b, _ := io.ReadAll(rc)
				rc.Close()
				body = string(b)
			}
		}
		w.mu.Lock()
		w.writes = append(w.writes, req.Method+" "+req.URL.Path)
		if body != "" {
			w.status = append(w.status, req.Method+" "+body)
		}
		w.mu.Unlock()
		resp, err := rt.RoundTrip(req)
		if err == nil && resp.StatusCode == http.StatusConflict {
			w.mu.Lock()
			w.refused = append(w.refused, req.Method+" "+req.URL.Path)
			w.mu.Unlock()
		}
		return resp, err
	})
}

func (w *writeCounter) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.writes
	w.writes, w.refused, w.status = nil, nil, nil
	return out
}

// statusWrites returns the status writes since the last take, as "METHOD body".
func (w *writeCounter) statusWrites() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.status...)
}

// takeRefused returns the writes refused with 409 since the last take.
func (w *writeCounter) takeRefused() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.refused...)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// reconciles is how many passes the RAGService controller finished, from
// controller-runtime's own metric: tests run one manager at a time, and those
// that count passes watch their own namespace only.
func reconciles(g Gomega) float64 {
	families, err := metrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "ragservice" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// waitQuiet waits until no pass ran for three seconds (a loaded machine
// under -race is slow to deliver the last events), polling the pass count,
// and returns it.
func waitQuiet(t *testing.T) float64 {
	t.Helper()
	g := NewWithT(t)
	const quietFor = 3 * time.Second
	last, since := reconciles(g), time.Now()
	g.Eventually(func() bool {
		if cur := reconciles(g); cur != last {
			last, since = cur, time.Now()
		}
		return time.Since(since) >= quietFor
	}, poll.Budget, 100*time.Millisecond).Should(BeTrue(), "the controller never went quiet: %v passes", last)
	return last
}

func ownedApplyCount(kind, decision string) float64 {
	return testutil.ToFloat64(ownedApplies.WithLabelValues(kind, decision))
}

// A pass over a service whose owned objects are as the last apply left them
// writes nothing; a hand edit of a Service still is repaired.
func TestUnchangedServiceWritesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	startSim(t, ns)
	counter := &writeCounter{}
	counted := rest.CopyConfig(cfg)
	counted.WrapTransport = counter.wrap
	startManagerOn(t, counted, ns)

	g.Expect(k8sClient.Create(ctx, newService(ns, "docs", 2))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	waitQuiet(t)
	counter.take()

	// Someone else labels the Service: the event runs a pass, which finds
	// every owned object as it left it.
	skippedBefore := ownedApplyCount("Service", "skipped")
	passesBefore := reconciles(g)
	g.Eventually(func() error {
		svc := &corev1.Service{}
		if err := k8sClient.Get(ctx, keyOf(ns, "docs"), svc); err != nil {
			return err
		}
		svc.Labels["team"] = "search"
		return k8sClient.Update(ctx, svc, client.FieldOwner("kubectl-label"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func() float64 { return ownedApplyCount("Service", "skipped") - skippedBefore }, poll.Budget, 50*time.Millisecond).
		Should(BeNumerically(">=", 3), "no pass looked at the Services")
	waitQuiet(t)
	g.Expect(reconciles(g)).To(BeNumerically(">", passesBefore))
	g.Expect(counter.take()).To(BeEmpty(), "a pass that changed nothing wrote")

	// A hand edit of a field the operator set (the selector) changes the
	// operator's field set: repaired, with one write.
	g.Eventually(func() error {
		svc := &corev1.Service{}
		if err := k8sClient.Get(ctx, keyOf(ns, "docs"), svc); err != nil {
			return err
		}
		svc.Spec.Selector = map[string]string{"app": "someone-else"}
		return k8sClient.Update(ctx, svc, client.FieldOwner("kubectl-edit"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		svc := &corev1.Service{}
		g.Expect(k8sClient.Get(ctx, keyOf(ns, "docs"), svc)).To(Succeed())
		g.Expect(svc.Spec.Selector).To(HaveKeyWithValue(ragv1.LabelInstance, "docs"))
		g.Expect(svc.Spec.Selector).NotTo(HaveKey("app"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	waitQuiet(t)
	g.Expect(counter.take()).To(ConsistOf(HaveSuffix("/namespaces/"+ns+"/services/docs")),
		"the repair should rewrite that Service alone")

	// So is a Deployment whose replicas someone scaled by hand.
	d := stableDeployment(g, ns, "docs")
	g.Expect(k8sClient.SubResource("scale").Update(ctx, d, client.WithSubResourceBody(
		&autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 5}}), client.FieldOwner("kubectl-scale"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(*stableDeployment(g, ns, "docs").Spec.Replicas).To(Equal(int32(2)))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
}

// The manager caches its own pods, not another app's: its memory grows with
// its own objects only.
func TestCacheHoldsOnlyOwnedObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	m := startManager(t)

	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
		}
	}
	// Another app's pod first, then one of the operator's: the informer sees
	// events in order, so once the second is cached the first would be too.
	g.Expect(k8sClient.Create(ctx, pod("web", map[string]string{"app.kubernetes.io/name": "web"}))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, pod("lookalike", map[string]string{ragv1.LabelName: ragv1.NameEmbedServer}))).To(Succeed())
	g.Expect(k8sClient.Create(ctx, pod("docs-stable-1", objectLabels(newService(ns, "docs", 1))))).To(Succeed())
	g.Eventually(func() error {
		return m.client.Get(ctx, keyOf(ns, "docs-stable-1"), &corev1.Pod{})
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())

	for _, name := range []string{"web", "lookalike"} {
		err := m.client.Get(ctx, keyOf(ns, name), &corev1.Pod{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "pod %s is in the manager's cache (err %v)", name, err)
	}
	pods := &corev1.PodList{}
	g.Expect(m.client.List(ctx, pods, client.InNamespace(ns))).To(Succeed())
	g.Expect(pods.Items).To(HaveLen(1))
	g.Expect(pods.Items[0].ManagedFields).To(BeEmpty(), "pods are cached without managedFields")

	// The same for Deployments: someone else's is not cached.
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	g.Expect(k8sClient.Create(ctx, dep)).To(Succeed())
	g.Expect(k8sClient.Create(ctx, newService(ns, "docs", 1))).To(Succeed())
	var name string
	g.Eventually(func(g Gomega) {
		name = stableDeployment(g, ns, "docs").Name
		g.Expect(m.client.Get(ctx, keyOf(ns, name), &appsv1.Deployment{})).To(Succeed())
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	err := m.client.Get(ctx, keyOf(ns, "web"), &appsv1.Deployment{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "another app's Deployment is in the manager's cache (err %v)", err)

	// Of its own Deployment the cache keeps the operator's managedFields entry only.
	own := &appsv1.Deployment{}
	g.Expect(m.client.Get(ctx, keyOf(ns, name), own)).To(Succeed())
	g.Expect(own.ManagedFields).To(HaveLen(1))
	g.Expect(own.ManagedFields[0].Manager).To(Equal(FieldOwner))
}

// The RAGService watch acts on the operator's own annotations only, once per
// token.
func TestWatchIgnoresForeignAnnotations(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startSim(t, ns)
	startManagerOn(t, cfg, ns)

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 1))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	before := waitQuiet(t)

	annotateByPatch(t, ns, "docs", "kubectl.kubernetes.io/last-applied-configuration")
	annotateByPatch(t, ns, "docs", "example.com/owner")
	g.Consistently(func() float64 { return reconciles(g) }, 2*time.Second, 100*time.Millisecond).Should(Equal(before),
		"a foreign annotation ran a pass")

	// promote acts: on a healthy service there is nothing to promote, which
	// the operator says in an event, and it records the token as handled.
	token := annotateByPatch(t, ns, "docs", ragv1.AnnotationPromote)
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.LastHandled).NotTo(BeNil())
		g.Expect(svc.Status.LastHandled.Promote).To(Equal(token))
		g.Expect(eventReasons(g, ns, "docs")).To(ContainElement("AnnotationIgnored"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	g.Expect(waitQuiet(t)).To(Equal(before+1), "one token ran more than one pass")
	g.Expect(get(g, ns, "docs").Annotations).To(HaveKeyWithValue(ragv1.AnnotationPromote, token), "the operator touched the annotation")
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	g.Expect(svc.Status.ObservedGeneration).To(Equal(svc.Generation))
}

// annotateByPatch sets an annotation as kubectl annotate does: a merge patch
// of the metadata alone. (A whole-object update from Go also rewrites
// spec.rollout.progressDeadline's "10m" default as "10m0s", a spec change.)
// It sets a fresh token and returns it.
func annotateByPatch(t *testing.T, ns, name, key string) string {
	t.Helper()
	token := freshToken()
	patch := []byte(`{"metadata":{"annotations":{"` + key + `":"` + token + `"}}}`)
	svc := &ragv1.RAGService{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	NewWithT(t).Expect(k8sClient.Patch(context.Background(), svc, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	return token
}

// writeKind names a write by method and resource ("PATCH ragservices/status",
// "POST events"), the way the benchmark's audit log breaks them down.
func writeKind(w string) string {
	method, path, _ := strings.Cut(w, " ")
	parts := strings.Split(strings.Trim(path, "/"), "/")
	for i, p := range parts {
		if p == "namespaces" && i+2 < len(parts) {
			res := parts[i+2]
			if i+4 < len(parts) {
				res += "/" + parts[i+4]
			}
			return method + " " + res
		}
	}
	return method + " " + path
}

// writeBreakdown counts writes by writeKind, and how many of them wrote a
// RAGService's status.
func writeBreakdown(writes []string) (byKind map[string]int, status int) {
	byKind = map[string]int{}
	for _, w := range writes {
		k := writeKind(w)
		byKind[k]++
		if strings.HasSuffix(k, " ragservices/status") {
			status++
		}
	}
	return byKind, status
}

// A create and a one-step rollout, with pods that start at once, pods slower
// than a few sim ticks, and a Deployment controller that reports its pods
// late: the status is written by one rule (statusWrite.go), with no hold. What
// is asserted is what users and the API server feel, not a write count (the
// counts are logged, and docs/scale.md reports them at scale): no status write
// that stores nothing new, none refused as a stale read (a pass that undoes
// another's work), a manager that goes quiet (no self-triggered loop), and an
// end state that tells the truth.
func TestCreateAndRolloutWrites(t *testing.T) {
	t.Run("pods ready at once", func(t *testing.T) { testCreateAndRolloutWrites(t, lagging) })
	t.Run("pods slow to start", func(t *testing.T) { testCreateAndRolloutWrites(t, lagging, slowStart) })
	t.Run("a slow Deployment controller", func(t *testing.T) { testCreateAndRolloutWrites(t, slowStart, slowController) })
}

func testCreateAndRolloutWrites(t *testing.T, simOpts ...string) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startSim(t, ns, append([]string{quiet}, simOpts...)...)
	counter := &writeCounter{}
	counted := rest.CopyConfig(cfg)
	counted.WrapTransport = counter.wrap
	startManagerOn(t, counted, ns)

	oneStep := func(s *ragv1.RAGService) {
		s.Spec.Rollout = ragv1.RolloutSpec{
			Strategy:   ragv1.StrategyCanary,
			Steps:      []ragv1.RolloutStep{{SetWeight: ptr.To(int32(100))}},
			SpaceCheck: ragv1.SpaceCheckSpec{Enabled: ptr.To(false)},
		}
	}
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 1, oneStep))).To(Succeed())
	before := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision
	waitQuiet(t)
	refused := counter.takeRefused()
	bodies := counter.statusWrites()
	create := counter.take()
	createKinds, createStatus := writeBreakdown(create)
	t.Logf("create: %d writes, %d of them the status: %v", len(create), createStatus, createKinds)
	g.Expect(emptyStatusWrites(bodies)).To(BeEmpty(), "status writes that changed nothing")
	g.Expect(refused).To(BeEmpty(), "status writes refused as stale reads")

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 16 })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.StableRevision).NotTo(Equal(before))
		g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
		g.Expect(canaryGone(ns, "docs")).To(BeTrue())
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	waitQuiet(t)
	refused = counter.takeRefused()
	bodies = counter.statusWrites()
	rollout := counter.take()
	rolloutKinds, rolloutStatus := writeBreakdown(rollout)
	t.Logf("rollout: %d writes, %d of them the status: %v", len(rollout), rolloutStatus, rolloutKinds)
	g.Expect(emptyStatusWrites(bodies)).To(BeEmpty(), "status writes that changed nothing")
	g.Expect(refused).To(BeEmpty(), "status writes refused as stale reads")

	// The end state tells the truth, and at idle nothing is written.
	svc := get(g, ns, "docs")
	g.Expect(svc.Status.Phase).To(Equal(ragv1.PhaseHealthy))
	g.Expect(svc.Status.Replicas).To(Equal(int32(1)))
	g.Expect(svc.Status.ReadyReplicas).To(Equal(int32(1)))
	g.Expect(svc.Status.EffectiveWeight).To(Equal(int32(0)))
	g.Expect(svc.Status.ObservedGeneration).To(Equal(svc.Generation))
	g.Consistently(counter.take, 3*time.Second, 200*time.Millisecond).Should(BeEmpty(), "writes at idle")
}

// emptyStatusWrites returns the status patches that carry no status field: a
// write of nothing but the resourceVersion.
func emptyStatusWrites(bodies []string) []string {
	var out []string
	for _, b := range bodies {
		method, body, _ := strings.Cut(b, " ")
		if method != http.MethodPatch {
			continue
		}
		var patch map[string]any
		if err := json.Unmarshal([]byte(body), &patch); err != nil {
			out = append(out, b)
			continue
		}
		if st, _ := patch["status"].(map[string]any); len(st) == 0 {
			out = append(out, b)
		}
	}
	return out
}
