package controllers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/podtemplate"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update

// BudgetReconciler hands out the upstream budget of each openai RAGService
// (spec.embedding.upstream.requestsPerMinute and tokensPerMinute) to its
// pods: it keeps the service's budget Secret (the token that may change a
// pod's share, and the safe share a pod starts with), tells every pod its
// share on the admin port (PUT /budget with the token), and writes
// status.budget. The arithmetic and why the shares never add up to more than
// the budget are in internal/budget/handout.go.
//
// It is its own controller, apart from the rollout: a budget or replica
// change is no rollout and restarts no pod (the budget is not in the pod
// template; the template only names the Secret).
type BudgetReconciler struct {
	client.Client
	// APIReader reads the Secret: Secrets are not cached (ConfigureCache).
	APIReader client.Reader
	// AdminPort is the pods' admin port; 0 means podtemplate.AdminPort.
	AdminPort int
	// HTTP tells pods their share; nil means a client with a 2 s timeout.
	HTTP *http.Client
	// Resync is how often a service is looked at without an event; 0 means
	// a minute. Pods that did not confirm their share are retried sooner.
	Resync time.Duration

	mu      sync.Mutex
	secrets map[types.UID]budgetSecret               // by RAGService: the Secret as last written or read
	told    map[types.UID]map[types.UID]budget.Share // by RAGService, by pod: the share the pod confirmed
}

// budgetSecret is what the operator knows of a service's budget Secret.
type budgetSecret struct {
	token string
	start budget.Share
}

const (
	// maxConcurrentPushes bounds the PUTs in flight for one service.
	maxConcurrentPushes = 8
	// budgetRetry is how soon pods that did not confirm are told again.
	budgetRetry = 2 * time.Second
)

// Reconcile hands out one service's budget.
func (r *BudgetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	svc := &ragv1.RAGService{}
	if err := r.Get(ctx, req.NamespacedName, svc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !svc.DeletionTimestamp.IsZero() {
		r.forget(svc.UID)
		return ctrl.Result{}, nil
	}
	if svc.Spec.Embedding.Provider != ragv1.ProviderOpenAI {
		// The builtin model calls no upstream: nothing to hand out.
		r.forget(svc.UID)
		return ctrl.Result{}, r.writeStatus(ctx, svc, nil)
	}
	declared := budget.Share{
		RequestsPerMinute: int(svc.Spec.Embedding.Upstream.RequestsPerMinute),
		TokensPerMinute:   int(svc.Spec.Embedding.Upstream.TokensPerMinute),
	}

	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels(podtemplate.SelectorLabels(svc.Name))); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing pods: %w", err)
	}
	deps := &appsv1.DeploymentList{}
	if err := r.List(ctx, deps, client.InNamespace(svc.Namespace), client.MatchingLabels(podtemplate.SelectorLabels(svc.Name))); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing deployments: %w", err)
	}
	live, draining, running := countPods(pods.Items)
	n := budget.Divisor(live, draining, allowedPods(svc, deps.Items))
	share := budget.PerPod(declared, n)

	// The start share first: a pod that starts from now on reads it.
	sec, err := r.ensureSecret(ctx, svc, share)
	if err != nil {
		return ctrl.Result{}, err
	}
	told, failed := r.tell(ctx, svc, running, sec.token, share)

	var st *ragv1.BudgetStatus
	if declared != (budget.Share{}) {
		st = &ragv1.BudgetStatus{
			RequestsPerMinute: int64(declared.RequestsPerMinute),
			TokensPerMinute:   int64(declared.TokensPerMinute),
			Pods:              int32(n),
			PerPod:            ragv1.BudgetShare{RequestsPerMinute: int64(share.RequestsPerMinute), TokensPerMinute: int64(share.TokensPerMinute)},
			PodsTold:          int32(told),
		}
	}
	if err := r.writeStatus(ctx, svc, st); err != nil {
		return ctrl.Result{}, err
	}
	if failed > 0 {
		return ctrl.Result{RequeueAfter: budgetRetry}, nil
	}
	return ctrl.Result{RequeueAfter: r.resync()}, nil
}

