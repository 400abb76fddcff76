package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managerUser is who the manager is to the API server (and in the audit log).
const (
	managerNS   = "rag-bench"
	managerSA   = "manager"
	managerUser = "system:serviceaccount:" + managerNS + ":" + managerSA
	// templateName is the one service whose owned objects the baseline copies.
	templateName = "bench-template"
)

// clusterControllers are the kube-controller-manager's controllers whose
// writes the audit log keeps (hack/bench-scale.sh's policy): with
// --use-service-account-credentials each runs as its own ServiceAccount, with
// its own client and client-side rate limit (--kube-api-qps, 20 by default),
// so the Deployment controller's writes per service are what bounds how fast
// the cluster can roll, on either side.
var clusterControllers = []string{"deployment-controller", "replicaset-controller", "generic-garbage-collector"}

func controllerUser(name string) string { return "system:serviceaccount:kube-system:" + name }

var ragGVK = schema.GroupVersionKind{Group: "rag.ragops.io", Version: "v1alpha1", Kind: "RAGService"}

// Phase is one measured step.
type Phase struct {
	Name     string  `json:"name"`
	Seconds  float64 `json:"seconds"`
	Done     int     `json:"done"`
	Total    int     `json:"total"`
	TimedOut bool    `json:"timedOut,omitempty"`
	// The server-side dry run of the same apply just before the timer
	// started (kubectlWarmUp), creates only.
	WarmUpSeconds float64 `json:"warmUpSeconds,omitempty"`

	// Writes by the manager (operator side) and by the benchmark's kubectl.
	ManagerWrites int            `json:"managerWrites"`
	ManagerKinds  map[string]int `json:"managerKinds,omitempty"`
	KubectlWrites int            `json:"kubectlWrites"`
	// Writes by the cluster's own controllers (clusterControllers), by name.
	ClusterWrites map[string]int `json:"clusterWrites,omitempty"`
	// PodsCreated are the pods the ReplicaSet controller created.
	PodsCreated int `json:"podsCreated"`

	// The manager's, over the phase (operator side only).
	CPUSeconds     float64 `json:"cpuSeconds,omitempty"`
	PeakRSSMiB     float64 `json:"peakRSSMiB,omitempty"`
	MaxQueueDepth  float64 `json:"maxQueueDepth,omitempty"`
	MeanQueueDepth float64 `json:"meanQueueDepth,omitempty"`

	// Unrelated pods: the manager's RSS (median of samples) before and after.
	RSSBeforeMiB float64 `json:"rssBeforeMiB,omitempty"`
	RSSAfterMiB  float64 `json:"rssAfterMiB,omitempty"`
	// And its Go heap in use (median of samples): not moved by when the
	// runtime returns memory to the system, as the RSS is, but it still holds
	// garbage until the next collection.
	HeapBeforeMiB float64 `json:"heapBeforeMiB,omitempty"`
	HeapAfterMiB  float64 `json:"heapAfterMiB,omitempty"`
	// And the bytes its heap holds right after a forced collection (the heap
	// profile's own runtime.GC): what is live, without garbage.
	LiveBeforeMiB float64 `json:"liveBeforeMiB,omitempty"`
	LiveAfterMiB  float64 `json:"liveAfterMiB,omitempty"`

	LoadAverage string `json:"loadAverage"`
}

// Result is one side of one N.
type Result struct {
	Side        string    `json:"side"`
	N           int       `json:"n"`
	Started     time.Time `json:"started"`
	ManagerArgs []string  `json:"managerArgs,omitempty"`
	Phases      []Phase   `json:"phases"`
}

type bench struct {
	// ctx ends on SIGINT or SIGTERM: the side stops, keeping what it measured.
	ctx       context.Context
	c         config
	k         client.Client
	audit     *auditCounter
	res       *Result
	mgr       *exec.Cmd
	mgrExited chan error
	mgrLog    *os.File
	proc      proc
	samp      *sampler
	// pending holds audit counts read while settling, for the phase being closed.
	pending []writes
}

func newBench(ctx context.Context, c config) (*bench, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", c.kubeconfig, err)
	}
	// The benchmark's own reads (a list every two seconds) and the unrelated
	// pods it creates should not wait on a client-side limit.
	rc.QPS, rc.Burst = 500, 1000
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	k, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	a, err := newAuditCounter(c.auditLog)
	if err != nil {
		return nil, err
	}
	return &bench{ctx: ctx, c: c, k: k, audit: a, res: &Result{Side: c.side, N: c.n, Started: time.Now().UTC()}}, nil
}

