package controllers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/embedserver/serverflags"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/deploysim"
)

// sim plays kube-controller-manager's Deployment controller and a kubelet for
// one namespace: pods are created and removed for each Deployment's template
// as deploysim.Next decides under the strategy the operator configures,
// each pod runs a real embedding server on its own loopback address, and the
// Deployment's status is reported from the pods. Each pod's server is built
// from its container's args, parsed by the server's own flag set, so a spec's
// model, space and limits are what the pod serves. Images select behaviour, as
// a real image would:
//
//	ragops/embedserver:broken        answers half of its requests with 500
//	ragops/embedserver:stuck         never becomes ready
//	ragops/embedserver:rejects-user  answers 400 to every request that names a
//	                                 user (the load loop's do; probes do not)
//	ragops/embedserver:no-metrics    serves its API but its admin port is closed
//
// A load loop sends real embedding requests to every ready pod, so canary
// analysis scrapes real /metrics with real traffic.
type sim struct {
	t  *testing.T
	ns string

	mu       sync.Mutex
	pods     map[string]*simPod // by pod name
	nextPod  int
	minReady map[string]int32 // per RAGService: least ready pods seen once it was full
	full     map[string]bool
	sent     map[string]int // requests answered, by status code
	lagging  bool           // Deployment status reported a tick after the pods
	slow     bool           // pods become ready slowStartDelay after they are created
	// slowController: Deployment status as it was slowControllerLag before,
	// from each Deployment's history of what its pods were.
	statusLag time.Duration
	history   map[string][]timedStatus
}

type timedStatus struct {
	at time.Time
	st appsv1.DeploymentStatus
}

type simPod struct {
	name, revision, deployment string
	labels                     map[string]string
	ip                         string
	model                      string // what its server embeds with
	ready                      bool
	readyAt                    time.Time       // slow start: when it turns ready
	budget                     *budget.Limiter // provider openai: its upstream budget
	cancel                     context.CancelFunc
	done                       chan struct{}
}

var (
	addrMu   sync.Mutex
	nextAddr = 1
)

// podAddr is the n-th simulated pod address, 127.0.9.1 upwards.
func podAddr(n int) string { return fmt.Sprintf("127.0.%d.%d", 9+n/250, 1+n%250) }

func allocAddr() string {
	addrMu.Lock()
	defer addrMu.Unlock()
	a := podAddr(nextAddr)
	nextAddr++
	return a
}

// Options of startSim.
const (
	// quiet: no client load, only what the operator sends.
	quiet = "quiet"
	// lagging: a Deployment's status counts its pods as they were one tick
	// (100 ms) before, as on a real cluster, where the pod watch shows a pod
	// ready before the Deployment controller has counted it.
	lagging = "lagging"
	// slowStart: a pod turns ready slowStartDelay after it is created, as a
	// pod that pulls an image or loads a model does: its Deployment counts it
	// as a replica, not ready, for that long.
	slowStart = "slow-start"
	// slowController: a Deployment's status reports its spec and pods as they
	// were slowControllerLag before, as from the Deployment controller of a
	// loaded cluster (on the benchmark cluster, 100 services created at once
	// had their pods counted 11 s after the pod watch showed them ready).
	slowController = "slow-controller"
)

const slowControllerLag = 3 * time.Second

const slowStartDelay = 3 * time.Second

func startSim(t *testing.T, ns string, opts ...string) *sim {
	s := &sim{t: t, ns: ns, pods: map[string]*simPod{}, minReady: map[string]int32{}, full: map[string]bool{}, sent: map[string]int{},
		lagging: slices.Contains(opts, lagging), slow: slices.Contains(opts, slowStart), history: map[string][]timedStatus{}}
	if slices.Contains(opts, slowController) {
		s.statusLag = slowControllerLag
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); tickEvery(ctx, 100*time.Millisecond, s.tick) }()
	if !slices.Contains(opts, quiet) {
		wg.Add(1)
		go func() { defer wg.Done(); tickEvery(ctx, 20*time.Millisecond, s.load) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, p := range s.pods {
			p.stop()
		}
	})
	return s
}

// tickEvery calls f every period until ctx is done.
func tickEvery(ctx context.Context, every time.Duration, f func(context.Context)) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
			f(ctx)
		}
	}
}

