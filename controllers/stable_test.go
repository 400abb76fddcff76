package controllers

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// An openai-provider service gets its Deployment, Services, PDB and revision,
// all owned by the RAGService and written by one field manager.
func TestStableTrackObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)

	svc := newService(ns, "docs", 3, func(s *ragv1.RAGService) {
		s.Spec.Embedding = ragv1.EmbeddingSpec{
			Provider:        ragv1.ProviderOpenAI,
			Model:           "text-embedding-3-small",
			Endpoint:        "http://127.0.0.1:9/v1",
			Dimensions:      ptr.To(int32(256)),
			APIKeySecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "openai"}, Key: "api-key"},
		}
		s.Spec.Pod.NodeSelector = map[string]string{"pool": "embed"}
		s.Spec.Pod.Labels = map[string]string{"team": "search", ragv1.LabelInstance: "hijack"}
	})
	g.Expect(k8sClient.Create(ctx, svc)).To(Succeed())

	var dep *appsv1.Deployment
	g.Eventually(func(g Gomega) { dep = stableDeployment(g, ns, "docs") }, poll.Budget, 100*time.Millisecond).Should(Succeed())

	g.Expect(*dep.Spec.Replicas).To(Equal(int32(3)))
	rev := dep.Labels[ragv1.LabelRevision]
	g.Expect(dep.Name).To(Equal("docs-"+rev), "one Deployment per revision")
	g.Expect(dep.Spec.Selector.MatchLabels).To(Equal(map[string]string{
		ragv1.LabelInstance: "docs", ragv1.LabelName: "embedserver", ragv1.LabelRevision: rev}))
	g.Expect(dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(Equal(0))
	tpl := dep.Spec.Template
	g.Expect(tpl.Labels).To(HaveKeyWithValue(ragv1.LabelInstance, "docs"), "operator labels win over spec.pod.labels")
	g.Expect(tpl.Labels).To(HaveKeyWithValue("team", "search"))
	g.Expect(tpl.Labels).To(HaveKeyWithValue(ragv1.LabelRevision, rev))
	g.Expect(tpl.Labels).NotTo(HaveKey(ragv1.LabelTrack), "which revision is stable lives in status only")
	g.Expect(tpl.Spec.NodeSelector).To(Equal(map[string]string{"pool": "embed"}))
	g.Expect(*tpl.Spec.TerminationGracePeriodSeconds).To(Equal(int64(35)), "drain 30s plus a 5s margin")

	c := tpl.Spec.Containers[0]
	g.Expect(c.Image).To(Equal(testImage))
	g.Expect(c.Args).To(ContainElements(
		"--provider=openai", "--model=text-embedding-3-small", "--dimensions=256",
		"--upstream-url=http://127.0.0.1:9/v1", "--max-in-flight=8", "--max-queue=32",
		"--max-batch-size=64", "--request-timeout=30s", "--queue-timeout=5s",
		"--upstream-timeout=10s", "--max-attempts=3", "--initial-backoff=100ms", "--drain-timeout=30s"))
	budgetRef := func(env, key string, optional *bool) corev1.EnvVar {
		return corev1.EnvVar{Name: env, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "docs-budget"}, Key: key, Optional: optional}}}
	}
	g.Expect(c.Env).To(ConsistOf(corev1.EnvVar{Name: "EMBEDSERVER_API_KEY", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "openai"}, Key: "api-key"}}},
		// The budget Secret, named whatever the budget (handed out live, never in the template).
		budgetRef("EMBEDSERVER_BUDGET_TOKEN", "token", nil),
		budgetRef("EMBEDSERVER_BUDGET_START_REQUESTS_PER_MINUTE", "startRequestsPerMinute", ptr.To(true)),
		budgetRef("EMBEDSERVER_BUDGET_START_TOKENS_PER_MINUTE", "startTokensPerMinute", ptr.To(true))))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromString("admin")))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	sc := c.SecurityContext
	g.Expect(*sc.RunAsNonRoot && *sc.ReadOnlyRootFilesystem && !*sc.AllowPrivilegeEscalation).To(BeTrue())
	g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(tpl.Spec.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))

	owner := dep.OwnerReferences
	g.Expect(owner).To(HaveLen(1))
	g.Expect(owner[0].Kind).To(Equal("RAGService"))
	g.Expect(*owner[0].Controller).To(BeTrue())
	for _, mf := range dep.ManagedFields {
		if mf.Operation == metav1.ManagedFieldsOperationApply {
			g.Expect(mf.Manager).To(Equal(FieldOwner))
		}
	}

	for name, selected := range map[string]string{"docs": rev, "docs-stable": rev, "docs-canary": "none"} {
		s := &corev1.Service{}
		g.Eventually(func() error { return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s) }, poll.Budget).Should(Succeed())
		g.Expect(s.Spec.Ports).To(HaveLen(1))
		g.Expect(s.Spec.Ports[0].Name).To(Equal("http"))
		g.Expect(s.Spec.Ports[0].Port).To(Equal(int32(80)))
		g.Expect(s.Spec.Ports[0].TargetPort).To(Equal(intstr.FromString("http")))
		want := map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelName: "embedserver", ragv1.LabelRevision: selected}
		g.Expect(s.Spec.Selector).To(Equal(want), "Service %s", name)
	}
	pdb := &policyv1.PodDisruptionBudget{}
	g.Eventually(func() error { return k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "docs"}, pdb) }, poll.Budget).Should(Succeed())
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))

	cr := &appsv1.ControllerRevision{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "docs-" + dep.Labels[ragv1.LabelRevision]}, cr)).To(Succeed())

	// No pods run here, and the Secret is missing: status says both, the
	// Secret first, without leaking its contents.
	g.Eventually(func(g Gomega) {
		s := get(g, ns, "docs")
		conditionIs(g, s, ragv1.ConditionReady, metav1.ConditionFalse, rollout.ReasonSecretNotFound)
		g.Expect(condition(s, ragv1.ConditionReady).Message).To(ContainSubstring(`"openai"`))
		conditionIs(g, s, ragv1.ConditionAvailable, metav1.ConditionFalse, rollout.ReasonBelowMinimum)
		conditionIs(g, s, ragv1.ConditionReconciling, metav1.ConditionTrue, "")
		g.Expect(s.Status.StableRevision).To(Equal(dep.Labels[ragv1.LabelRevision]))
		g.Expect(s.Status.Selector).To(Equal("app.kubernetes.io/instance=docs,app.kubernetes.io/name=embedserver"))
		g.Expect(s.Status.Phase).To(Equal(ragv1.PhaseProgressing))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())

	// The Secret appearing is noticed through the Secret watch.
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "openai", Namespace: ns},
		Data: map[string][]byte{"api-key": []byte("sk-test")}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := get(g, ns, "docs")
		g.Expect(condition(s, ragv1.ConditionReady).Reason).NotTo(Equal(rollout.ReasonSecretNotFound))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
}