func (b *bench) run() (*Result, error) {
	defer b.stopManager()
	ctx := b.ctx
	if err := b.ensureNamespace(ctx, b.c.namespace); err != nil {
		return nil, err
	}
	if b.c.side == "baseline" {
		return b.res, b.baseline(ctx)
	}
	return b.res, b.operator(ctx)
}

// operator: N RAGServices created to Ready, idle, one template change shipped.
func (b *bench) operator(ctx context.Context) error {
	if err := b.startManager(ctx); err != nil {
		return err
	}
	b.res.ManagerArgs = b.mgr.Args[1:]
	svcFile := filepath.Join(b.c.stateDir, "ragservices.yaml")

	// Create.
	if err := os.WriteFile(svcFile, ragServices(b.c.namespace, b.c.n, 8), 0o644); err != nil {
		return err
	}
	warm, err := b.kubectlWarmUp(svcFile)
	if err != nil {
		return err
	}
	p, err := b.measure(ctx, "create", func() error { return b.kubectlApply(svcFile) }, b.countReady, true)
	p.WarmUpSeconds = warm
	b.add(p)
	if err != nil {
		return err
	}

	// Idle: nothing changes, nothing should be written.
	b.window()
	cpu0, _ := b.proc.cpuSeconds()
	t0 := time.Now()
	fmt.Printf("[operator N=%d] idle: counting writes for %s\n", b.c.n, b.c.idle)
	if err := b.sleep(b.c.idle); err != nil {
		return err
	}
	idle := b.closePhase("idle", t0, b.c.n, b.c.n, cpu0)
	b.add(idle)

	// One template change (maxInFlight 8 -> 16: new args, a new revision) to all.
	before, err := b.revisions(ctx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(svcFile, ragServices(b.c.namespace, b.c.n, 16), 0o644); err != nil {
		return err
	}
	p, err = b.measure(ctx, "rollout", func() error { return b.kubectlApply(svcFile) },
		func(ctx context.Context) (int, error) { return b.countPromoted(ctx, before) }, true)
	b.add(p)
	if err != nil {
		return err
	}

	if b.c.unrelatedPods > 0 {
		p, err := b.unrelated(ctx)
		b.add(p)
		return err
	}
	return nil
}

// baseline: the operator's objects of one service copied N times, applied by
// kubectl and waited for; then one template change applied to all.
func (b *bench) baseline(ctx context.Context) error {
	objs, err := b.templateObjects(ctx)
	if err != nil {
		return err
	}
	file := filepath.Join(b.c.stateDir, "baseline.json")
	write := func(maxInFlight int) error {
		var items []json.RawMessage
		for i := range b.c.n {
			for _, o := range objs {
				s := strings.ReplaceAll(string(o), templateName, serviceName(i))
				s = strings.ReplaceAll(s, `"--max-in-flight=8"`, fmt.Sprintf(`"--max-in-flight=%d"`, maxInFlight))
				u := &unstructured.Unstructured{}
				if err := u.UnmarshalJSON([]byte(s)); err != nil {
					return err
				}
				u.SetNamespace(b.c.namespace)
				raw, err := u.MarshalJSON()
				if err != nil {
					return err
				}
				items = append(items, raw)
			}
		}
		list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
		if err != nil {
			return err
		}
		return os.WriteFile(file, list, 0o644)
	}
	if err := write(8); err != nil {
		return err
	}
	warm, err := b.kubectlWarmUp(file)
	if err != nil {
		return err
	}
	p, err := b.measure(ctx, "create", func() error { return b.kubectlApply(file) }, b.countRolledOut, false)
	p.WarmUpSeconds = warm
	b.add(p)
	if err != nil {
		return err
	}
	if err := write(16); err != nil {
		return err
	}
	p, err = b.measure(ctx, "rollout", func() error { return b.kubectlApply(file) }, b.countRolledOut, false)
	b.add(p)
	return err
}

// measure runs act, then waits until count reaches N (printing progress), then
// (with the operator) until the manager has settled: its queue empty and no
// write of its own for 5 s, so writes that follow from the phase count in it.
func (b *bench) measure(ctx context.Context, name string, act func() error, count func(context.Context) (int, error), settle bool) (Phase, error) {
	b.window()
	cpu0 := 0.0
	if b.mgr != nil {
		cpu0, _ = b.proc.cpuSeconds()
	}
	start := time.Now()
	fmt.Printf("[%s N=%d] %s: started\n", b.c.side, b.c.n, name)
	if err := act(); err != nil {
		return Phase{Name: name}, err
	}
	deadline := start.Add(b.c.phaseTimeout)
	lastPrint := time.Now()
	done := 0
	for {
		n, err := count(ctx)
		if err != nil {
			fmt.Printf("[%s N=%d] %s: %v (retrying)\n", b.c.side, b.c.n, name, err)
		}
		done = n
		if done >= b.c.n {
			break
		}
		if time.Now().After(deadline) {
			p := b.closePhase(name, start, done, b.c.n, cpu0)
			p.TimedOut = true
			return p, fmt.Errorf("%s: %d of %d after %s", name, done, b.c.n, b.c.phaseTimeout)
		}
		if time.Since(lastPrint) >= 15*time.Second {
			depth := ""
			if b.samp != nil {
				depth = fmt.Sprintf(", queue %.0f", b.samp.lastDepth())
			}
			fmt.Printf("[%s N=%d] %s: %d/%d after %.0fs%s, load %s\n", b.c.side, b.c.n, name, done, b.c.n, time.Since(start).Seconds(), depth, loadAverage())
			lastPrint = time.Now()
		}
		if err := b.sleep(2 * time.Second); err != nil {
			p := b.closePhase(name, start, done, b.c.n, cpu0)
			p.TimedOut = true
			return p, err
		}
	}
	elapsed := time.Since(start)
	if settle && b.samp != nil {
		b.settle(start.Add(b.c.phaseTimeout))
	}
	p := b.closePhase(name, start, done, b.c.n, cpu0)
	p.Seconds = elapsed.Seconds()
	fmt.Printf("[%s N=%d] %s: %d/%d in %.1fs\n", b.c.side, b.c.n, name, done, b.c.n, p.Seconds)
	return p, nil
}

// settle waits for an empty queue and 5 s without a manager write. The writes
// it sees are kept for the phase's count.
func (b *bench) settle(deadline time.Time) {
	quiet := time.Time{}
	for time.Now().Before(deadline) {
		if b.sleep(time.Second) != nil {
			return
		}
		if b.samp.lastDepth() != 0 || b.peekManagerWrites() {
			quiet = time.Time{}
			continue
		}
		if quiet.IsZero() {
			quiet = time.Now()
		}
		if time.Since(quiet) >= 5*time.Second {
			return
		}
	}
}

func (b *bench) peekManagerWrites() bool {
	w := b.audit.take()
	b.pending = append(b.pending, w)
	return w.ByUser[managerUser] > 0
}

// window starts a new counting window: writes, samples.
func (b *bench) window() {
	b.audit.take()
	b.pending = nil
	if b.samp != nil {
		b.samp.window()
	}
}

func (b *bench) closePhase(name string, start time.Time, done, total int, cpu0 float64) Phase {
	p := Phase{Name: name, Seconds: time.Since(start).Seconds(), Done: done, Total: total, LoadAverage: loadAverage()}
	all := append(b.pending, b.audit.take())
	b.pending = nil
	p.ManagerKinds = map[string]int{}
	p.ClusterWrites = map[string]int{}
	for _, w := range all {
		p.ManagerWrites += w.ByUser[managerUser]
		p.KubectlWrites += w.ByUser["admin"]
		for _, c := range clusterControllers {
			p.ClusterWrites[c] += w.ByUser[controllerUser(c)]
		}
		p.PodsCreated += w.ByKind[controllerUser("replicaset-controller")]["create pods"]
		for k, n := range w.ByKind[managerUser] {
			p.ManagerKinds[k] += n
		}
	}
	if b.mgr != nil {
		cpu, _ := b.proc.cpuSeconds()
		p.CPUSeconds = cpu - cpu0
		_, p.PeakRSSMiB, _ = b.proc.memMiB()
		depths, _, _ := b.samp.window()
		p.MaxQueueDepth, p.MeanQueueDepth = maxOf(depths), meanOf(depths)
	}
	return p
}

func (b *bench) add(p Phase) {
	if p.Name != "" {
		b.res.Phases = append(b.res.Phases, p)
	}
}

// countReady counts RAGServices Ready at their current generation.
func (b *bench) countReady(ctx context.Context) (int, error) {
	list, err := b.listRAGServices(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list.Items {
		if isReady(&s) {
			n++
		}
	}
	return n, nil
}

// countPromoted counts services whose stable revision moved on and that run no canary.
func (b *bench) countPromoted(ctx context.Context, before map[string]string) (int, error) {
	list, err := b.listRAGServices(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list.Items {
		stable, _, _ := unstructured.NestedString(s.Object, "status", "stableRevision")
		canary, _, _ := unstructured.NestedString(s.Object, "status", "canaryRevision")
		if isReady(&s) && stable != "" && stable != before[s.GetName()] && canary == "" {
			n++
		}
	}
	return n, nil
}

func isReady(s *unstructured.Unstructured) bool {
	og, _, _ := unstructured.NestedInt64(s.Object, "status", "observedGeneration")
	if og != s.GetGeneration() {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(s.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}

func (b *bench) revisions(ctx context.Context) (map[string]string, error) {
	list, err := b.listRAGServices(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.GetName()], _, _ = unstructured.NestedString(s.Object, "status", "stableRevision")
	}
	return out, nil
}

func (b *bench) listRAGServices(ctx context.Context) (*unstructured.UnstructuredList, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(ragGVK.GroupVersion().WithKind("RAGServiceList"))
	return list, b.k.List(ctx, list, client.InNamespace(b.c.namespace))
}

// countRolledOut counts Deployments whose every pod runs the current template and is available.
func (b *bench) countRolledOut(ctx context.Context) (int, error) {
	list := &appsv1.DeploymentList{}
	if err := b.k.List(ctx, list, client.InNamespace(b.c.namespace)); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range list.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		st := d.Status
		if st.ObservedGeneration >= d.Generation && st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want {
			n++
		}
	}
	return n, nil
}

// ragServices is the manifest of n services on kwok nodes: one replica, the
// builtin model, one setWeight 100 step, no analysis, and no embedding-space
// check (kwok pods only exist: nothing would answer its probes).
func ragServices(ns string, n, maxInFlight int) []byte {
	var buf bytes.Buffer
	for i := range n {
		fmt.Fprintf(&buf, `---
apiVersion: rag.ragops.io/v1alpha1
kind: RAGService
metadata: {name: %s, namespace: %s}
spec:
  replicas: 1
  embedding: {provider: builtin, model: hash-64}
  concurrency: {maxInFlight: %d}
  rollout:
    steps: [{setWeight: 100}]
    spaceCheck: {enabled: false}
  pod:
    nodeSelector: {type: kwok}
    tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
`, serviceName(i), ns, maxInFlight)
	}
	return buf.Bytes()
}

func serviceName(i int) string { return fmt.Sprintf("svc-%04d", i) }

// templateObjects runs the manager for one service and returns its owned
// Deployment, Services and PodDisruptionBudget as a user would apply them.
func (b *bench) templateObjects(ctx context.Context) ([][]byte, error) {
	if err := b.ensureNamespace(ctx, templateName); err != nil {
		return nil, err
	}
	if err := b.startManager(ctx); err != nil {
		return nil, err
	}
	file := filepath.Join(b.c.stateDir, "template.yaml")
	one := strings.Replace(string(ragServices(templateName, 1, 8)), serviceName(0), templateName, 1)
	if err := os.WriteFile(file, []byte(one), 0o644); err != nil {
		return nil, err
	}
	if err := b.kubectlApply(file); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := &unstructured.Unstructured{}
		s.SetGroupVersionKind(ragGVK)
		if err := b.k.Get(ctx, client.ObjectKey{Namespace: templateName, Name: templateName}, s); err == nil && isReady(s) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the template service did not become Ready in 2 minutes")
		}
		if err := b.sleep(time.Second); err != nil {
			return nil, err
		}
	}
	b.stopManager()

	var out [][]byte
	for _, gvk := range []schema.GroupVersionKind{
		{Group: "apps", Version: "v1", Kind: "DeploymentList"},
		{Version: "v1", Kind: "ServiceList"},
		{Group: "policy", Version: "v1", Kind: "PodDisruptionBudgetList"},
	} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk)
		if err := b.k.List(ctx, list, client.InNamespace(templateName), client.MatchingLabels{"app.kubernetes.io/instance": templateName}); err != nil {
			return nil, err
		}
		for _, o := range list.Items {
			clean(&o)
			raw, err := o.MarshalJSON()
			if err != nil {
				return nil, err
			}
			out = append(out, raw)
		}
	}
	if len(out) != 5 {
		return nil, fmt.Errorf("the template service owns %d Deployments, Services and PDBs, want 5", len(out))
	}
	return out, nil
}