// pollEvery calls f every period in the background until the returned stop
// (which waits for the last call to end) or the test's cleanup.
func pollEvery(t *testing.T, every time.Duration, f func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); tickEvery(ctx, every, f) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// tick moves every Deployment of the namespace one step toward its spec.
func (s *sim) tick(ctx context.Context) {
	deps := &appsv1.DeploymentList{}
	if err := k8sClient.List(ctx, deps, client.InNamespace(s.ns)); err != nil {
		return
	}
	s.turnReady(ctx)
	live := map[string]bool{}
	for i := range deps.Items {
		d := &deps.Items[i]
		live[d.Name] = true
		if err := s.reconcileDeployment(ctx, d); err != nil && ctx.Err() == nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			s.t.Logf("sim: %s: %v", d.Name, err)
		}
	}
	// Pods of deleted Deployments go, as the garbage collector would take them.
	s.mu.Lock()
	var orphans []*simPod
	for _, p := range s.pods {
		if !live[p.deployment] {
			orphans = append(orphans, p)
		}
	}
	s.mu.Unlock()
	for _, p := range orphans {
		s.deletePod(ctx, p)
	}
	s.recordCapacity(ctx)
}

func (s *sim) reconcileDeployment(ctx context.Context, d *appsv1.Deployment) error {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	rev := d.Spec.Template.Labels[ragv1.LabelRevision]
	var mine []*simPod
	s.mu.Lock()
	for _, p := range s.pods {
		if p.deployment == d.Name {
			mine = append(mine, p)
		}
	}
	s.mu.Unlock()
	view := make([]deploysim.Pod, len(mine))
	for i, p := range mine {
		view[i] = deploysim.Pod{Revision: p.revision, Ready: p.ready}
	}
	if s.lagging {
		if err := s.reportStatus(ctx, d, rev); err != nil {
			return err
		}
	}
	// One move per tick, as the envtest clock is real time.
	switch a := deploysim.Next(deploysim.Strategy{MaxSurge: rollout.MaxSurge(want), MaxUnavailable: rollout.MaxUnavailable}, want, rev, view); {
	case a.Create:
		if err := s.createPod(ctx, d, rev); err != nil {
			return err
		}
	case a.Delete >= 0:
		s.deletePod(ctx, mine[a.Delete])
	}
	if s.lagging {
		return nil
	}
	return s.reportStatus(ctx, d, rev)
}

func (s *sim) reportStatus(ctx context.Context, d *appsv1.Deployment, rev string) error {
	var total, updated, ready int32
	s.mu.Lock()
	for _, p := range s.pods {
		if p.deployment != d.Name {
			continue
		}
		total++
		if p.revision == rev {
			updated++
		}
		if p.ready {
			ready++
		}
	}
	s.mu.Unlock()
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           total,
		UpdatedReplicas:    updated,
		ReadyReplicas:      ready,
		AvailableReplicas:  ready,
	}
	if total > ready {
		st.UnavailableReplicas = total - ready
	}
	if s.statusLag > 0 {
		var ok bool
		if st, ok = s.lagged(d.Name, st); !ok {
			return nil // the controller has not got this far yet
		}
		total, updated, ready = st.Replicas, st.UpdatedReplicas, st.ReadyReplicas
	}
	if d.Status.ObservedGeneration == st.ObservedGeneration && d.Status.Replicas == total &&
		d.Status.UpdatedReplicas == updated && d.Status.ReadyReplicas == ready {
		return nil
	}
	d.Status = st
	return k8sClient.Status().Update(ctx, d)
}

// lagged records now's status of Deployment name and returns the newest
// recorded at least statusLag ago (false: none is that old yet).
func (s *sim) lagged(name string, now appsv1.DeploymentStatus) (appsv1.DeploymentStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.history[name]
	if len(h) == 0 || !reflect.DeepEqual(h[len(h)-1].st, now) {
		h = append(h, timedStatus{time.Now(), now})
	}
	cut := time.Now().Add(-s.statusLag)
	var out appsv1.DeploymentStatus
	found := false
	for len(h) > 0 && !h[0].at.After(cut) {
		out, found = h[0].st, true
		if len(h) == 1 || h[1].at.After(cut) {
			break
		}
		h = h[1:]
	}
	s.history[name] = h
	return out, found
}