// Status follows the pods: Ready, Available, counts and the printer columns.
func TestReadyFollowsPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns)

	g.Expect(k8sClient.Create(ctx, newService(ns, "docs", 2))).To(Succeed())
	svc := waitHealthy(t, ns, "docs", poll.Budget)
	conditionIs(g, svc, ragv1.ConditionAvailable, metav1.ConditionTrue, rollout.ReasonMinimumAvailable)
	g.Expect(condition(svc, ragv1.ConditionReconciling)).To(BeNil(), "Reconciling is absent when false")
	g.Expect(condition(svc, ragv1.ConditionStalled)).To(BeNil(), "Stalled is absent when false")
	g.Expect(svc.Status.Replicas).To(Equal(int32(2)))
	g.Expect(svc.Status.ReadyReplicas).To(Equal(int32(2)))
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, "docs")).To(ContainElement("Ready"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())

	// The printer columns, as `kubectl get ragsvc` renders them (server-side table).
	table := getTable(g, ns, "docs")
	var cols []string
	for _, c := range table.ColumnDefinitions {
		cols = append(cols, c.Name)
	}
	g.Expect(cols).To(Equal([]string{"Name", "Ready", "Phase", "Stable", "Canary", "Weight", "Age"}))
	g.Expect(table.Rows).To(HaveLen(1))
	row := table.Rows[0].Cells
	g.Expect(row[1:6]).To(Equal([]any{"True", "Healthy", svc.Status.StableRevision, nil, float64(0)}))
}