// clean keeps what a user writes of an object: no server-set metadata,
// status, owner or cluster IP.
func clean(o *unstructured.Unstructured) {
	keep := map[string]any{"name": o.GetName(), "labels": o.GetLabels()}
	o.Object["metadata"] = keep
	delete(o.Object, "status")
	unstructured.RemoveNestedField(o.Object, "spec", "clusterIP")
	unstructured.RemoveNestedField(o.Object, "spec", "clusterIPs")
}

// unrelated creates pods of another app and compares the manager's RSS.
func (b *bench) unrelated(ctx context.Context) (Phase, error) {
	const ns = "unrelated"
	if err := b.ensureNamespace(ctx, ns); err != nil {
		return Phase{}, err
	}
	// Each sample starts with a forced collection (and a heap profile kept
	// beside the result, for go tool pprof -base), so that both read the heap
	// at the same point of the collector's cycle: a manager that just rolled
	// 1,000 services holds tens of MiB of garbage for a while.
	median := func(d time.Duration, profile string) (rss, heap, live float64) {
		live, err := b.forcedCollection(filepath.Join(filepath.Dir(b.c.out), fmt.Sprintf("heap-%s-%d.pb.gz", profile, b.c.n)))
		if err != nil {
			fmt.Printf("[operator N=%d] unrelated pods: no forced collection: %v\n", b.c.n, err)
		}
		b.samp.window()
		_ = b.sleep(d)
		_, r, h := b.samp.window()
		return medianOf(r), medianOf(h), live
	}
	fmt.Printf("[operator N=%d] unrelated pods: manager RSS before\n", b.c.n)
	before, heapBefore, liveBefore := median(15*time.Second, "before")
	b.window()
	start := time.Now()
	cpu0, _ := b.proc.cpuSeconds()
	errs := make(chan error, b.c.unrelatedPods)
	sem := make(chan struct{}, 16)
	for i := range b.c.unrelatedPods {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("web-%05d", i), Namespace: ns,
					Labels: map[string]string{"app.kubernetes.io/name": "web", "app.kubernetes.io/managed-by": "someone-else"}},
				Spec: corev1.PodSpec{
					NodeName:    fmt.Sprintf("kwok-%d", 1+i%2),
					Containers:  []corev1.Container{{Name: "web", Image: "example.com/web:1"}},
					Tolerations: []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				},
			}
			if err := b.k.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
				errs <- err
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	close(errs)
	if err := <-errs; err != nil {
		return Phase{}, fmt.Errorf("creating unrelated pods: %w", err)
	}
	running := 0
	for deadline := time.Now().Add(b.c.phaseTimeout); time.Now().Before(deadline) && b.sleep(2*time.Second) == nil; {
		list := &corev1.PodList{}
		if err := b.k.List(ctx, list, client.InNamespace(ns)); err != nil {
			continue
		}
		running = 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running >= b.c.unrelatedPods {
			break
		}
	}
	p := b.closePhase("unrelated-pods", start, running, b.c.unrelatedPods, cpu0)
	fmt.Printf("[operator N=%d] unrelated pods: %d running; manager RSS after\n", b.c.n, running)
	_ = b.sleep(15 * time.Second) // informers and the GC catch up
	after, heapAfter, liveAfter := median(15*time.Second, "after")
	p.RSSBeforeMiB, p.RSSAfterMiB = before, after
	p.HeapBeforeMiB, p.HeapAfterMiB = heapBefore, heapAfter
	p.LiveBeforeMiB, p.LiveAfterMiB = liveBefore, liveAfter
	if running < b.c.unrelatedPods {
		p.TimedOut = true
	}
	return p, nil
}