// countPods sorts a service's pods: live (not being deleted, not
// terminated), draining (being deleted, still running) and the pods of
// either kind that have an address to be told at.
func countPods(pods []corev1.Pod) (live, draining int, running []corev1.Pod) {
	for _, p := range pods {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		if p.DeletionTimestamp.IsZero() {
			live++
		} else {
			draining++
		}
		if p.Status.PodIP != "" {
			running = append(running, p)
		}
	}
	return live, draining, running
}

// allowedPods is how many non-terminating pods the service's Deployments may
// run at once: each one's replicas (the larger of what it asks and what it
// has) plus its rolling-update surge; for the stable revision's at least the
// replicas the RAGService asks for, which its Deployment may not have yet.
func allowedPods(svc *ragv1.RAGService, deps []appsv1.Deployment) int {
	total, stableSeen := 0, false
	for _, d := range deps {
		replicas := int(d.Status.Replicas)
		if d.Spec.Replicas != nil {
			replicas = max(replicas, int(*d.Spec.Replicas))
		}
		if rev := d.Spec.Template.Labels[ragv1.LabelRevision]; rev != "" && rev == svc.Status.StableRevision {
			stableSeen = true
			if svc.Spec.Replicas != nil {
				replicas = max(replicas, int(*svc.Spec.Replicas))
			}
		}
		total += replicas + surgeOf(d, replicas)
	}
	if !stableSeen && svc.Spec.Replicas != nil {
		total += int(*svc.Spec.Replicas) // created next; its surge is moot before it has pods
	}
	return total
}

// surgeOf is the most pods a Deployment runs above replicas while it rolls.
func surgeOf(d appsv1.Deployment, replicas int) int {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0
	}
	surge := intstr.FromString("25%") // the API's default
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(&surge, replicas, true)
	if err != nil {
		return replicas // unreadable: assume a whole second set
	}
	return n
}

// ensureSecret makes the service's budget Secret hold a token and start
// share. It reads the Secret once per operator run and writes only changes.
// The token is random, never logged, never in status.
func (r *BudgetReconciler) ensureSecret(ctx context.Context, svc *ragv1.RAGService, start budget.Share) (budgetSecret, error) {
	key := client.ObjectKey{Namespace: svc.Namespace, Name: podtemplate.BudgetSecretName(svc.Name)}
	r.mu.Lock()
	known, ok := r.secrets[svc.UID]
	r.mu.Unlock()
	if ok && known.start == start {
		// Still there? The watch caches Secrets' metadata only: no read of
		// the API server, no key in memory but the one this operator wrote.
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Get(ctx, key, meta); err == nil {
			return known, nil
		}
	}
	sec := &corev1.Secret{}
	err := r.APIReader.Get(ctx, key, sec)
	switch {
	case apierrors.IsNotFound(err):
		// Made again with the token the running pods hold, when it is known.
		token := known.token
		if token == "" {
			if token, err = newBudgetToken(); err != nil {
				return budgetSecret{}, err
			}
		}
		sec = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: objectLabels(svc),
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, ragv1.GroupVersion.WithKind("RAGService"))}},
			Type: corev1.SecretTypeOpaque,
			Data: budgetSecretData(token, start),
		}
		if err := r.Create(ctx, sec); err != nil {
			return budgetSecret{}, fmt.Errorf("creating the budget Secret %s: %w", key.Name, err)
		}
	case err != nil:
		return budgetSecret{}, fmt.Errorf("reading the budget Secret %s: %w", key.Name, err)
	default:
		if !metav1.IsControlledBy(sec, svc) {
			return budgetSecret{}, fmt.Errorf("the Secret %s exists and is not this RAGService's: rename it, the operator keeps the budget token there", key.Name)
		}
		token := string(sec.Data[contract.BudgetSecretTokenKey])
		if token == "" {
			if token, err = newBudgetToken(); err != nil {
				return budgetSecret{}, err
			}
		}
		want := budgetSecretData(token, start)
		if !apiequality.Semantic.DeepEqual(sec.Data, want) {
			sec.Data = want
			if err := r.Update(ctx, sec); err != nil {
				return budgetSecret{}, fmt.Errorf("writing the budget Secret %s: %w", key.Name, err)
			}
		}
	}
	out := budgetSecret{token: string(sec.Data[contract.BudgetSecretTokenKey]), start: start}
	r.mu.Lock()
	if r.secrets == nil {
		r.secrets = map[types.UID]budgetSecret{}
	}
	r.secrets[svc.UID] = out
	r.mu.Unlock()
	return out, nil
}

