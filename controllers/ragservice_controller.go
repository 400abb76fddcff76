// Package controllers holds the RAGService reconciler: it observes the owned
// objects, asks pure code what they should be, applies that with server-side
// apply under one field owner, and reports the truth in status.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/analysis"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/skipapply"
)

// FieldOwner is the one server-side apply field manager of everything the
// operator writes.
const FieldOwner = "rag-operator"

// secretRefIndex indexes RAGServices by the name of the API key Secret they use.
const secretRefIndex = "spec.embedding.apiKeySecretRef.name"

// revisionHistoryLimit is how many ControllerRevisions a service keeps, besides
// the ones its tracks run.
const revisionHistoryLimit = 10

// RAGServiceReconciler reconciles RAGService objects.
type RAGServiceReconciler struct {
	client.Client
	// APIReader reads uncached, for objects the manager does not cache (Secrets).
	APIReader client.Reader
	Recorder  events.EventRecorder
	// EmbedServerImage is used when a spec names no image.
	EmbedServerImage string
	// Now is the clock; tests may replace it.
	Now func() time.Time
	// Builtin scrapes pods for canary analysis; nil means a default one.
	Builtin *analysis.Builtin
	// MetricsPort is the pods' admin port that analysis scrapes; 0 means 9090.
	MetricsPort int

	builtinOnce sync.Once
	applied     skipapply.Memory // the last apply of each owned object
}

// +kubebuilder:rbac:groups=rag.ragops.io,resources=ragservices,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=rag.ragops.io,resources=ragservices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// scope is what one reconcile observed and decided about one RAGService.
type scope struct {
	obj  *ragv1.RAGService
	base *ragv1.RAGService // last status written, for merge patches
	now  time.Time

	// desired is the pod template built from the current spec, desiredRevision its hash.
	desired         *corev1ac.PodTemplateSpecApplyConfiguration
	desiredRevision string

	stable, canary *appsv1.Deployment // observed; nil when absent
	hpaOnStable    bool               // an HPA scales the stable Deployment itself
	secretProblem  string             // why the API key Secret is unusable; "" when fine

	plan *rollout.Plan // the planner's decision; nil until reconcileTracks ran
}

// conflictRequeue is how soon a pass that read a stale object runs again; the
// cache is usually a few milliseconds behind.
const conflictRequeue = 100 * time.Millisecond

// errStaleRead marks a status write the server refused because the object
// changed since this pass read it (see patchStatus).
var errStaleRead = errors.New("the RAGService changed since it was read")