func (s *sim) createPod(ctx context.Context, d *appsv1.Deployment, rev string) error {
	s.mu.Lock()
	s.nextPod++
	name := fmt.Sprintf("%s-%s-%d", d.Name, rev, s.nextPod)
	s.mu.Unlock()

	// The environment first, as a kubelet resolves it: a required Secret
	// that does not exist yet holds the pod back (the next tick tries again).
	env, err := s.resolveEnv(ctx, d.Spec.Template.Spec.Containers[0])
	if err != nil {
		return err
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: d.Namespace, Labels: d.Spec.Template.Labels},
		Spec:       *d.Spec.Template.Spec.DeepCopy(),
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		return fmt.Errorf("creating pod: %w", err)
	}
	p := &simPod{name: name, revision: rev, labels: d.Spec.Template.Labels, deployment: d.Name, ip: allocAddr()}
	if c := pod.Spec.Containers[0]; !strings.HasSuffix(c.Image, ":stuck") {
		if err := p.start(c.Image, c.Args, env); err != nil {
			return err
		}
		p.ready = true
		if s.slow {
			p.ready, p.readyAt = false, time.Now().Add(slowStartDelay)
		}
	}
	pod.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  p.ip,
		PodIPs: []corev1.PodIP{{IP: p.ip}},
		Conditions: []corev1.PodCondition{{
			Type: corev1.PodReady, Status: boolStatus(p.ready), LastTransitionTime: metav1.Now(),
		}},
	}
	if err := k8sClient.Status().Update(ctx, pod); err != nil {
		p.stop()
		return fmt.Errorf("reporting pod status: %w", err)
	}
	s.mu.Lock()
	s.pods[name] = p
	s.mu.Unlock()
	return nil
}

// turnReady reports ready the slow-starting pods whose time has come.
func (s *sim) turnReady(ctx context.Context) {
	s.mu.Lock()
	var due []*simPod
	for _, p := range s.pods {
		if !p.ready && !p.readyAt.IsZero() && !time.Now().Before(p.readyAt) {
			due = append(due, p)
		}
	}
	s.mu.Unlock()
	for _, p := range due {
		pod := &corev1.Pod{}
		if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: p.name}, pod); err != nil {
			continue
		}
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()}}
		if err := k8sClient.Status().Update(ctx, pod); err != nil {
			continue // the next tick tries again
		}
		s.mu.Lock()
		p.ready = true
		s.mu.Unlock()
	}
}

// resolveEnv is the container's environment as a kubelet resolves it when
// the container starts: values, and Secret keys read now (an optional
// Secret or key that is missing leaves the variable unset).
func (s *sim) resolveEnv(ctx context.Context, c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		ref := (*corev1.SecretKeySelector)(nil)
		if e.ValueFrom != nil {
			ref = e.ValueFrom.SecretKeyRef
		}
		if ref == nil {
			env[e.Name] = e.Value
			continue
		}
		sec := &corev1.Secret{}
		err := k8sClient.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: ref.Name}, sec)
		optional := ref.Optional != nil && *ref.Optional
		switch {
		case apierrors.IsNotFound(err) && optional:
			continue
		case err != nil:
			return nil, fmt.Errorf("resolving %s: %w", e.Name, err)
		}
		v, ok := sec.Data[ref.Key]
		if !ok && !optional {
			return nil, fmt.Errorf("resolving %s: Secret %s has no key %s", e.Name, ref.Name, ref.Key)
		}
		if ok {
			env[e.Name] = string(v)
		}
	}
	return env, nil
}

func (s *sim) deletePod(ctx context.Context, p *simPod) {
	s.mu.Lock()
	delete(s.pods, p.name)
	s.mu.Unlock()
	p.stop()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: s.ns}}
	_ = k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0))
}