// getTable asks the API server for the RAGService as a kubectl table.
func getTable(g Gomega, ns, name string) *metav1.Table {
	cs, err := kubernetes.NewForConfig(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := cs.RESTClient().Get().AbsPath("/apis/rag.ragops.io/v1alpha1/namespaces", ns, "ragservices", name).
		SetHeader("Accept", "application/json;as=Table;g=meta.k8s.io;v=v1").DoRaw(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	table := &metav1.Table{}
	g.Expect(json.Unmarshal(raw, table)).To(Succeed())
	return table
}

// With strategy RollingUpdate a template change rolls the stable track in
// place: new revision, new template, no canary, capacity never below replicas.
func TestRollingUpdateChangesTemplate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	sim := startSim(t, ns)

	g.Expect(k8sClient.Create(ctx, newService(ns, "docs", 3, func(s *ragv1.RAGService) {
		s.Spec.Rollout.Strategy = ragv1.StrategyRollingUpdate
	}))).To(Succeed())
	before := waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision

	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 16 })
	g.Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(svc.Status.StableRevision).NotTo(Equal(before))
		d := stableDeployment(g, ns, "docs")
		g.Expect(args(d)).To(ContainElement("--max-in-flight=16"))
		g.Expect(d.Labels[ragv1.LabelRevision]).To(Equal(svc.Status.StableRevision))
		g.Expect(canaryGone(ns, "docs")).To(BeTrue())
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	minReady, ok := sim.minReadySeen("docs")
	g.Expect(ok).To(BeTrue())
	g.Expect(minReady).To(BeNumerically(">=", 3), "ready capacity dropped below spec.replicas")

	// A replicas-only change starts no rollout and keeps the revision.
	rev := get(g, ns, "docs").Status.StableRevision
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Replicas = ptr.To(int32(4)) })
	g.Eventually(func(g Gomega) {
		g.Expect(*stableDeployment(g, ns, "docs").Spec.Replicas).To(Equal(int32(4)))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	g.Expect(waitHealthy(t, ns, "docs", poll.Budget).Status.StableRevision).To(Equal(rev))
}

// Owned objects deleted or edited by hand are put back.
func TestOwnedObjectsRestored(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)

	g.Expect(k8sClient.Create(ctx, newService(ns, "docs", 2))).To(Succeed())
	var dep *appsv1.Deployment
	g.Eventually(func(g Gomega) { dep = stableDeployment(g, ns, "docs") }, poll.Budget, 100*time.Millisecond).Should(Succeed())

	g.Expect(k8sClient.Delete(ctx, dep)).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := stableDeployment(g, ns, "docs")
		g.Expect(d.UID).NotTo(Equal(dep.UID))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())

	// A hand edit by someone else: image and replicas.
	g.Eventually(func() error {
		d := &appsv1.Deployment{}
		if err := k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: dep.Name}, d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "someone/else:latest"
		d.Spec.Replicas = ptr.To(int32(7))
		return k8sClient.Update(ctx, d, client.FieldOwner("kubectl-edit"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	g.Eventually(func(g Gomega) {
		d := stableDeployment(g, ns, "docs")
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))
		g.Expect(*d.Spec.Replicas).To(Equal(int32(2)))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())

	svc := &corev1.Service{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "docs"}, svc)).To(Succeed())
	g.Expect(k8sClient.Delete(ctx, svc)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := &corev1.Service{}
		g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "docs"}, s)).To(Succeed())
		g.Expect(s.UID).NotTo(Equal(svc.UID))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
}

// `kubectl scale ragsvc` goes through the scale subresource to spec.replicas
// and on to the stable revision's Deployment: what an HPA does too, whose
// scaleTargetRef names the RAGService (a revision's Deployment comes and goes
// with its revision).
func TestScaleSubresource(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)

	svc := newService(ns, "docs", 2)
	g.Expect(k8sClient.Create(ctx, svc)).To(Succeed())
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: 5}}
	g.Expect(k8sClient.SubResource("scale").Update(ctx, svc, client.WithSubResourceBody(scale))).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(*get(g, ns, "docs").Spec.Replicas).To(Equal(int32(5)))
		g.Expect(*stableDeployment(g, ns, "docs").Spec.Replicas).To(Equal(int32(5)))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	got := &autoscalingv1.Scale{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.SubResource("scale").Get(ctx, get(g, ns, "docs"), got)).To(Succeed())
		g.Expect(got.Status.Selector).To(Equal("app.kubernetes.io/instance=docs,app.kubernetes.io/name=embedserver"))
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
}

// A status patch computed from a stale copy of the object is refused, not
// merged: a merge patch leaves out every field the stale copy already shows, so
// it would put this pass's conditions next to a phase another pass wrote (this
// flaked TestManualControl before patches carried the resourceVersion).
func TestStatusPatchFromStaleBaseConflicts(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	ctx := context.Background()
	r := &RAGServiceReconciler{Client: k8sClient}
	write := func(obj, base *ragv1.RAGService) error {
		return r.writeStatus(ctx, &scope{obj: obj, base: base.DeepCopy()}, atEnd)
	}
	g.Expect(k8sClient.Create(ctx, newService(ns, "docs", 1))).To(Succeed())
	first := &ragv1.RAGService{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "docs"}, first)).To(Succeed())

	// Pass A writes Paused (the first write is a full update).
	a := first.DeepCopy()
	a.Status.Phase = ragv1.PhasePaused
	a.Status.StableRevision = "rev-a"
	g.Expect(write(a, first)).To(Succeed())
	stale := a.DeepCopy() // what a lagging cache would still show

	// Pass B, from the latest object, writes RolledBack.
	b := a.DeepCopy()
	b.Status.Phase = ragv1.PhaseRolledBack
	g.Expect(write(b, a)).To(Succeed())

	// Pass C reads the stale copy, decides Paused again and new conditions.
	c := stale.DeepCopy()
	c.Status.Conditions = []metav1.Condition{{Type: ragv1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Paused", Message: "m",
		LastTransitionTime: metav1.Now(), ObservedGeneration: c.Generation}}
	err := write(c, stale)
	g.Expect(apierrors.IsConflict(err)).To(BeTrue(), "a patch from a stale base must conflict, got %v", err)

	got := &ragv1.RAGService{}
	g.Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "docs"}, got)).To(Succeed())
	g.Expect(got.Status.Phase).To(Equal(ragv1.PhaseRolledBack))
	g.Expect(got.Status.Conditions).To(BeEmpty(), "nothing of the refused patch was applied")
}
