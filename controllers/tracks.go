package controllers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/analysis"
	"github.com/ragops/rag-operator/internal/embeddingspace"
	"github.com/ragops/rag-operator/internal/observe"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/probeclient"
	"github.com/ragops/rag-operator/internal/probetraffic"
	"github.com/ragops/rag-operator/internal/rollout"
)

// decide asks the pure planner what both tracks should run, from the pass's
// observation and the verdicts due (a space check, an analysis interval), and
// records the decision (with the command tokens it handled) in status before
// anything acts on it, so a manager killed mid-way finds it. It runs whatever
// failed earlier in the pass, so deadlines, aborts and rollbacks fire even
// when the spec cannot be built.
func (r *RAGServiceReconciler) decide(ctx context.Context, s *scope) (ctrl.Result, error) {
	in := plannerInput(s)
	fp := r.gateFleet(ctx, s, &in) // fleet.go: may hold an operator-caused revision back
	r.judgeCanary(ctx, s, &in)
	plan := rollout.Decide(in)
	fp.hold(&plan)
	s.plan = &plan
	s.obj.Status.RolloutStatus = plan.Memory
	if err := r.recordDecision(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	r.wakeFleetAfter(ctx, s, fp)
	// Counted once the decision is recorded: a pass whose write conflicts is
	// decided again from the newer status, and must not count twice. (The
	// transitions counted all change the memory, so they are recorded first.)
	recordMetrics(s.obj, &plan, in.Verdict)
	return ctrl.Result{RequeueAfter: plan.RequeueAfter}, nil
}

// plannerInput is the planner's input: the spec, the rollout memory, the
// command tokens and the observation.
func plannerInput(s *scope) rollout.Input {
	stable, canary, retiring := s.tracks()
	return rollout.Input{
		Now:             s.now,
		Replicas:        replicasOf(s.obj),
		Rollout:         s.obj.Spec.Rollout,
		DesiredRevision: s.desiredRevision,
		Memory:          s.obj.Status.RolloutStatus,
		Stable:          stable,
		Canary:          canary,
		Retiring:        retiring,
		Tokens:          rollout.Tokens(s.obj.Annotations),
		Space:           spaceInput(s.obj),
	}
}

// judgeCanary adds to in the verdicts due this pass: a check of the canary's
// embedding space, and an analysis interval.
func (r *RAGServiceReconciler) judgeCanary(ctx context.Context, s *scope, in *rollout.Input) {
	log := ctrl.LoggerFrom(ctx)
	stableReady, canaryReady := s.readyPods()
	if rollout.SpaceCheckDue(*in) && s.probes != nil {
		in.SpaceVerdict = r.checkSpace(ctx, s, *in, stableReady, canaryReady)
		log.Info("Checked the embedding space", "revision", in.SpaceVerdict.Revision, "verdict", in.SpaceVerdict.Verdict, "message", in.SpaceVerdict.Message)
	}
	if !rollout.AnalysisDue(*in) {
		return
	}
	// Metrics that cannot be read while the canary's pods are ready are an
	// Inconclusive interval with the error named (onNoData decides), never a
	// pass.
	res, err := r.analyze(ctx, s, *in, stableReady, canaryReady)
	switch {
	case err != nil:
		v := analysis.Unreadable(err, in.Memory.CanaryRevision, s.now)
		in.Verdict = &v
		log.Info("Analysis could not read the canary's metrics", "revision", in.Memory.CanaryRevision, "error", err.Error())
	case res != nil:
		in.Verdict = &res.Status
		recordAnalysis(s.obj, res)
	}
}

// recordDecision writes the decision before anything acts on it when it
// changed the rollout memory (decideStatusWrite, atDecision): a manager killed
// after acting must find what it decided (a canary started, a step taken, a
// token handled, a rollback). The conditions go with it, so no reader ever
// sees a decision beside the last pass's conditions (a canary next to
// Healthy); the end of the pass writes them again only if applying changed
// them.
func (r *RAGServiceReconciler) recordDecision(ctx context.Context, s *scope) error {
	svc := s.obj
	initialize := s.plan.Transition == rollout.TransitionInitialize
	if w, _ := decideStatusWrite(writeInput{at: atDecision, stored: s.base.Status, next: svc.Status, initialize: initialize}); w == writeNone {
		return nil
	}
	r.summarize(s.after(s.plan), errors.Join(s.errs...))
	if len(s.errs) == 0 {
		// Observed with the decision: everything the decision needs was read
		// without a failure. (A step that fails later says so in the
		// conditions at the end of the pass.)
		svc.Status.ObservedGeneration = svc.Generation
	}
	if err := r.writeStatus(ctx, s, atDecision); err != nil {
		if apierrors.IsConflict(err) {
			err = fmt.Errorf("%w: %w", errStaleRead, err)
		}
		return fmt.Errorf("recording the rollout decision: %w", err)
	}
	s.decided = true
	return nil
}

// applyPlan applies what the planner decided: the Services, then the
// Deployments of its revisions (every other one deleted), and the probe
// traffic while the canary is analysed.
func (r *RAGServiceReconciler) applyPlan(ctx context.Context, s *scope) (ctrl.Result, error) {
	plan := s.plan
	// The Services first: a narrower selection (a canary not yet proven to
	// share stable's space, a cutover) must be in place before new pods exist;
	// when it could not be applied, no pod moves.
	if sel := trafficSelection(s.obj, plan.Selects); sel != plan.Selects {
		ctrl.LoggerFrom(ctx).Info("The shared Service selects no pod: the space watch found a drift and onDrift is StopTraffic")
		if err := r.applyServices(ctx, s, sel); err != nil {
			return ctrl.Result{}, fmt.Errorf("%w; the Deployments were left as they are", err)
		}
	} else if err := r.applyServices(ctx, s, plan.Selects); err != nil {
		if plan.Selects != rollout.SelectBoth {
			return ctrl.Result{}, fmt.Errorf("%w; the Deployments were left as they are, so clients never reach two vector spaces", err)
		}
		s.fail(err)
	}
	r.applyRevisions(ctx, s)
	r.followProbeTraffic(s, plan)
	if plan.Transition != rollout.TransitionNone {
		ctrl.LoggerFrom(ctx).Info("Rollout", "transition", plan.Transition, "reason", plan.Reason, "message", plan.Message)
	}
	return ctrl.Result{}, nil
}

// after is the scope as this pass leaves it once it has acted on plan, as far
// as the summary counts it: the tracks are the plan's revisions (a handover
// made the canary's stable; a canary the plan removes is deleted right after
// the decision is written, and its pods no longer count, as at the end of the
// pass). Summarized so, the decision write has the counts the end of the pass
// would write next; if the deletion fails, the end of the pass says so.
func (s *scope) after(plan *rollout.Plan) *scope {
	next := *s
	next.assign(s.obj, plan.StableRevision, plan.CanaryRevision, plan.RetiringRevision)
	return &next
}

// followProbeTraffic keeps synthetic requests going to both tracks' ready
// pods exactly while analysis judges the canary, and stops them otherwise.
func (r *RAGServiceReconciler) followProbeTraffic(s *scope, plan *rollout.Plan) {
	key := client.ObjectKeyFromObject(s.obj).String()
	spec := s.obj.Spec.Rollout
	n := 0
	if spec.Analysis != nil {
		n = analysis.ProbeRequests(*spec.Analysis)
	}
	if n == 0 || !rollout.AnalysisActive(spec, plan.Memory, spaceInput(s.obj)) {
		r.traffic().Stop(key)
		return
	}
	texts := s.probes
	if len(texts) == 0 {
		texts = embeddingspace.BuiltinProbes()
	}
	r.traffic().Ensure(key, probetraffic.Plan{
		Revision: plan.Memory.CanaryRevision,
		PerTrack: n,
		Interval: analysis.IntervalOf(*spec.Analysis),
		Targets: map[string][]string{
			ragv1.TrackStable: r.apiURLs(observe.ReadyPods(s.stablePods, plan.StableRevision)),
			ragv1.TrackCanary: r.apiURLs(observe.ReadyPods(s.canaryPods, plan.Memory.CanaryRevision)),
		},
		Texts: texts,
	})
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

// analyze runs one analysis interval on the canary.
func (r *RAGServiceReconciler) analyze(ctx context.Context, s *scope, in rollout.Input, stablePods, canaryPods []corev1.Pod) (*analysis.Result, error) {
	spec := in.Rollout.Analysis
	q := analysis.Query{
		Namespace:      s.obj.Namespace,
		Name:           s.obj.Name,
		Revision:       in.Memory.CanaryRevision,
		StableRevision: in.Memory.StableRevision,
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

func (r *RAGServiceReconciler) traffic() *probetraffic.Runner {
	r.trafficOnce.Do(func() {
		if r.Traffic == nil {
			r.Traffic = &probetraffic.Runner{Observe: observeProbeTraffic}
		}
	})
	return r.Traffic
}

func (r *RAGServiceReconciler) probe() *probeclient.Client {
	r.probeOnce.Do(func() {
		if r.Probe == nil {
			r.Probe = &probeclient.Client{Timeout: probeTimeout}
		}
	})
	return r.Probe
}

func (r *RAGServiceReconciler) builtin() *analysis.Builtin {
	r.builtinOnce.Do(func() {
		if r.Builtin == nil {
			r.Builtin = &analysis.Builtin{}
		}
	})
	return r.Builtin
}
