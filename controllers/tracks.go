package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/analysis"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/rollout"
)

// reconcileTracks asks the pure planner what both tracks should run, records
// the decision in status before acting on it (so a manager killed mid-way
// finds it), then applies both Deployments and removes the consumed one-shot
// annotations.
func (r *RAGServiceReconciler) reconcileTracks(ctx context.Context, s *scope) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	svc := s.obj

	stablePods, err := r.readyPods(ctx, svc, ragv1.TrackStable, revisionOf(s.stable))
	if err != nil {
		return ctrl.Result{}, err
	}
	canaryPods, err := r.readyPods(ctx, svc, ragv1.TrackCanary, revisionOf(s.canary))
	if err != nil {
		return ctrl.Result{}, err
	}
	in := rollout.Input{
		Now:             s.now,
		Replicas:        replicasOf(svc),
		Rollout:         svc.Spec.Rollout,
		DesiredRevision: s.desiredRevision,
		Status:          svc.Status,
		Stable:          trackOf(s.stable, int32(len(stablePods))),
		Canary:          trackOf(s.canary, int32(len(canaryPods))),
		Promote:         hasAnnotation(svc, ragv1.AnnotationPromote),
		Abort:           hasAnnotation(svc, ragv1.AnnotationAbort),
		Retry:           hasAnnotation(svc, ragv1.AnnotationRetry),
	}
	if rollout.AnalysisDue(in) {
		// A failed scrape or query is no verdict, never a failure: the planner
		// and the progress deadline go on without it.
		res, err := r.analyze(ctx, s, in, stablePods, canaryPods)
		switch {
		case err != nil:
			log.Info("Analysis gave no verdict", "revision", in.Status.CanaryRevision, "error", err.Error())
		case res != nil:
			in.Verdict = &res.Status
		}
	}

	plan := rollout.Decide(in)
	s.plan = &plan
	setRolloutStatus(&svc.Status, plan.Status)
	if err := r.patchStatus(ctx, svc, s.base); err != nil {
		if apierrors.IsConflict(err) {
			err = fmt.Errorf("%w: %w", errStaleRead, err)
		}
		return ctrl.Result{}, fmt.Errorf("recording the rollout decision: %w", err)
	}
	s.base = svc.DeepCopy()
	// Counted once the decision is recorded: a pass whose write conflicts is
	// decided again from the newer status, and must not count twice.
	recordMetrics(svc, &plan, in.Verdict)

	if err := r.applyTrack(ctx, s, ragv1.TrackStable, plan.StableRevision, plan.StableReplicas); err != nil {
		return ctrl.Result{}, err
	}
	if plan.CanaryRevision != "" {
		if err := r.applyTrack(ctx, s, ragv1.TrackCanary, plan.CanaryRevision, plan.CanaryReplicas); err != nil {
			return ctrl.Result{}, err
		}
	} else if s.canary != nil {
		// No canary: its pods go at once (rollback, promotion finished).
		if err := r.Delete(ctx, s.canary, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, fmt.Errorf("deleting canary Deployment: %w", err)
		}
		s.canary = nil
	}

	for _, e := range plan.Events {
		if r.Recorder != nil {
			r.Recorder.Eventf(svc, nil, e.Type, e.Reason, "Rollout", "%s", e.Message)
		}
	}
	if len(plan.Consumed) > 0 {
		if err := r.removeAnnotations(ctx, s, plan.Consumed); err != nil {
			return ctrl.Result{}, err
		}
	}
	if plan.Transition != rollout.TransitionNone {
		log.Info("Rollout", "transition", plan.Transition, "reason", plan.Reason, "message", plan.Message)
	}
	return ctrl.Result{RequeueAfter: plan.RequeueAfter}, nil
}

// setRolloutStatus copies the planner's rollout fields; counts, conditions and
// the phase are the controller's (summarize).
func setRolloutStatus(dst *ragv1.RAGServiceStatus, src ragv1.RAGServiceStatus) {
	dst.StableRevision = src.StableRevision
	dst.CanaryRevision = src.CanaryRevision
	dst.CurrentStep = src.CurrentStep
	dst.CanaryWeight = src.CanaryWeight
	dst.EffectiveWeight = src.EffectiveWeight
	dst.StepStartTime = src.StepStartTime
	dst.Analysis = src.Analysis
	dst.Rollback = src.Rollback
	// Not the phase: it changes with the conditions, at the end of the pass.
}

// applyTrack applies one track's Deployment running the template of revision.
func (r *RAGServiceReconciler) applyTrack(ctx context.Context, s *scope, track, revision string, replicas int32) error {
	tpl, err := r.templateOf(ctx, s, revision)
	if err != nil {
		return err
	}
	want := &replicas
	if track == ragv1.TrackStable && s.hpaOnStable {
		want = nil // the HPA owns the stable Deployment's replicas
	}
	dep, err := deploymentFor(s.obj, track, revision, tpl, want)
	if err != nil {
		return err
	}
	applied, err := applyOwned[appsv1.Deployment](ctx, r, s.obj, dep)
	if err != nil {
		return fmt.Errorf("applying %s Deployment: %w", track, err)
	}
	if track == ragv1.TrackStable {
		s.stable = applied
	} else {
		s.canary = applied
	}
	return nil
}

