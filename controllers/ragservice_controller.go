// Package controllers holds the RAGService reconciler: it observes the owned
// objects, asks pure code what they should be, applies that with server-side
// apply under one field owner, and reports the truth in status.
package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// ProgressWindow is how long the status may hold back counts and
	// messages while the service is Reconciling (mayHoldBack); 0
	// means DefaultProgressWindow, a negative value holds nothing back.
	ProgressWindow time.Duration

	builtinOnce, probeOnce, trafficOnce sync.Once
	applied                             skipapply.Memory // the last apply of each owned object
	own                                 ownWrites        // the last write of each RAGService, until the cache has it
	held                                heldBack         // services whose status holds back progress details
	watches                             watchSchedule    // when each service's space watch is due (spacewatch.go)
}

// +kubebuilder:rbac:groups=rag.ragops.io,resources=ragservices,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=rag.ragops.io,resources=ragservices/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=controllerrevisions,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch
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

	probes []string // the embedding-space probe texts, when the check is on

	stable, canary         *appsv1.Deployment // observed; nil when absent
	stablePods, canaryPods []corev1.Pod       // the pods of each track, any revision
	hpaOnStable            bool               // an HPA scales the stable Deployment itself
	hpaUnknown             bool               // the HPA list failed: leave stable's size alone
	secretProblem          string             // why the API key Secret is unusable; "" when fine

	command   rollout.Command   // the one-shot command of this pass
	outranked []rollout.Command // commands present with it but of lower priority
	plan      *rollout.Plan     // the planner's decision; nil until reconcileTracks ran
	decided   bool              // the decision is recorded in status

	// errs are failures that do not stop the pass: the planner still decides
	// (deadlines and rollbacks fire) and the pass reports them at its end.
	errs []error
}

// settling says whether either track's Deployment status has yet to catch up
// with its pods (observe.Settling).
func (s *scope) settling() bool {
	return observe.Settling(s.stable, s.stablePods) || observe.Settling(s.canary, s.canaryPods)
}