// start runs a real embedding server for the pod on its own address, as
// cmd/embedserver would run it from args and env (the builtin model embeds;
// a pod of provider openai also has the upstream budget's limiter, its start
// share and token, and serves /budget as the real one does).
func (p *simPod) start(image string, args []string, env map[string]string) error {
	o, err := serverflags.Parse(args, io.Discard)
	if err != nil {
		return fmt.Errorf("the server refuses the pod's args %q: %w", args, err)
	}
	p.model = o.Model
	var prov provider.Provider
	if o.Provider == contract.ProviderOpenAI {
		// The start share from the budget Secret, as cmd/embedserver reads it.
		if err := serverflags.ApplyStartShare(&o, func(k string) string { return env[k] }); err != nil {
			return err
		}
		// The upstream a test runs on loopback, as the pod would reach it.
		client, err := openai.New(openai.Config{BaseURL: o.UpstreamURL, Model: o.Model, MaxAttempts: 1, AttemptTimeout: 2 * time.Second,
			RequestsPerMinute: o.UpstreamRPM, TokensPerMinute: o.UpstreamTPM})
		if err != nil {
			return err
		}
		prov = client
		p.budget = client.Budget()
	} else {
		model, err := builtinmodel.Parse(o.Model)
		if err != nil {
			return err
		}
		prov = builtinmodel.Provider{Model: model}
	}
	switch {
	case strings.HasSuffix(image, ":broken"):
		prov = provider.FailRate(prov, 0.5, 1)
	case strings.HasSuffix(image, ":rejects-user"):
		prov = rejectsUser{prov}
	}
	apiLn, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(podAPIPort)))
	if err != nil {
		return err
	}
	adminLn, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(podAdminPort)))
	if err != nil {
		apiLn.Close()
		return err
	}
	if strings.HasSuffix(image, ":no-metrics") {
		// A listener that is closed at once: connections to it are refused.
		adminLn.Close()
		if adminLn, err = net.Listen("tcp", net.JoinHostPort(p.ip, "0")); err != nil {
			apiLn.Close()
			return err
		}
	}
	// Short timeouts keep a test's shutdown quick; the rest is the pod's own.
	srv := embedserver.New(embedserver.Config{
		Model: o.Model, Dimensions: o.Dimensions, Space: o.Space, MaxInFlight: o.MaxInFlight, MaxQueue: o.MaxQueue,
		MaxInputs: o.MaxInputs, MaxBodyBytes: o.MaxBodyBytes,
		RequestTimeout: 5 * time.Second, QueueTimeout: time.Second, DrainTimeout: time.Second, RetryAfter: o.RetryAfter,
		Budget: p.budget, BudgetToken: env[contract.BudgetTokenEnv],
	}, prov)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		_ = srv.Run(ctx, apiLn, adminLn)
	}()
	return nil
}

// rejectsUser is a build that refuses a field clients send.
type rejectsUser struct{ provider.Provider }

func (r rejectsUser) Embed(ctx context.Context, req provider.Request) (provider.Response, error) {
	if req.User != "" {
		return provider.Response{}, provider.BadRequest("user", "user is not supported by this build")
	}
	return r.Provider.Embed(ctx, req)
}

func (p *simPod) stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
}

var loadClient = &http.Client{Timeout: 5 * time.Second}

// load sends one embedding request to every ready pod.
func (s *sim) load(ctx context.Context) {
	s.mu.Lock()
	var ips []string
	for _, p := range s.pods {
		if p.ready {
			ips = append(ips, p.ip)
		}
	}
	s.mu.Unlock()
	body := []byte(`{"input":"how do canaries keep a fleet safe","user":"sim-client"}`)
	for _, ip := range ips {
		url := "http://" + net.JoinHostPort(ip, strconv.Itoa(podAPIPort)) + "/v1/embeddings"
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := loadClient.Do(req)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				s.count("error")
			}
			continue
		}
		resp.Body.Close()
		s.count(strconv.Itoa(resp.StatusCode))
	}
}

func (s *sim) count(code string) {
	s.mu.Lock()
	s.sent[code]++
	s.mu.Unlock()
}

// recordCapacity keeps, per RAGService, the fewest ready pods seen across both
// tracks once the service first had spec.replicas ready.
func (s *sim) recordCapacity(ctx context.Context) {
	list := &ragv1.RAGServiceList{}
	if err := k8sClient.List(ctx, list, client.InNamespace(s.ns)); err != nil {
		return
	}
	for _, svc := range list.Items {
		var ready int32
		s.mu.Lock()
		for _, p := range s.pods {
			if p.ready && strings.HasPrefix(p.deployment, svc.Name+"-") {
				ready++
			}
		}
		want := replicasOf(&svc)
		if ready >= want {
			s.full[svc.Name] = true
		}
		if s.full[svc.Name] {
			if m, ok := s.minReady[svc.Name]; !ok || ready < m {
				s.minReady[svc.Name] = ready
			}
		}
		s.mu.Unlock()
	}
}

// behind is what the shared Service of a RAGService sends clients to under
// selector: its ready pods, by the model they embed with.
func (s *sim) behind(svcName string, selector map[string]string) (models map[string]int, ready int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	models = map[string]int{}
	for _, p := range s.pods {
		if !p.ready || p.labels[ragv1.LabelInstance] != svcName || !labels.SelectorFromSet(selector).Matches(labels.Set(p.labels)) {
			continue
		}
		models[p.model]++
		ready++
	}
	return models, ready
}

// minReadySeen is the least ready capacity seen since the service was full.
func (s *sim) minReadySeen(name string) (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.minReady[name]
	return m, ok
}

func boolStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}
