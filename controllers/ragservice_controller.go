// Package controllers holds the RAGService reconciler: it observes the owned
// objects, asks pure code what they should be, applies that with server-side
// apply under one field owner, and reports the truth in status.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
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
	"github.com/ragops/rag-operator/internal/observe"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/probeclient"
	"github.com/ragops/rag-operator/internal/probetraffic"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/skipapply"
)

// FieldOwner is the one server-side apply field manager of everything the
// operator writes.
const FieldOwner = "rag-operator"

// DefaultMaxConcurrentReconciles is how many RAGServices the manager
// reconciles at once unless told otherwise (--max-concurrent-reconciles);
// the envtest managers run with it too, so they queue as production does.
const DefaultMaxConcurrentReconciles = 4

// secretRefIndex indexes RAGServices by the name of the API key Secret they use.
const secretRefIndex = "spec.embedding.apiKeySecretRef.name"

// probesRefIndex indexes RAGServices by the name of the probe ConfigMap they use.
const probesRefIndex = "spec.rollout.spaceCheck.probes.configMapRef.name"

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
	// APIPort is the pods' API port that the embedding-space probes use; 0
	// means 8080.
	APIPort int
	// Probe sends the embedding-space probes; nil means a default one.
	Probe *probeclient.Client
	// Traffic sends probe requests to both tracks while a canary is
	// analysed; nil means a default one. SetupWithManager runs it.
	Traffic *probetraffic.Runner
	// MaxFleetCanaries and FleetFailureLimit bound the fleet-wide rollout of
	// a new EmbedServerImage (fleet.go); 0 means the defaults, 5 and 2.
	MaxFleetCanaries, FleetFailureLimit int

	builtinOnce, probeOnce, trafficOnce sync.Once
	applied                             skipapply.Memory // the last apply of each owned object
	watches                             watchSchedule    // when each service's space watch is due (spacewatch.go)
	fleet                               fleetGate        // the fleet rollout's reservations and wake-ups (fleet.go)
}

// +kubebuilder:rbac:groups=rag.ragops.io,resources=ragservices,verbs=get;list;watch
// +kubebuilder:rbac:groups=rag.ragops.io,resources=ragservices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// scope is what one reconcile observed and decided about one RAGService.
type scope struct {
	obj  *ragv1.RAGService
	base *ragv1.RAGService // last status written, for merge patches
	now  time.Time
	// conditions are the conditions as the pass found them: every summary of
	// the pass is computed from them, so its events are told once.
	conditions []metav1.Condition

	// desired is the pod template built from the current spec, desiredRevision
	// its hash; nil and "" when the spec cannot be built (specProblem says why).
	desired         *corev1ac.PodTemplateSpecApplyConfiguration
	desiredRevision string
	specProblem     *rollout.Problem

	// observation is what the pass read of the cluster, gathered once by
	// observe before anything is decided; applyPlan updates the Deployments
	// it applied or deleted, so the summary counts what the pass leaves.
	observation

	plan    *rollout.Plan // the planner's decision; nil until decide ran
	decided bool          // the decision is recorded in status

	// errs are failures that do not stop the pass: the planner still decides
	// (deadlines and rollbacks fire) and the pass reports them at its end.
	errs []error
}

// observation is what one pass read of the cluster. Everything the planner,
// the summary and the applies need of it is derived here, from these fields.
type observation struct {
	deployments []*appsv1.Deployment // the service's own, one per revision (and any of the previous layout)
	pods        []corev1.Pod         // the service's pods, of every revision

	// The Deployments (nil when absent) and pods of the stable, canary and
	// retiring revisions (assign); rolling: the retiring one shrinks as
	// stable grows (strategy RollingUpdate).
	stable, canary, retiring             *appsv1.Deployment
	stablePods, canaryPods, retiringPods []corev1.Pod
	rolling                              bool

	secretProblem string   // why the API key Secret is unusable; "" when fine
	probes        []string // the embedding-space probe texts, when the check is on
}

// tracks are the tracks as the planner and the summary see them. During a
// rolling update the old revision's ready pods serve beside stable's.
func (o *observation) tracks() (stable, canary, retiring rollout.Track) {
	stable = observe.Track(o.stable, o.stablePods)
	retiring = observe.Track(o.retiring, o.retiringPods)
	if o.rolling && stable.Exists {
		stable.ServingReplicas = stable.ReadyReplicas + retiring.ReadyReplicas
	}
	return stable, observe.Track(o.canary, o.canaryPods), retiring
}