// templateOf returns the pod template of a revision: the spec's own, or the
// one stored in its ControllerRevision (the stable track during a canary).
func (r *RAGServiceReconciler) templateOf(ctx context.Context, s *scope, revision string) (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	if revision == s.desiredRevision {
		return s.desired, nil
	}
	cr := &appsv1.ControllerRevision{}
	key := types.NamespacedName{Namespace: s.obj.Namespace, Name: revisionName(s.obj, revision)}
	if err := r.Get(ctx, key, cr); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("the template of revision %s is gone: ControllerRevision %s not found", revision, key.Name)
		}
		return nil, fmt.Errorf("reading ControllerRevision %s: %w", key.Name, err)
	}
	return podtemplate.Decode(cr.Data.Raw)
}

// readyPods lists the ready, not terminating pods of one track that run revision.
func (r *RAGServiceReconciler) readyPods(ctx context.Context, svc *ragv1.RAGService, track, revision string) ([]corev1.Pod, error) {
	if revision == "" {
		return nil, nil
	}
	sel := podtemplate.TrackSelectorLabels(svc.Name, track)
	sel[ragv1.LabelRevision] = revision
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels(sel)); err != nil {
		return nil, fmt.Errorf("listing %s pods: %w", track, err)
	}
	var ready []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && podReady(&p) {
			ready = append(ready, p)
		}
	}
	return ready, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// analyze runs one analysis interval on the canary.
func (r *RAGServiceReconciler) analyze(ctx context.Context, s *scope, in rollout.Input, stablePods, canaryPods []corev1.Pod) (*analysis.Result, error) {
	spec := in.Rollout.Analysis
	q := analysis.Query{
		Namespace:      s.obj.Namespace,
		Name:           s.obj.Name,
		Revision:       in.Status.CanaryRevision,
		StableRevision: in.Status.StableRevision,
		Canary:         r.targets(canaryPods),
		Stable:         r.targets(stablePods),
		Spec:           *spec,
		Now:            s.now,
	}
	if spec.Provider == ragv1.AnalysisPrometheus {
		if spec.Prometheus == nil {
			return nil, fmt.Errorf("spec.rollout.analysis.prometheus is not set")
		}
		return (&analysis.Prometheus{Address: spec.Prometheus.Address}).Analyze(ctx, q)
	}
	return r.builtin().Analyze(ctx, q)
}

// targets are the admin-port /metrics URLs of pods.
func (r *RAGServiceReconciler) targets(pods []corev1.Pod) []analysis.Target {
	port := r.MetricsPort
	if port == 0 {
		port = podtemplate.AdminPort
	}
	out := make([]analysis.Target, 0, len(pods))
	for _, p := range pods {
		if p.Status.PodIP == "" {
			continue
		}
		u := "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)) + "/metrics"
		out = append(out, analysis.Target{Pod: p.Name, URL: u})
	}
	return out
}

func (r *RAGServiceReconciler) builtin() *analysis.Builtin {
	r.builtinOnce.Do(func() {
		if r.Builtin == nil {
			r.Builtin = &analysis.Builtin{}
		}
	})
	return r.Builtin
}

// removeAnnotations deletes the one-shot annotations the planner acted on.
func (r *RAGServiceReconciler) removeAnnotations(ctx context.Context, s *scope, keys []string) error {
	ann := map[string]any{}
	for _, k := range keys {
		ann[k] = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return err
	}
	after := s.obj.DeepCopy()
	if err := r.Patch(ctx, after, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("removing annotations %v: %w", keys, err)
	}
	// Our own metadata change must not make this pass's status write conflict:
	// when the status is still the one we last wrote, the new resourceVersion
	// is as good a base as the old one.
	if apiequality.Semantic.DeepEqual(after.Status, s.base.Status) {
		s.base.ResourceVersion = after.ResourceVersion
		s.obj.ResourceVersion = after.ResourceVersion
	}
	return nil
}

func hasAnnotation(svc *ragv1.RAGService, key string) bool {
	_, ok := svc.Annotations[key]
	return ok
}

func revisionOf(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	return d.Spec.Template.Labels[ragv1.LabelRevision]
}

// trackOf is what the planner needs to know of one track's Deployment.
func trackOf(d *appsv1.Deployment, readyOfRevision int32) rollout.Track {
	if d == nil {
		return rollout.Track{}
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	done, _ := rolledOut(d, revisionOf(d))
	return rollout.Track{
		Revision:          revisionOf(d),
		Exists:            true,
		Replicas:          replicas,
		ReadyReplicas:     readyOfRevision,
		ServingReplicas:   d.Status.ReadyReplicas,
		UpdatedReplicas:   d.Status.UpdatedReplicas,
		AvailableReplicas: d.Status.AvailableReplicas,
		RolledOut:         done && readyOfRevision >= replicas,
	}
}