func budgetSecretData(token string, start budget.Share) map[string][]byte {
	return map[string][]byte{
		contract.BudgetSecretTokenKey:    []byte(token),
		contract.BudgetSecretRequestsKey: []byte(strconv.Itoa(start.RequestsPerMinute)),
		contract.BudgetSecretTokensKey:   []byte(strconv.Itoa(start.TokensPerMinute)),
	}
}

func newBudgetToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a budget token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// tell sends share to every pod that has not confirmed it, at most
// maxConcurrentPushes at once, and says how many pods hold it now and how
// many could not be told.
func (r *BudgetReconciler) tell(ctx context.Context, svc *ragv1.RAGService, pods []corev1.Pod, token string, share budget.Share) (told, failed int) {
	r.mu.Lock()
	if r.told == nil {
		r.told = map[types.UID]map[types.UID]budget.Share{}
	}
	confirmed := r.told[svc.UID]
	if confirmed == nil {
		confirmed = map[types.UID]budget.Share{}
		r.told[svc.UID] = confirmed
	}
	// Forget pods that are gone.
	present := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		present[p.UID] = true
	}
	for uid := range confirmed {
		if !present[uid] {
			delete(confirmed, uid)
		}
	}
	var todo []corev1.Pod
	for _, p := range pods {
		if s, ok := confirmed[p.UID]; ok && s == share {
			told++
		} else {
			todo = append(todo, p)
		}
	}
	r.mu.Unlock()

	log := ctrl.LoggerFrom(ctx)
	sem := make(chan struct{}, maxConcurrentPushes)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := r.push(ctx, p.Status.PodIP, token, share)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				log.V(1).Info("Could not tell a pod its budget share", "pod", p.Name, "error", err.Error())
				return
			}
			told++
			r.mu.Lock()
			confirmed[p.UID] = share
			r.mu.Unlock()
		}()
	}
	wg.Wait()
	return told, failed
}

// errNoToken: the pod refused the token (it runs another token: a Secret
// replaced by hand); it keeps its share until it restarts with the current one.
var errNoToken = errors.New("the pod refused the budget token")

// push is one PUT /budget to a pod's admin port.
func (r *BudgetReconciler) push(ctx context.Context, ip, token string, share budget.Share) error {
	port := r.AdminPort
	if port == 0 {
		port = podtemplate.AdminPort
	}
	body, err := json.Marshal(map[string]int{"requestsPerMinute": share.RequestsPerMinute, "tokensPerMinute": share.TokensPerMinute})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+net.JoinHostPort(ip, strconv.Itoa(port))+"/budget", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	hc := r.HTTP
	if hc == nil {
		hc = budgetHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return errNoToken
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("PUT /budget answered %s", resp.Status)
	}
	return nil
}

var budgetHTTP = &http.Client{Timeout: 2 * time.Second}

// writeStatus patches status.budget when it changed, on the version read
// (a conflict runs the reconcile again). Only this field: the rollout's
// status is the other controller's.
func (r *BudgetReconciler) writeStatus(ctx context.Context, svc *ragv1.RAGService, st *ragv1.BudgetStatus) error {
	if apiequality.Semantic.DeepEqual(svc.Status.Budget, st) {
		return nil
	}
	base := svc.DeepCopy()
	svc.Status.Budget = st
	if err := r.Status().Patch(ctx, svc, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("writing status.budget: %w", err)
	}
	return nil
}

func (r *BudgetReconciler) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.secrets, uid)
	delete(r.told, uid)
}

func (r *BudgetReconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return time.Minute
}

// SetupWithManager registers the hand-out: it runs on every change of a
// RAGService, and of its pods and Deployments (the pod set and what may
// join it).
func (r *BudgetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	byInstance := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		name, ok := o.GetLabels()[ragv1.LabelInstance]
		if !ok {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("ragservice-budget").
		For(&ragv1.RAGService{}).
		Owns(&corev1.Secret{}, builder.OnlyMetadata). // a deleted budget Secret is made again
		Watches(&corev1.Pod{}, byInstance).
		Watches(&appsv1.Deployment{}, byInstance).
		Complete(r)
}