// readyPods are each track's ready pods of its Deployment's revision: what
// the space check and analysis compare.
func (o *observation) readyPods() (stable, canary []corev1.Pod) {
	return observe.ReadyPods(o.stablePods, observe.Revision(o.stable)), observe.ReadyPods(o.canaryPods, observe.Revision(o.canary))
}

// fail records an error that does not stop the pass.
func (s *scope) fail(err error) { s.errs = append(s.errs, err) }

// conflictRequeue is how soon a pass that read a stale object runs again; the
// cache is usually a few milliseconds behind.
const conflictRequeue = 100 * time.Millisecond

// errStaleRead marks a status write the server refused because the object
// changed since this pass read it (see writeStatus).
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
			r.traffic().Stop(req.String())
			r.builtin().Forget(req.Namespace, req.Name)
			r.forgetSpaceWatch(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	s := &scope{obj: obj, base: obj.DeepCopy(), now: r.now()}
	s.conditions = s.base.Status.Conditions

	// The summary (conditions, phase, events) is written at the end of every
	// pass that got this far, whatever happened: the conditions must tell the
	// truth even when a step failed.
	defer func() { result, retErr = r.finishPass(ctx, s, result, retErr) }()

	// Observe once, decide once, apply once.
	steps := []func(context.Context, *scope) (ctrl.Result, error){
		r.reconcileTemplate,
		r.observe,
		r.watchSpace,
		r.decide,
		r.applyPlan,
		r.applyPodDisruptionBudget,
		r.pruneRevisionHistory,
	}
	for _, step := range steps {
		res, err := step(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		result = lowestRequeue(result, res)
	}
	if err := errors.Join(s.errs...); err != nil {
		return result, err
	}
	// A clean pass, or a spec found Stalled: kstatus readers (Flux health
	// checks) see Stalled only once observedGeneration is current, and would
	// otherwise wait on a bad spec forever.
	obj.Status.ObservedGeneration = obj.Generation
	if s.specProblem != nil {
		log.Info("Spec cannot be reconciled", "reason", s.specProblem.Reason, "message", s.specProblem.Message)
	}
	return result, nil
}

// summarize writes the pass's conditions, phase and counts into the status
// and returns the events to record.
func (r *RAGServiceReconciler) summarize(s *scope, reconcileErr error) rollout.Summary {
	st := &s.obj.Status
	stable, canary, _ := s.tracks()
	sum := rollout.Summarize(rollout.Observation{
		Now:           s.now,
		Generation:    s.obj.Generation,
		Replicas:      replicasOf(s.obj),
		Stable:        stable,
		Canary:        canary,
		Plan:          s.plan,
		Memory:        st.RolloutStatus,
		SpecProblem:   s.specProblem,
		SecretProblem: s.secretProblem,
		Err:           reconcileErr,
		Conditions:    s.conditions,
		SpaceDrift:    spaceDrift(s.obj),
	})
	st.Selector = labels.SelectorFromSet(podtemplate.SelectorLabels(s.obj.Name)).String()
	st.Conditions, st.Phase = sum.Conditions, sum.Phase
	st.Replicas, st.ReadyReplicas = sum.Replicas, sum.ReadyReplicas
	return sum
}

// record emits events on the RAGService.
func (r *RAGServiceReconciler) record(obj *ragv1.RAGService, events []rollout.Event) {
	if r.Recorder == nil {
		return
	}
	for _, e := range events {
		r.Recorder.Eventf(obj, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
	}
}

// finishPass writes the pass's summary (statusWrite's rule) and records its
// events once the status they tell of is stored, the way Argo Rollouts'
// persistRolloutStatus does: compute the whole status, diff it, write, then
// tell.
func (r *RAGServiceReconciler) finishPass(ctx context.Context, s *scope, result ctrl.Result, passErr error) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	if errors.Is(passErr, errStaleRead) {
		// The rollout decision was made from a stale read and refused:
		// nothing of this pass stands, so read again soon, without an error.
		log.V(1).Info("RAGService changed since it was read; reconciling again")
		return ctrl.Result{RequeueAfter: conflictRequeue}, nil
	}
	sum := r.summarize(s, passErr)
	err := r.writeStatus(ctx, s, atEnd)
	switch {
	case err == nil:
		r.record(s.obj, sum.Events)
		return result, passErr
	case s.decided:
		// The decision stands: its own events are news, whatever the
		// summary's fate.
		r.record(s.obj, s.plan.Events)
	}
	switch {
	case apierrors.IsNotFound(err):
		return result, passErr
	case apierrors.IsConflict(err) && passErr == nil:
		log.V(1).Info("RAGService changed since it was read; reconciling again")
		return ctrl.Result{RequeueAfter: conflictRequeue}, nil
	default:
		return result, kerrors.NewAggregate([]error{passErr, fmt.Errorf("patching status: %w", err)})
	}
}

// writeStatus writes s.obj's status over s.base's when the rule says so
// (decideStatusWrite), and makes the written object the pass's new base.
// The client reads its own writes (ConfigureCache), so the next pass never
// works from a status older than this write.
//
// A patch carries base's resourceVersion, so the server refuses it (conflict,
// and the reconcile runs again) when base is not the latest object. Without
// that, a patch computed from a stale cached base leaves out every field the
// base already shows, whatever the server holds: a phase written by the
// previous pass after the cache was read stayed next to this pass's conditions.
// The planner's decision, written the same way, is thus always made from the
// status it read.
func (r *RAGServiceReconciler) writeStatus(ctx context.Context, s *scope, at writePoint) error {
	initialize := s.plan != nil && s.plan.Transition == rollout.TransitionInitialize
	w, why := decideStatusWrite(writeInput{at: at, stored: s.base.Status, next: s.obj.Status, initialize: initialize})
	ctrl.LoggerFrom(ctx).V(2).Info("Status write", "at", at, "write", w, "why", why)
	var err error
	switch w {
	case writeNone:
		return nil
	case writeUpdate:
		err = r.Status().Update(ctx, s.obj)
	case writePatch:
		err = r.Status().Patch(ctx, s.obj, client.MergeFromWithOptions(s.base, client.MergeFromWithOptimisticLock{}))
	}
	if err != nil {
		return err
	}
	s.base = s.obj.DeepCopy()
	return nil
}

// reconcileTemplate builds the desired pod template and records its revision.
// A spec that cannot be built is a problem for a person (specProblem), not an
// error: the rollout of what already runs goes on.
func (r *RAGServiceReconciler) reconcileTemplate(ctx context.Context, s *scope) (ctrl.Result, error) {
	tpl, err := podtemplate.Build(s.obj, r.EmbedServerImage)
	if err != nil {
		s.specProblem = &rollout.Problem{Reason: rollout.ReasonInvalidSpec, Message: err.Error()}
		return ctrl.Result{}, nil
	}
	rev, err := podtemplate.Revision(tpl)
	if err != nil {
		s.specProblem = &rollout.Problem{Reason: rollout.ReasonInvalidSpec, Message: err.Error()}
		return ctrl.Result{}, nil
	}
	s.desired, s.desiredRevision = tpl, rev
	if err := r.ensureRevision(ctx, s.obj, rev, tpl); err != nil {
		s.fail(err)
	}
	// A change of space this strategy cannot ship without serving both
	// spaces: what runs stays, until the spec is fixed.
	if p := rollout.SpaceChangeProblem(s.obj.Spec.Rollout.Strategy, s.obj.Spec.Embedding.Space, s.obj.Status.RolloutStatus); p != nil {
		s.specProblem, s.desiredRevision = p, ""
	}
	return ctrl.Result{}, nil
}

// observe reads the owned Deployments and their pods (without them nothing can
// be decided), the probe texts and the API key Secret (their failures are
// recorded and the pass goes on), into s.observation. Nothing after it reads
// the cluster to decide.
func (r *RAGServiceReconciler) observe(ctx context.Context, s *scope) (ctrl.Result, error) {
	if err := r.listRevisionObjects(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	st := s.obj.Status.RolloutStatus
	retiring := ""
	if st.Retiring != nil {
		retiring = st.Retiring.Revision
	}
	s.assign(s.obj, st.StableRevision, st.CanaryRevision, retiring)

	if spaceInput(s.obj).Check && s.obj.Spec.Rollout.Strategy != ragv1.StrategyRollingUpdate {
		probes, problem, err := r.loadProbes(ctx, s.obj)
		switch {
		case err != nil:
			s.fail(err)
		case problem != nil && s.specProblem == nil:
			// Without probes no new canary can be checked: none starts.
			s.specProblem, s.desiredRevision = problem, ""
		default:
			s.probes = probes
		}
	}

	if ref := s.obj.Spec.Embedding.APIKeySecretRef; ref != nil {
		secret := &corev1.Secret{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: s.obj.Namespace, Name: ref.Name}, secret)
		switch {
		case apierrors.IsNotFound(err):
			s.secretProblem = observe.SecretProblem(ref, nil, false)
		case err != nil:
			s.fail(fmt.Errorf("reading Secret %q: %w", ref.Name, err))
		default:
			s.secretProblem = observe.SecretProblem(ref, secret, true)
		}
	}
	return ctrl.Result{}, nil
}

// applyServices applies the Services: the shared one selecting what the plan
// says, and one per track. It fails when the shared one could not be applied.
func (r *RAGServiceReconciler) applyServices(ctx context.Context, s *scope, sel rollout.Selection) error {
	var sharedErr error
	for i, svc := range serviceConfigs(s.obj, sel, s.plan.StableRevision, s.plan.CanaryRevision, s.plan.Memory.Retiring) {
		if _, err := applyOwned[corev1.Service](ctx, r, s.obj, svc); err != nil {
			err = fmt.Errorf("applying Service %s: %w", *svc.Name, err)
			if i == 0 {
				sharedErr = err
			} else {
				s.fail(err)
			}
		}
	}
	return sharedErr
}

// applyPodDisruptionBudget applies the PodDisruptionBudget (the Services go
// with the tracks, see applyPlan).
func (r *RAGServiceReconciler) applyPodDisruptionBudget(ctx context.Context, s *scope) (ctrl.Result, error) {
	if _, err := applyOwned[policyv1.PodDisruptionBudget](ctx, r, s.obj, pdbFor(s.obj)); err != nil {
		s.fail(fmt.Errorf("applying PodDisruptionBudget: %w", err))
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
	cr, err := controllerRevisionFor(svc, revision, observe.NextRevisionNumber(revs), tpl)
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
	if err := r.List(ctx, list, client.InNamespace(svc.Namespace), ofInstance(svc),
		client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(podtemplate.SelectorLabels(svc.Name))}); err != nil {
		return nil, fmt.Errorf("listing ControllerRevisions: %w", err)
	}
	var owned []appsv1.ControllerRevision
	for _, cr := range list.Items {
		if metav1.IsControlledBy(&cr, svc) {
			owned = append(owned, cr)
		}
	}
	return observe.Revisions(owned), nil
}

// pruneRevisionHistory prunes old ControllerRevisions, never one a track runs.
func (r *RAGServiceReconciler) pruneRevisionHistory(ctx context.Context, s *scope) (ctrl.Result, error) {
	revs, err := r.listRevisions(ctx, s.obj)
	if err != nil {
		s.fail(err)
		return ctrl.Result{}, nil
	}
	inUse := map[string]bool{s.obj.Status.StableRevision: true, s.obj.Status.CanaryRevision: true, s.desiredRevision: true}
	if r := s.obj.Status.Retiring; r != nil {
		inUse[r.Revision] = true
	}
	for _, cr := range observe.Prune(revs, inUse, revisionHistoryLimit) {
		if err := r.Delete(ctx, &cr); client.IgnoreNotFound(err) != nil {
			s.fail(fmt.Errorf("pruning ControllerRevision %s: %w", cr.Name, err))
		}
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

	if err := indexByInstance(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &ragv1.RAGService{}, probesRefIndex,
		func(o client.Object) []string {
			if p := o.(*ragv1.RAGService).Spec.Rollout.SpaceCheck.Probes; p != nil && p.ConfigMapRef != nil {
				return []string{p.ConfigMapRef.Name}
			}
			return nil
		}); err != nil {
		return fmt.Errorf("indexing %s: %w", probesRefIndex, err)
	}

	if err := mgr.Add(r.traffic()); err != nil {
		return fmt.Errorf("adding the probe traffic runner: %w", err)
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
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.ragServicesNaming(secretRefIndex)), builder.OnlyMetadata).
		// Probe ConfigMaps likewise: their appearance heals a Stalled service.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.ragServicesNaming(probesRefIndex)), builder.OnlyMetadata).
		// The tracks' pods (cached already, see ConfigureCache): a pod that
		// turns ready is news the planner and the status count, and its
		// Deployment's status may have told of it before the pod watch did,
		// in a pass that could not count it yet.
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(ragServiceOfPod), builder.WithPredicates(podMoved)).
		// Services the fleet rollout has room for again, and (at low
		// priority) those to tell of its queue or its stop (fleet.go).
		WatchesRawSource(r.fleetSource(false)).
		WatchesRawSource(r.fleetSource(true)).
		Complete(r)
}

// ragServicesNaming maps an object to the RAGServices of its namespace that
// name it in the indexed field.
func (r *RAGServiceReconciler) ragServicesNaming(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		list := &ragv1.RAGServiceList{}
		if err := r.List(ctx, list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing RAGServices", "index", index, "name", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, s := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
		}
		return reqs
	}
}

// ragServiceOfPod maps a track's pod to its RAGService.
func ragServiceOfPod(_ context.Context, o client.Object) []reconcile.Request {
	name := o.GetLabels()[ragv1.LabelInstance]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}