// Reconcile moves the owned objects of one RAGService toward its spec.
func (r *RAGServiceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	log := ctrl.LoggerFrom(ctx)

	obj := &ragv1.RAGService{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: owner references let the garbage collector remove what it
			// owned; its metric series and analysis memory go here.
			forgetMetrics(req.Namespace, req.Name)
			r.applied.ForgetOwner(req.NamespacedName)
			r.builtin().Forget(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	s := &scope{obj: obj, base: obj.DeepCopy(), now: r.now()}

	// One status patch per reconcile, whatever happened: the conditions must
	// tell the truth even when a step failed.
	defer func() {
		if errors.Is(retErr, errStaleRead) {
			// The rollout decision was made from a stale read and refused:
			// nothing of this pass stands, so read again soon, without an error.
			log.V(1).Info("RAGService changed since it was read; reconciling again")
			result, retErr = ctrl.Result{RequeueAfter: conflictRequeue}, nil
			return
		}
		summarize(s, retErr)
		before := s.base.DeepCopy()
		switch err := r.patchStatus(ctx, obj, s.base); {
		case err == nil:
			r.recordTransitions(before, obj, s.plan)
		case apierrors.IsNotFound(err):
		case apierrors.IsConflict(err) && retErr == nil:
			log.V(1).Info("RAGService changed since it was read; reconciling again")
			result = ctrl.Result{RequeueAfter: conflictRequeue}
		default:
			retErr = kerrors.NewAggregate([]error{retErr, fmt.Errorf("patching status: %w", err)})
		}
	}()

	steps := []func(context.Context, *scope) (ctrl.Result, error){
		r.reconcileTemplate,
		r.observe,
		r.reconcileTracks,
		r.reconcileServices,
		r.reconcileRevisionHistory,
	}
	for _, step := range steps {
		res, err := step(ctx, s)
		if err != nil {
			var stalled *stalledError
			if errors.As(err, &stalled) {
				log.Info("Spec cannot be reconciled", "reason", stalled.reason, "message", stalled.message)
				// The spec was observed and judged: kstatus readers (Flux health
				// checks) see Stalled only once observedGeneration is current,
				// and would otherwise wait on a bad spec forever.
				obj.Status.ObservedGeneration = obj.Generation
				// A bad spec does not heal by retrying: wait for the next edit.
				return ctrl.Result{}, nil
			}
			return ctrl.Result{}, err
		}
		result = lowestRequeue(result, res)
	}
	obj.Status.ObservedGeneration = obj.Generation
	return result, nil
}

// patchStatus writes the status. The first write is a full update: a merge
// patch leaves out zero values equal to the (absent) old ones, and the printer
// columns should show "0", not "<none>", from the start.
//
// The patch carries base's resourceVersion, so the server refuses it (conflict,
// and the reconcile runs again) when base is not the latest object. Without
// that, a patch computed from a stale cached base leaves out every field the
// base already shows, whatever the server holds: a phase written by the
// previous pass after the cache was read stayed next to this pass's conditions.
// The planner's decision, written the same way, is thus always made from the
// status it read.
func (r *RAGServiceReconciler) patchStatus(ctx context.Context, obj, base *ragv1.RAGService) error {
	if apiequality.Semantic.DeepEqual(obj.Status, base.Status) {
		return nil // an empty patch is still a request
	}
	if base.Status.ObservedGeneration == 0 && len(base.Status.Conditions) == 0 && base.Status.StableRevision == "" {
		return r.Status().Update(ctx, obj)
	}
	return r.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// stalledError is a spec the operator cannot act on until someone edits it.
type stalledError struct{ reason, message string }

func (e *stalledError) Error() string { return e.reason + ": " + e.message }

// reconcileTemplate builds the desired pod template and records its revision.
func (r *RAGServiceReconciler) reconcileTemplate(ctx context.Context, s *scope) (ctrl.Result, error) {
	tpl, err := podtemplate.Build(s.obj, r.EmbedServerImage)
	if err != nil {
		s.obj.Status.Conditions = setStalled(s.obj.Status.Conditions, s.obj.Generation, "InvalidSpec", err.Error())
		return ctrl.Result{}, &stalledError{reason: "InvalidSpec", message: err.Error()}
	}
	rev, err := podtemplate.Revision(tpl)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.desired, s.desiredRevision = tpl, rev
	if err := r.ensureRevision(ctx, s.obj, rev, tpl); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// observe reads the owned Deployments, any HPA on the stable Deployment and the
// API key Secret.
func (r *RAGServiceReconciler) observe(ctx context.Context, s *scope) (ctrl.Result, error) {
	var err error
	if s.stable, err = r.getDeployment(ctx, s.obj, ragv1.TrackStable); err != nil {
		return ctrl.Result{}, err
	}
	if s.canary, err = r.getDeployment(ctx, s.obj, ragv1.TrackCanary); err != nil {
		return ctrl.Result{}, err
	}

	hpas := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.List(ctx, hpas, client.InNamespace(s.obj.Namespace)); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing HorizontalPodAutoscalers: %w", err)
	}
	for _, h := range hpas.Items {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == deploymentName(s.obj, ragv1.TrackStable) {
			s.hpaOnStable = true
		}
	}

	s.secretProblem = ""
	if ref := s.obj.Spec.Embedding.APIKeySecretRef; ref != nil {
		secret := &corev1.Secret{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.obj.Namespace, Name: ref.Name}, secret)
		switch {
		case apierrors.IsNotFound(err):
			s.secretProblem = fmt.Sprintf("Secret %q named by spec.embedding.apiKeySecretRef does not exist", ref.Name)
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("reading Secret %q: %w", ref.Name, err)
		case len(secret.Data[ref.Key]) == 0:
			s.secretProblem = fmt.Sprintf("Secret %q has no key %q named by spec.embedding.apiKeySecretRef", ref.Name, ref.Key)
		}
	}
	return ctrl.Result{}, nil
}

func (r *RAGServiceReconciler) getDeployment(ctx context.Context, svc *ragv1.RAGService, track string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	err := r.Get(ctx, types.NamespacedName{Namespace: svc.Namespace, Name: deploymentName(svc, track)}, d)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s Deployment: %w", track, err)
	}
	return d, nil
}

// reconcileServices applies the Services and the PodDisruptionBudget.
func (r *RAGServiceReconciler) reconcileServices(ctx context.Context, s *scope) (ctrl.Result, error) {
	for _, svc := range servicesFor(s.obj) {
		if _, err := applyOwned[corev1.Service](ctx, r, s.obj, svc); err != nil {
			return ctrl.Result{}, fmt.Errorf("applying Service %s: %w", *svc.Name, err)
		}
	}
	if _, err := applyOwned[policyv1.PodDisruptionBudget](ctx, r, s.obj, pdbFor(s.obj)); err != nil {
		return ctrl.Result{}, fmt.Errorf("applying PodDisruptionBudget: %w", err)
	}
	return ctrl.Result{}, nil
}

// ensureRevision stores a template as a ControllerRevision once; its number
// orders the history.
func (r *RAGServiceReconciler) ensureRevision(ctx context.Context, svc *ragv1.RAGService, revision string, tpl *corev1ac.PodTemplateSpecApplyConfiguration) error {
	existing := &appsv1.ControllerRevision{}
	err := r.Get(ctx, types.NamespacedName{Namespace: svc.Namespace, Name: revisionName(svc, revision)}, existing)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading ControllerRevision: %w", err)
	}
	revs, err := r.listRevisions(ctx, svc)
	if err != nil {
		return err
	}
	next := int64(1)
	if len(revs) > 0 {
		next = revs[len(revs)-1].Revision + 1
	}
	cr, err := controllerRevisionFor(svc, revision, next, tpl)
	if err != nil {
		return err
	}
	// Created once and never changed (its data is immutable): a revision the
	// cache has not seen yet must not be re-applied with another number.
	obj, err := fromApplyResult[appsv1.ControllerRevision](cr)
	if err != nil {
		return err
	}
	if err := r.Create(ctx, obj, client.FieldOwner(FieldOwner)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating ControllerRevision: %w", err)
	}
	return nil
}