// fail records an error that does not stop the pass.
func (s *scope) fail(err error) { s.errs = append(s.errs, err) }

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
			r.own.forget(req.NamespacedName)
			r.held.done(req.NamespacedName)
			r.traffic().Stop(req.String())
			r.builtin().Forget(req.Namespace, req.Name)
			r.forgetSpaceWatch(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// A read from before this manager's own last write is stale for
	// certain: the pass works from what that write returned (ownWrites).
	obj = r.own.fresher(obj)
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	s := &scope{obj: obj, base: obj.DeepCopy(), now: r.now()}
	s.conditions = s.base.Status.Conditions
	s.command, s.outranked = rollout.ResolveCommand(obj.Annotations)

	// The summary (conditions, phase, events) is written at the end of every
	// pass that got this far, whatever happened: the conditions must tell the
	// truth even when a step failed. A decision that changed the rollout
	// memory was written before anything acted on it (reconcileTracks).
	defer func() {
		if errors.Is(retErr, errStaleRead) {
			// The rollout decision was made from a stale read and refused:
			// nothing of this pass stands, so read again soon, without an error.
			log.V(1).Info("RAGService changed since it was read; reconciling again")
			result, retErr = ctrl.Result{RequeueAfter: conflictRequeue}, nil
			return
		}
		sum := r.summarize(s, retErr)
		// Counts and messages that moved on the way, and whatever a pass saw
		// while a Deployment's status lagged its pods, wait for the next
		// write that matters, within the progress window (the count of pods
		// not ready yet, past it too: outlastsWindow); events need the
		// status they tell of written, unless the decision write has it.
		settling := s.settling()
		if retErr == nil && (s.decided || len(sum.Events) == 0) && mayHoldBack(s.base.Status, obj.Status, settling) {
			if r.progressWindow() > 0 && outlastsWindow(s.base.Status, obj.Status) {
				// The next write that matters brings the count; the window's
				// clock starts when something else moves.
				r.record(obj, sum.Events)
				return
			}
			if wait := r.held.hold(req.NamespacedName, s.now, holdWindow(r.progressWindow(), settling && podsMovedOnly(s.base.Status, obj.Status))); wait > 0 {
				log.V(1).Info("status held back", "settling", settling, "for", wait.Round(time.Millisecond).String())
				r.record(obj, sum.Events)
				result = lowestRequeue(result, ctrl.Result{RequeueAfter: wait})
				return
			}
		}
		switch err := r.writeStatus(ctx, obj, s.base); {
		case err == nil:
			r.record(obj, sum.Events)
		case s.decided:
			// The decision stands: its own events are news, whatever the
			// summary's fate.
			r.record(obj, s.plan.Events)
			fallthrough
		default:
			switch {
			case apierrors.IsNotFound(err):
			case apierrors.IsConflict(err) && retErr == nil:
				log.V(1).Info("RAGService changed since it was read; reconciling again")
				result = ctrl.Result{RequeueAfter: conflictRequeue}
			default:
				retErr = kerrors.NewAggregate([]error{retErr, fmt.Errorf("patching status: %w", err)})
			}
		}
	}()

	steps := []func(context.Context, *scope) (ctrl.Result, error){
		r.reconcileTemplate,
		r.observe,
		r.watchSpace,
		r.reconcileTracks,
		r.reconcileServices,
		r.reconcileRevisionHistory,
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
	sum := rollout.Summarize(rollout.Observation{
		Now:           s.now,
		Generation:    s.obj.Generation,
		Replicas:      replicasOf(s.obj),
		Stable:        observe.Track(s.stable, s.stablePods),
		Canary:        observe.Track(s.canary, s.canaryPods),
		Plan:          s.plan,
		Memory:        st.RolloutStatus,
		SpecProblem:   s.specProblem,
		SecretProblem: s.secretProblem,
		Err:           reconcileErr,
		Outranked:     s.outranked,
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
	if base.Status.ObservedGeneration == 0 && len(base.Status.Conditions) == 0 && base.Status.StableRevision == "" {
		return r.Status().Update(ctx, obj)
	}
	return r.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
}

// sameStatus says whether two statuses are stored alike. It compares what the
// API server stores (JSON), not the Go values: a condition's transition time
// is kept to the second, so a summary stamped with this pass's clock differs
// from the same summary read back from the server only in nanoseconds, and a
// write of it would be a patch of nothing but the resourceVersion.
func sameStatus(a, b ragv1.RAGServiceStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b) || sameJSON(a, b)
}

// sameJSON says whether a and b encode to the same JSON (and both encode).
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// writeStatus is patchStatus when the status changed, remembering what the
// write returned (ownWrites).
func (r *RAGServiceReconciler) writeStatus(ctx context.Context, obj, base *ragv1.RAGService) error {
	if sameStatus(obj.Status, base.Status) {
		// An empty patch is still a request; nothing is held back.
		r.held.done(client.ObjectKeyFromObject(obj))
		return nil
	}
	before := base.ResourceVersion
	if err := r.patchStatus(ctx, obj, base); err != nil {
		return err
	}
	r.own.wrote(before, obj)
	r.held.done(client.ObjectKeyFromObject(obj)) // whatever was held back is written
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
// be decided), any HPA on the stable Deployment and the API key Secret (their
// failures are recorded and the pass goes on).
func (r *RAGServiceReconciler) observe(ctx context.Context, s *scope) (ctrl.Result, error) {
	var err error
	if s.stable, err = r.getDeployment(ctx, s.obj, ragv1.TrackStable); err != nil {
		return ctrl.Result{}, err
	}
	if s.canary, err = r.getDeployment(ctx, s.obj, ragv1.TrackCanary); err != nil {
		return ctrl.Result{}, err
	}
	if s.stablePods, err = r.trackPods(ctx, s.obj, ragv1.TrackStable); err != nil {
		return ctrl.Result{}, err
	}
	if s.canaryPods, err = r.trackPods(ctx, s.obj, ragv1.TrackCanary); err != nil {
		return ctrl.Result{}, err
	}

	hpas := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.List(ctx, hpas, client.InNamespace(s.obj.Namespace)); err != nil {
		s.hpaUnknown = true
		s.fail(fmt.Errorf("listing HorizontalPodAutoscalers: %w", err))
	} else {
		s.hpaOnStable = observe.HPAOnDeployment(hpas.Items, deploymentName(s.obj, ragv1.TrackStable))
	}

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

// trackPods lists the pods of one track, of any revision.
func (r *RAGServiceReconciler) trackPods(ctx context.Context, svc *ragv1.RAGService, track string) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(svc.Namespace), ofInstance(svc), client.MatchingLabels(podtemplate.TrackSelectorLabels(svc.Name, track))); err != nil {
		return nil, fmt.Errorf("listing %s pods: %w", track, err)
	}
	return pods.Items, nil
}

// applyServices applies the Services: the shared one selecting what the plan
// says, and one per track. It fails when the shared one could not be applied.
func (r *RAGServiceReconciler) applyServices(ctx context.Context, s *scope, sel rollout.Selection) error {
	var sharedErr error
	for i, svc := range servicesFor(s.obj, sel) {
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

// reconcileServices applies the PodDisruptionBudget (the Services go with the
// tracks, see reconcileTracks).
func (r *RAGServiceReconciler) reconcileServices(ctx context.Context, s *scope) (ctrl.Result, error) {
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

// reconcileRevisionHistory prunes old ControllerRevisions, never one a track runs.
func (r *RAGServiceReconciler) reconcileRevisionHistory(ctx context.Context, s *scope) (ctrl.Result, error) {
	revs, err := r.listRevisions(ctx, s.obj)
	if err != nil {
		s.fail(err)
		return ctrl.Result{}, nil
	}
	inUse := map[string]bool{s.obj.Status.StableRevision: true, s.obj.Status.CanaryRevision: true, s.desiredRevision: true}
	for _, cr := range observe.Prune(revs, inUse, revisionHistoryLimit) {
		if err := r.Delete(ctx, &cr); client.IgnoreNotFound(err) != nil {
			s.fail(fmt.Errorf("pruning ControllerRevision %s: %w", cr.Name, err))
		}
	}
	return ctrl.Result{}, nil
}

func (r *RAGServiceReconciler) progressWindow() time.Duration {
	if r.ProgressWindow == 0 {
		return DefaultProgressWindow
	}
	return r.ProgressWindow
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
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.servicesFor(secretRefIndex)), builder.OnlyMetadata).
		// Probe ConfigMaps likewise: their appearance heals a Stalled service.
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.servicesFor(probesRefIndex)), builder.OnlyMetadata).
		Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(servicesForHPA)).
		Complete(r)
}

// servicesFor maps an object to the RAGServices of its namespace that name it
// in the indexed field.
func (r *RAGServiceReconciler) servicesFor(index string) handler.MapFunc {
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

// servicesForHPA maps an HPA on a stable Deployment to its RAGService, whose
// apply must then leave replicas alone.
func servicesForHPA(_ context.Context, o client.Object) []reconcile.Request {
	name := observe.ServiceOfHPA(o.(*autoscalingv2.HorizontalPodAutoscaler))
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}