func (b *bench) ensureNamespace(ctx context.Context, name string) error {
	err := b.k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

func (b *bench) kubectl(args ...string) error {
	cmd := exec.CommandContext(b.ctx, "kubectl", append([]string{"--kubeconfig", b.c.kubeconfig}, args...)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = nil, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func (b *bench) kubectlApply(file string) error {
	return b.kubectl("apply", "--server-side", "--field-manager=bench", "-f", file)
}

// kubectlWarmUp runs the apply of file as a server-side dry run, before a
// create's timer starts. kubectl's first apply of a thousand objects to a new
// cluster spent about 36 s of its own CPU before its first write (the second
// apply of the same file: 7 s in all), and how long varied by tens of seconds
// from run to run: the timer is for the cluster and the operator, not for
// kubectl's start. The dry run writes nothing (its audited requests fall
// before the phase's window).
func (b *bench) kubectlWarmUp(file string) (float64, error) {
	t := time.Now()
	if err := b.kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=bench", "-f", file); err != nil {
		return 0, err
	}
	s := time.Since(t).Seconds()
	fmt.Printf("[%s N=%d] kubectl warm-up (the create as a server-side dry run): %.1fs\n", b.c.side, b.c.n, s)
	return s, nil
}

// startManager runs the manager as its own ServiceAccount with the generated
// manager ClusterRole and plain HTTP metrics on loopback.
func (b *bench) startManager(ctx context.Context) error {
	if b.mgr != nil {
		return nil
	}
	for _, args := range [][]string{
		{"apply", "--server-side", "-f", b.c.rbacRole},
		{"create", "namespace", managerNS},
		{"-n", managerNS, "create", "serviceaccount", managerSA},
		{"create", "clusterrolebinding", "rag-bench-manager", "--clusterrole=manager-role", "--serviceaccount=" + managerNS + ":" + managerSA},
	} {
		if err := b.kubectl(args...); err != nil && !strings.Contains(err.Error(), "AlreadyExists") {
			return err
		}
	}
	out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", b.c.kubeconfig, "-n", managerNS, "create", "token", managerSA, "--duration=6h").Output()
	if err != nil {
		return fmt.Errorf("kubectl create token: %w", err)
	}
	cfg, err := clientcmd.LoadFromFile(b.c.kubeconfig)
	if err != nil {
		return err
	}
	for _, ai := range cfg.AuthInfos {
		ai.Token = strings.TrimSpace(string(out))
	}
	kc := filepath.Join(b.c.stateDir, "manager.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(b.c.stateDir, "manager.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := []string{"--kubeconfig", kc, "--metrics-secure=false", "--metrics-bind-address=" + b.c.metricsAddr, "--pprof-bind-address=" + b.c.pprofAddr,
		"--health-probe-bind-address=127.0.0.1:65081", "--embedserver-image=ragops/embedserver:bench"}
	args = append(args, strings.Fields(b.c.managerArgs)...)
	cmd := exec.Command(b.c.managerBin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting the manager: %w", err)
	}
	b.mgr, b.mgrLog, b.proc = cmd, logf, proc{pid: cmd.Process.Pid}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		select {
		case err := <-exited:
			b.mgr = nil
			return fmt.Errorf("the manager exited at start (%v): see %s", err, logf.Name())
		default:
		}
		if resp, err := hc.Get("http://127.0.0.1:65081/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return errors.New("the manager is not ready after 60s")
		}
	}
	b.mgrExited = exited
	b.samp = startSampler(b.proc, "http://"+b.c.metricsAddr+"/metrics")
	return nil
}

func (b *bench) stopManager() {
	if b.mgr == nil {
		return
	}
	if b.samp != nil {
		b.samp.close()
		b.samp = nil
	}
	_ = b.mgr.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-b.mgrExited:
	case <-time.After(20 * time.Second):
		_ = b.mgr.Process.Kill()
		err = <-b.mgrExited
	}
	if err != nil {
		fmt.Printf("[%s N=%d] the manager stopped: %v\n", b.c.side, b.c.n, err)
	}
	_ = b.mgrLog.Close()
	b.mgr = nil
}

// sleep waits d, or returns an error at once when the side is interrupted.
func (b *bench) sleep(d time.Duration) error {
	select {
	case <-b.ctx.Done():
		return fmt.Errorf("interrupted: %w", context.Cause(b.ctx))
	case <-time.After(d):
		return nil
	}
}

func writeResult(path string, r *Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