// listRevisions returns the service's ControllerRevisions, oldest first.
func (r *RAGServiceReconciler) listRevisions(ctx context.Context, svc *ragv1.RAGService) ([]appsv1.ControllerRevision, error) {
	list := &appsv1.ControllerRevisionList{}
	if err := r.List(ctx, list, client.InNamespace(svc.Namespace),
		client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(podtemplate.SelectorLabels(svc.Name))}); err != nil {
		return nil, fmt.Errorf("listing ControllerRevisions: %w", err)
	}
	var owned []appsv1.ControllerRevision
	for _, cr := range list.Items {
		if metav1.IsControlledBy(&cr, svc) {
			owned = append(owned, cr)
		}
	}
	sort.Slice(owned, func(i, j int) bool { return owned[i].Revision < owned[j].Revision })
	return owned, nil
}

// reconcileRevisionHistory prunes old ControllerRevisions, never one a track runs.
func (r *RAGServiceReconciler) reconcileRevisionHistory(ctx context.Context, s *scope) (ctrl.Result, error) {
	revs, err := r.listRevisions(ctx, s.obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	inUse := map[string]bool{s.obj.Status.StableRevision: true, s.obj.Status.CanaryRevision: true, s.desiredRevision: true}
	excess := len(revs) - revisionHistoryLimit
	for i := 0; i < len(revs) && excess > 0; i++ {
		if inUse[revs[i].Labels[ragv1.LabelRevision]] {
			continue
		}
		if err := r.Delete(ctx, &revs[i]); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("pruning ControllerRevision %s: %w", revs[i].Name, err)
		}
		excess--
	}
	return ctrl.Result{}, nil
}

func (r *RAGServiceReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func replicasOf(svc *ragv1.RAGService) int32 {
	if svc.Spec.Replicas == nil {
		return 1
	}
	return *svc.Spec.Replicas
}

// lowestRequeue keeps the soonest requeue of two results.
func lowestRequeue(a, b ctrl.Result) ctrl.Result {
	if b.RequeueAfter > 0 && (a.RequeueAfter == 0 || b.RequeueAfter < a.RequeueAfter) {
		a.RequeueAfter = b.RequeueAfter
	}
	return a
}

// SetupWithManager registers the controller and its watches.
func (r *RAGServiceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &ragv1.RAGService{}, secretRefIndex,
		func(o client.Object) []string {
			if ref := o.(*ragv1.RAGService).Spec.Embedding.APIKeySecretRef; ref != nil {
				return []string{ref.Name}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("indexing %s: %w", secretRefIndex, err)
	}

	return ctrl.NewControllerManagedBy(mgr).
		Named("ragservice").
		For(&ragv1.RAGService{}, builder.WithPredicates(ragServiceChanged)).
		// Owned objects without a generation filter: a hand edit, a deletion or a
		// status change of a Deployment must all reach the reconciler.
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		// Only Secret metadata is cached: the operator never keeps keys in memory.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.servicesForSecret), builder.OnlyMetadata).
		Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(servicesForHPA)).
		Complete(r)
}

func (r *RAGServiceReconciler) servicesForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	list := &ragv1.RAGServiceList{}
	if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{secretRefIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Listing RAGServices for Secret", "secret", o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, s := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
	}
	return reqs
}

// servicesForHPA maps an HPA on a stable Deployment to its RAGService, whose
// apply must then leave replicas alone.
func servicesForHPA(_ context.Context, o client.Object) []reconcile.Request {
	ref := o.(*autoscalingv2.HorizontalPodAutoscaler).Spec.ScaleTargetRef
	name := ""
	switch ref.Kind {
	case "Deployment":
		suffix := "-" + ragv1.TrackStable
		if len(ref.Name) > len(suffix) && ref.Name[len(ref.Name)-len(suffix):] == suffix {
			name = ref.Name[:len(ref.Name)-len(suffix)]
		}
	case "RAGService":
		name = ref.Name
	}
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}
