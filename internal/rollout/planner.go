// Package rollout is the pure rollout planner of a RAGService: from the spec, the
// observed Deployments of the two tracks, the last analysis verdict and the last
// status it decides the size and revision of each track, the canary step and the
// transition, with the reason.
//
// It has no client and no clock: the caller passes what it observed and the time.
// Everything it remembers between calls lives in RAGServiceStatus (and, after a
// lost status, in the Deployments' revision labels), so a manager killed at any
// point resumes where it stopped.
package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// DefaultProgressDeadline applies when the spec leaves progressDeadline empty
// (the CRD defaults it; this guards objects created without defaulting).
const DefaultProgressDeadline = 10 * time.Minute

// DefaultInterval is the analysis interval when the spec leaves it empty.
const DefaultInterval = 30 * time.Second

// Requeue bounds. A canary in progress is always looked at again (pauses end,
// deadlines pass, analysis falls due) but never in a hot loop.
const (
	minRequeue    = time.Second
	canaryRequeue = 30 * time.Second
)

// Track is what the controller observed of one track's Deployment.
type Track struct {
	// Revision is the rag.ragops.io/revision label of the Deployment's pod template.
	Revision string
	// Exists is false when the Deployment is not there (yet).
	Exists bool
	// Replicas is the Deployment's spec.replicas, as last applied.
	Replicas int32
	// ReadyReplicas counts the ready pods carrying Revision. Pods of another
	// revision (a template switch in flight) must not be counted here.
	ReadyReplicas int32
	// ServingReplicas counts every ready pod of the Deployment, whatever its
	// revision: what the Service sends traffic to. It weighs the tracks for
	// effectiveWeight (0 means: the same as ReadyReplicas).
	ServingReplicas int32
	// UpdatedReplicas and AvailableReplicas are the Deployment's status fields,
	// for display.
	UpdatedReplicas, AvailableReplicas int32
	// RolledOut: observedGeneration current, updated == ready == replicas and no
	// pods of an older template left. Promotion waits for it before it removes
	// the canary pods.
	RolledOut bool
}

// Input is everything Decide looks at.
type Input struct {
	// Now is the time of the decision.
	Now time.Time
	// Replicas is the scale the stable track keeps (spec.replicas, which an HPA
	// may drive). The canary's size derives from it; the canary never raises it.
	Replicas int32
	// Rollout is spec.rollout: strategy, steps, deadline, autoRollback, paused,
	// analysis.
	Rollout v1alpha1.RolloutSpec
	// DesiredRevision is the hash of the pod template the spec asks for
	// (replicas excluded).
	DesiredRevision string
	// Status is the last status written: the planner's memory across restarts.
	Status v1alpha1.RAGServiceStatus
	// Stable and Canary are the observed Deployments.
	Stable, Canary Track
	// Verdict is a verdict on the canary computed this pass (see AnalysisDue),
	// or nil. A verdict already recorded in Status (same revision, not newer) is
	// ignored, so passing one twice never counts it twice.
	Verdict *v1alpha1.AnalysisStatus
	// Promote, Abort and Retry are the one-shot annotations, true when present.
	Promote, Abort, Retry bool
}

// Transition is what a decision does to the rollout.
type Transition string

// Transitions. Several may happen in one pass (a canary starts and its first
// pause of zero length ends); Plan.Transition is the last one.
const (
	// TransitionNone: nothing to change (steady state).
	TransitionNone Transition = "None"
	// TransitionInitialize: the first revision becomes stable, without a canary.
	TransitionInitialize Transition = "Initialize"
	// TransitionRollingUpdate: strategy RollingUpdate, stable takes the new
	// revision in place.
	TransitionRollingUpdate Transition = "RollingUpdate"
	// TransitionStart: a canary starts (or restarts) at step 0.
	TransitionStart Transition = "Start"
	// TransitionWait: the current step is not done yet.
	TransitionWait Transition = "Wait"
	// TransitionAdvance: the canary moved to the next step.
	TransitionAdvance Transition = "Advance"
	// TransitionPromote: the stable track takes the canary's revision; canary
	// pods stay until stable is rolled out.
	TransitionPromote Transition = "Promote"
	// TransitionFinish: stable is rolled out on the promoted revision; the
	// canary pods go.
	TransitionFinish Transition = "Finish"
	// TransitionRollback: the canary is scaled to zero at once and its revision
	// blocked.
	TransitionRollback Transition = "Rollback"
	// TransitionFastRollback: the spec went back to the stable template during a
	// canary; the canary goes, no steps.
	TransitionFastRollback Transition = "FastRollback"
	// TransitionHold: nothing moves until a person acts or the spec changes
	// (paused, held failure, rolled-back revision).
	TransitionHold Transition = "Hold"
)

// Event is one Kubernetes event the controller records.
type Event struct {
	// Type is corev1.EventTypeNormal or corev1.EventTypeWarning.
	Type string
	// Reason is CamelCase.
	Reason string
	// Message is a sentence in Kubernetes style.
	Message string
}

// Event types, as corev1 spells them (kept here to keep this package free of
// the core API).
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Reasons of rollbacks, as status.rollback.reason records them.
const (
	ReasonAnalysisFailed           = "AnalysisFailed"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonAborted                  = "Aborted"
)

// Plan is what the controller applies.
type Plan struct {
	// StableRevision and StableReplicas are the stable Deployment's template
	// revision and size. StableReplicas is always Input.Replicas.
	StableRevision string
	StableReplicas int32
	// CanaryRevision is the canary Deployment's template revision; "" means no
	// canary runs: leave its template as it is and scale it to CanaryReplicas (0).
	CanaryRevision string
	CanaryReplicas int32
	// Status holds the updated rollout fields (stableRevision, canaryRevision,
	// currentStep, canaryWeight, effectiveWeight, stepStartTime, analysis,
	// rollback, phase). Other fields are copied from Input.Status unchanged.
	Status v1alpha1.RAGServiceStatus
	// Transition, Reason and Message say what this pass decided and why.
	Transition Transition
	Reason     string
	Message    string
	// Events are transitions only.
	Events []Event
	// Consumed are the annotations this pass handled (acted on or ignored with
	// an event); the controller removes them.
	Consumed []string
	// RequeueAfter is when to look again even if nothing changes: the end of a
	// pause, the next analysis, a deadline. Zero when only a change can move
	// things.
	RequeueAfter time.Duration
	// Phase is the one-word summary.
	Phase v1alpha1.Phase
	// Degraded: the rollout failed and holds (no autoRollback) or promotion
	// stalled; a person must act. Maps to the Stalled condition.
	Degraded bool
}

// AnalysisDue says whether the controller should run analysis before calling
// Decide: a canary runs (not yet promoted) with at least one ready pod,
// analysis is configured and no verdict on this canary is younger than the
// interval. A canary without ready pods is not analysed at all: that is the
// progress deadline's business, and "no data" from pods that are not serving
// yet must never count as a failure.
func AnalysisDue(in Input) bool {
	a := in.Rollout.Analysis
	st := in.Status
	if a == nil || in.Rollout.Strategy == v1alpha1.StrategyRollingUpdate {
		return false
	}
	if st.CanaryRevision == "" || st.CanaryRevision == st.StableRevision {
		return false
	}
	if cn := in.Canary; !cn.Exists || cn.Revision != st.CanaryRevision || cn.ReadyReplicas == 0 {
		return false
	}
	if st.Analysis == nil || st.Analysis.Revision != st.CanaryRevision {
		return true
	}
	return !in.Now.Before(st.Analysis.Time.Add(interval(a)))
}

// Decide plans one reconcile pass. It never fails: whatever the controller
// could not observe or compute is absent from Input and Decide still returns a
// safe plan, so the progress deadline and rollbacks fire whatever else fails.
func Decide(in Input) Plan {
	p := &planner{in: in, st: *in.Status.DeepCopy()}
	p.run()
	return p.finish()
}

type planner struct {
	in Input
	st v1alpha1.RAGServiceStatus

	canaryReplicas int32
	transition     Transition
	reason, msg    string
	events         []Event
	consumed       []string
	requeue        time.Duration
	phase          v1alpha1.Phase
	degraded       bool

	promoteUsed, abortUsed, retryUsed bool
}

func (p *planner) run() {
	if p.in.Promote {
		p.consumed = append(p.consumed, v1alpha1.AnnotationPromote)
	}
	if p.in.Abort {
		p.consumed = append(p.consumed, v1alpha1.AnnotationAbort)
	}
	if p.in.Retry {
		p.consumed = append(p.consumed, v1alpha1.AnnotationRetry)
	}
	p.transition = TransitionNone
	if p.in.DesiredRevision == "" {
		// The controller could not build the template: keep going where we are.
		p.in.DesiredRevision = p.st.StableRevision
		if p.st.CanaryRevision != "" {
			p.in.DesiredRevision = p.st.CanaryRevision
		}
	}

	if p.st.StableRevision == "" && !p.adopt() {
		p.st.StableRevision = p.in.DesiredRevision
		p.set(TransitionInitialize, "Initialized", fmt.Sprintf("Deploying revision %s as stable", p.in.DesiredRevision))
		p.event(EventNormal, "Initialized", p.msg)
		p.steady()
		return
	}

	if p.in.Rollout.Strategy == v1alpha1.StrategyRollingUpdate {
		p.rollingUpdate()
		return
	}

	switch s, c, d := p.st.StableRevision, p.st.CanaryRevision, p.in.DesiredRevision; {
	case c != "" && c == s:
		p.promoting()
	case c != "" && d == s:
		p.fastRollback()
	case c != "" && d != c:
		if p.blocked() {
			p.dropCanary()
			p.holdRolledBack()
			return
		}
		if p.in.Rollout.Paused {
			// Held where it is: the running canary keeps its step (and can
			// still fail); the new revision starts when the rollout resumes.
			p.canary()
			if p.transition == TransitionHold {
				p.msg += fmt.Sprintf("; revision %s waits for the rollout to resume", d)
			}
			return
		}
		p.start("CanaryRestarted", fmt.Sprintf("Spec changed during the canary of %s: restarting with revision %s", c, d))
	case c != "":
		p.canary()
	default:
		p.noCanary()
	}
}

// adopt rebuilds the stable (and canary) revision from the Deployments' labels
// when the status was lost (restored from a backup, recreated object).
func (p *planner) adopt() bool {
	st, cn := p.in.Stable, p.in.Canary
	if !st.Exists || st.Revision == "" {
		return false
	}
	p.st.StableRevision = st.Revision
	p.event(EventNormal, "Adopted", fmt.Sprintf("Adopted stable revision %s from its Deployment", st.Revision))
	if p.st.CanaryRevision == "" && cn.Exists && cn.Revision != "" && cn.Replicas > 0 && cn.Revision != st.Revision {
		// The step is unknown: start the canary over, keeping its pods.
		p.st.CanaryRevision = cn.Revision
		p.st.CurrentStep = 0
		p.st.StepStartTime = p.now()
		p.st.Analysis = nil
		p.event(EventNormal, "Adopted", fmt.Sprintf("Adopted canary revision %s from its Deployment, restarting at step 0", cn.Revision))
	}
	return true
}

func (p *planner) rollingUpdate() {
	if p.st.CanaryRevision != "" {
		p.event(EventNormal, "CanaryRemoved", fmt.Sprintf("Strategy is RollingUpdate: removed canary %s", p.st.CanaryRevision))
		p.dropCanary()
	}
	if d := p.in.DesiredRevision; d != p.st.StableRevision && p.in.Rollout.Paused {
		p.set(TransitionHold, "Paused", fmt.Sprintf("Rolling update to %s not started: spec.rollout.paused holds the rollout", d))
		p.steady()
		p.phase = v1alpha1.PhasePaused
		return
	} else if d != p.st.StableRevision {
		p.set(TransitionRollingUpdate, "RollingUpdate", fmt.Sprintf("Rolling stable from %s to %s", p.st.StableRevision, d))
		p.event(EventNormal, "RollingUpdate", p.msg)
		p.st.StableRevision = d
	}
	p.steady()
	p.ignore(p.in.Promote, "promote", "no canary runs under strategy RollingUpdate")
	p.ignore(p.in.Abort, "abort", "no canary runs under strategy RollingUpdate")
	p.ignore(p.in.Retry, "retry", "no canary runs under strategy RollingUpdate")
}

func (p *planner) noCanary() {
	d := p.in.DesiredRevision
	if d == p.st.StableRevision {
		p.steady()
		p.ignore(p.in.Promote, "promote", "no canary runs")
		p.ignore(p.in.Abort, "abort", "no canary runs")
		p.ignore(p.in.Retry, "retry", "nothing was rolled back")
		return
	}
	if p.blocked() {
		if p.in.Retry {
			p.retryUsed = true
			p.start("RetryStarted", fmt.Sprintf("Retrying revision %s from step 0", d))
			return
		}
		p.holdRolledBack()
		p.ignore(p.in.Promote, "promote", fmt.Sprintf("revision %s was rolled back; retry it first", d))
		p.ignore(p.in.Abort, "abort", "no canary runs")
		return
	}
	if p.in.Rollout.Paused {
		p.set(TransitionHold, "Paused", fmt.Sprintf("Canary of revision %s not started: spec.rollout.paused holds the rollout", d))
		p.phase = v1alpha1.PhasePaused
		p.ignore(p.in.Promote, "promote", "no canary runs")
		p.ignore(p.in.Abort, "abort", "no canary runs")
		return
	}
	p.start("CanaryStarted", fmt.Sprintf("Started canary of revision %s (stable %s)", d, p.st.StableRevision))
}

// blocked: the desired revision is the one last rolled back, and stays so until
// the spec changes or retry is asked for.
func (p *planner) blocked() bool {
	rb := p.st.Rollback
	return rb != nil && rb.Revision == p.in.DesiredRevision && rb.Revision != p.st.StableRevision
}

func (p *planner) holdRolledBack() {
	rb := p.st.Rollback
	p.set(TransitionHold, "RolledBack", fmt.Sprintf("Revision %s was rolled back (%s): change the spec or add the retry annotation", rb.Revision, rb.Reason))
	p.phase = v1alpha1.PhaseRolledBack
}

func (p *planner) steady() {
	p.canaryReplicas = 0
	if p.transition == TransitionNone {
		p.set(TransitionNone, "Steady", fmt.Sprintf("Stable revision %s", p.st.StableRevision))
	}
	p.phase = p.stablePhase()
}

func (p *planner) stablePhase() v1alpha1.Phase {
	s := p.in.Stable
	if s.Exists && s.Revision == p.st.StableRevision && s.RolledOut {
		return v1alpha1.PhaseHealthy
	}
	return v1alpha1.PhaseProgressing
}

func (p *planner) start(reason, msg string) {
	p.st.CanaryRevision = p.in.DesiredRevision
	p.st.CurrentStep = 0
	p.st.CanaryWeight = 0
	p.st.StepStartTime = p.now()
	p.st.Analysis = nil
	p.set(TransitionStart, reason, msg)
	p.event(EventNormal, reason, msg)
	p.canary()
}

func (p *planner) fastRollback() {
	c := p.st.CanaryRevision
	p.dropCanary()
	p.set(TransitionFastRollback, "FastRollback", fmt.Sprintf("Spec is back to stable revision %s: removed canary %s without steps", p.st.StableRevision, c))
	p.event(EventNormal, "FastRollback", p.msg)
	p.phase = p.stablePhase()
	p.ignore(p.in.Promote, "promote", "the canary was removed: the spec is back to the stable revision")
	p.ignore(p.in.Abort, "abort", "the canary was removed: the spec is back to the stable revision")
	p.ignore(p.in.Retry, "retry", "the spec is back to the stable revision")
}

func (p *planner) dropCanary() {
	p.st.CanaryRevision = ""
	p.st.CurrentStep = 0
	p.st.CanaryWeight = 0
	p.st.StepStartTime = nil
	p.canaryReplicas = 0
}

// promoting is phase two of a promotion: stable already runs the canary's
// revision (rolling with maxUnavailable 0); the canary pods stay until stable is
// rolled out so ready capacity never drops.
func (p *planner) promoting() {
	s := p.st.StableRevision
	p.canaryReplicas = CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
	p.ignore(p.in.Promote, "promote", "promotion is already under way")
	p.ignore(p.in.Abort, "abort", "promotion is already under way; change the spec to roll forward or back")
	p.ignore(p.in.Retry, "retry", "promotion is already under way")
	if st := p.in.Stable; st.Exists && st.Revision == s && st.RolledOut {
		p.dropCanary()
		p.set(TransitionFinish, "Promoted", fmt.Sprintf("Promoted revision %s: stable is rolled out, canary removed", s))
		p.event(EventNormal, "Promoted", p.msg)
		p.phase = v1alpha1.PhaseHealthy
		if p.in.DesiredRevision != s {
			// The spec moved on during promotion: its canary starts now. The
			// annotations were answered above.
			p.in.Promote, p.in.Abort, p.in.Retry = false, false, false
			p.noCanary()
		}
		return
	}
	p.set(TransitionWait, "WaitingForStableRollout", fmt.Sprintf("Promoting revision %s: waiting for the stable Deployment to roll out", s))
	p.phase = v1alpha1.PhaseProgressing
	if end, ok := p.deadline(); ok {
		if !p.in.Now.After(end) {
			p.requeueAt(end.Add(time.Second))
		} else {
			p.set(TransitionHold, "PromotionStalled", fmt.Sprintf("Promoting revision %s: stable has not rolled out within the progress deadline", s))
			p.degraded = true
			p.phase = v1alpha1.PhaseDegraded
			if p.in.Status.Phase != v1alpha1.PhaseDegraded {
				p.event(EventWarning, "PromotionStalled", p.msg)
			}
		}
	}
	p.requeueIn(canaryRequeue)
}

// canary runs the canary of Status.CanaryRevision (== DesiredRevision).
func (p *planner) canary() {
	c := p.st.CanaryRevision
	steps := p.steps()
	if p.st.CurrentStep < 0 || int(p.st.CurrentStep) > len(steps) {
		p.st.CurrentStep = 0
	}
	p.st.CanaryWeight = weightAt(steps, p.st.CurrentStep)
	desired := CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
	ready := p.canaryReady()

	// An HPA scale-up makes the canary wait for new pods: the step clock (and
	// with it the progress deadline) restarts, or a long step would time out
	// the moment the scale changes.
	if cn := p.in.Canary; cn.Exists && cn.Revision == c && desired > cn.Replicas && p.transition != TransitionStart {
		p.st.StepStartTime = p.now()
	}

	// The progress deadline comes first and depends on nothing that can fail.
	deadlineHit := false
	if end, ok := p.deadline(); ok && ready < desired {
		deadlineHit = p.in.Now.After(end)
	}
	p.recordVerdict()
	failed := p.analysisFailed()
	auto := p.in.Rollout.AutoRollback == nil || *p.in.Rollout.AutoRollback

	switch {
	case deadlineHit && auto:
		p.rollback(ReasonProgressDeadlineExceeded, fmt.Sprintf("%d/%d canary pods ready after the progress deadline of %s", ready, desired, p.progressDeadline()))
		return
	case p.in.Abort && !p.abortUsed:
		p.abortUsed = true
		p.rollback(ReasonAborted, "Aborted by the abort annotation")
		return
	case failed && auto:
		p.rollback(ReasonAnalysisFailed, p.failMessage())
		return
	case p.in.Retry && !p.retryUsed && (deadlineHit || failed):
		p.retryUsed = true
		p.start("RetryStarted", fmt.Sprintf("Retrying revision %s from step 0", c))
		return
	case p.in.Promote && !p.promoteUsed:
		p.promoteUsed = true
		p.promote("PromotedManually", fmt.Sprintf("Promoting revision %s at step %d/%d by the promote annotation", c, p.st.CurrentStep, len(steps)))
		return
	}
	p.ignore(p.in.Retry && !p.retryUsed, "retry", "the canary has not failed")
	p.retryUsed = true

	p.canaryReplicas = desired
	p.phase = v1alpha1.PhaseProgressing
	p.requeueIn(canaryRequeue)
	p.requeueAnalysis()
	switch {
	case deadlineHit:
		p.hold(ReasonProgressDeadlineExceeded, fmt.Sprintf("%d/%d canary pods ready after the progress deadline of %s; autoRollback is off", ready, desired, p.progressDeadline()))
		return
	case failed:
		p.hold(ReasonAnalysisFailed, p.failMessage()+"; autoRollback is off")
		return
	case p.in.Rollout.Paused:
		p.set(TransitionHold, "Paused", fmt.Sprintf("Canary %s paused at step %d/%d by spec.rollout.paused", c, p.st.CurrentStep, len(steps)))
		p.phase = v1alpha1.PhasePaused
		return
	}

	for int(p.st.CurrentStep) <= len(steps) {
		if int(p.st.CurrentStep) == len(steps) {
			p.promote("PromotionStarted", fmt.Sprintf("Canary %s passed all %d steps: promoting", c, len(steps)))
			return
		}
		if !p.stepDone(steps[p.st.CurrentStep], desired, ready) {
			return
		}
		p.st.CurrentStep++
		if int(p.st.CurrentStep) == len(steps) {
			continue // promotion says it
		}
		p.st.StepStartTime = p.now()
		p.st.CanaryWeight = weightAt(steps, p.st.CurrentStep)
		desired = CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
		p.canaryReplicas = desired
		msg := fmt.Sprintf("Advanced canary %s to step %d/%d (%s)", c, p.st.CurrentStep, len(steps), describe(steps[p.st.CurrentStep]))
		p.set(TransitionAdvance, "StepAdvanced", msg)
		p.event(EventNormal, "StepAdvanced", msg)
	}
}

// stepDone says whether the current step is complete and, when it is not,
// records why the rollout waits.
func (p *planner) stepDone(step v1alpha1.RolloutStep, desired, ready int32) bool {
	c := p.st.CanaryRevision
	n, total := p.st.CurrentStep, len(p.steps())
	switch {
	case step.SetWeight != nil:
		if ready < desired {
			p.wait("WaitingForCanaryPods", fmt.Sprintf("Step %d/%d: %d/%d canary pods of %s ready", n, total, ready, desired, c))
			if end, ok := p.deadline(); ok {
				p.requeueAt(end.Add(time.Second))
			}
			return false
		}
	case step.Pause != nil && step.Pause.Duration == nil:
		p.set(TransitionWait, "WaitingForPromote", fmt.Sprintf("Step %d/%d: paused until the promote annotation", n, total))
		p.phase = v1alpha1.PhasePaused
		return false
	case step.Pause != nil:
		end := p.stepStart().Add(step.Pause.Duration.Duration)
		if p.in.Now.Before(end) {
			p.wait("PauseInProgress", fmt.Sprintf("Step %d/%d: pausing until %s", n, total, end.UTC().Format(time.RFC3339)))
			p.requeueAt(end)
			return false
		}
	}
	a := p.in.Rollout.Analysis
	if a == nil {
		return true
	}
	last := p.st.Analysis
	if last == nil || last.Revision != c || !last.Time.After(p.stepStart()) {
		p.wait("WaitingForAnalysis", fmt.Sprintf("Step %d/%d: waiting for an analysis verdict on %s", n, total, c))
		return false
	}
	switch {
	case last.Verdict == v1alpha1.VerdictPass:
		return true
	case last.Verdict == v1alpha1.VerdictInconclusive && a.OnNoData == v1alpha1.NoDataContinue:
		return true
	case last.Verdict == v1alpha1.VerdictInconclusive && a.OnNoData != v1alpha1.NoDataFail:
		p.wait("WaitingForAnalysisData", fmt.Sprintf("Step %d/%d: last analysis inconclusive (%s); onNoData is Pause", n, total, last.Message))
		return false
	default:
		p.wait("WaitingForAnalysis", fmt.Sprintf("Step %d/%d: last analysis %s (%d failed intervals so far)", n, total, last.Verdict, last.Failures))
		return false
	}
}

// recordVerdict folds a new verdict on the current canary into the status and
// counts failed intervals.
func (p *planner) recordVerdict() {
	v, a, c := p.in.Verdict, p.in.Rollout.Analysis, p.st.CanaryRevision
	if v == nil || a == nil || v.Revision != c {
		return
	}
	prev := p.st.Analysis
	if prev != nil && prev.Revision == c && !v.Time.After(prev.Time.Time) {
		return // already counted
	}
	rec := v.DeepCopy()
	rec.Failures = 0
	if prev != nil && prev.Revision == c {
		rec.Failures = prev.Failures
	}
	if v.Verdict == v1alpha1.VerdictFail || (v.Verdict == v1alpha1.VerdictInconclusive && a.OnNoData == v1alpha1.NoDataFail) {
		rec.Failures++
		// Once over the limit the rollout has failed; more failed intervals are
		// not news.
		if rec.Failures <= failureLimit(a)+1 {
			p.event(EventWarning, "AnalysisIntervalFailed", fmt.Sprintf("Analysis of canary %s failed: %s (failed intervals %d, failureLimit %d)", c, orVerdict(rec.Message, rec.Verdict), rec.Failures, failureLimit(a)))
		}
	}
	p.st.Analysis = rec
}

func (p *planner) analysisFailed() bool {
	a, last := p.in.Rollout.Analysis, p.st.Analysis
	return a != nil && last != nil && last.Revision == p.st.CanaryRevision && last.Failures > failureLimit(a)
}

func (p *planner) failMessage() string {
	last := p.st.Analysis
	return fmt.Sprintf("%d failed analysis intervals exceed failureLimit %d: %s", last.Failures, failureLimit(p.in.Rollout.Analysis), orVerdict(last.Message, last.Verdict))
}

func (p *planner) rollback(reason, msg string) {
	c := p.st.CanaryRevision
	p.st.Rollback = &v1alpha1.RollbackStatus{Revision: c, Reason: reason, Message: msg, Time: *p.now()}
	p.dropCanary()
	p.set(TransitionRollback, reason, fmt.Sprintf("Rolled back canary %s: %s", c, msg))
	p.event(EventWarning, reason, p.msg)
	p.phase = v1alpha1.PhaseRolledBack
	p.requeue = 0
	p.ignore(p.in.Promote && !p.promoteUsed, "promote", "the canary was rolled back")
	p.ignore(p.in.Abort && !p.abortUsed, "abort", "the canary was already rolled back")
	p.ignore(p.in.Retry && !p.retryUsed, "retry", "the canary was rolled back in this pass; retry again to restart it")
	p.promoteUsed, p.abortUsed, p.retryUsed = true, true, true
}

func (p *planner) hold(reason, msg string) {
	p.set(TransitionHold, reason, msg)
	p.degraded = true
	p.phase = v1alpha1.PhaseDegraded
	if p.in.Status.Phase != v1alpha1.PhaseDegraded {
		p.event(EventWarning, reason, msg)
	}
}

func (p *planner) promote(reason, msg string) {
	p.st.StableRevision = p.st.CanaryRevision
	p.st.CurrentStep = int32(len(p.steps()))
	p.st.StepStartTime = p.now()
	p.canaryReplicas = CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
	p.set(TransitionPromote, reason, msg)
	p.event(EventNormal, reason, msg)
	p.phase = v1alpha1.PhaseProgressing
	p.requeue = 0
	p.requeueIn(canaryRequeue)
	p.ignore(p.in.Abort && !p.abortUsed, "abort", "promotion started")
	p.ignore(p.in.Retry && !p.retryUsed, "retry", "promotion started")
	p.abortUsed, p.retryUsed = true, true
}

func (p *planner) wait(reason, msg string) {
	p.set(TransitionWait, reason, msg)
}

func (p *planner) set(t Transition, reason, msg string) {
	// A wait after an advance in the same pass reports the advance.
	if t == TransitionWait && (p.transition == TransitionAdvance || p.transition == TransitionStart) {
		p.msg += "; " + msg
		return
	}
	p.transition, p.reason, p.msg = t, reason, msg
}

func (p *planner) event(typ, reason, msg string) {
	p.events = append(p.events, Event{Type: typ, Reason: reason, Message: msg})
}

// ignore records an annotation that asked for something impossible, so the
// person who set it learns why nothing happened.
func (p *planner) ignore(present bool, name, why string) {
	if present {
		p.event(EventNormal, "AnnotationIgnored", fmt.Sprintf("Ignored the %s annotation: %s", name, why))
	}
}

func (p *planner) requeueIn(d time.Duration) {
	if d < minRequeue {
		d = minRequeue
	}
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}

func (p *planner) requeueAt(t time.Time) { p.requeueIn(t.Sub(p.in.Now)) }

func (p *planner) requeueAnalysis() {
	a := p.in.Rollout.Analysis
	if a == nil {
		return
	}
	last := p.st.Analysis
	if last == nil || last.Revision != p.st.CanaryRevision {
		p.requeueIn(interval(a))
		return
	}
	p.requeueAt(last.Time.Add(interval(a)))
}

func (p *planner) canaryReady() int32 {
	if cn := p.in.Canary; cn.Exists && cn.Revision == p.st.CanaryRevision {
		return cn.ReadyReplicas
	}
	return 0
}

func (p *planner) deadline() (time.Time, bool) {
	if p.st.StepStartTime == nil {
		return time.Time{}, false
	}
	return p.st.StepStartTime.Add(p.progressDeadline()), true
}

func (p *planner) progressDeadline() time.Duration {
	if d := p.in.Rollout.ProgressDeadline.Duration; d > 0 {
		return d
	}
	return DefaultProgressDeadline
}

func (p *planner) stepStart() time.Time {
	if p.st.StepStartTime == nil {
		return p.in.Now
	}
	return p.st.StepStartTime.Time
}

// now is the decision time as the status stores it: whole seconds, so a status
// read back after a restart compares exactly as the one in memory did. It is
// rounded up, never down: a stamp earlier than the event would end pauses and
// progress deadlines early; a later one ends them at most a second late.
func (p *planner) now() *metav1.Time {
	t := p.in.Now.Truncate(time.Second)
	if t.Before(p.in.Now) {
		t = t.Add(time.Second)
	}
	mt := metav1.NewTime(t)
	return &mt
}

func (p *planner) steps() []v1alpha1.RolloutStep {
	if len(p.in.Rollout.Steps) == 0 {
		return implicitSteps
	}
	return p.in.Rollout.Steps
}

var hundred int32 = 100

// implicitSteps is the canary of a spec without steps: one step to full weight.
var implicitSteps = []v1alpha1.RolloutStep{{SetWeight: &hundred}}

func (p *planner) finish() Plan {
	cr := p.st.CanaryRevision
	canaryReplicas := p.canaryReplicas
	if cr == "" {
		canaryReplicas = 0
	}
	// The canary track's share of the pods that serve: during promotion the
	// stable track's old-revision pods still serve and count.
	canaryReady := int32(0)
	if p.in.Canary.Exists && cr != "" {
		canaryReady = max(p.in.Canary.ServingReplicas, p.in.Canary.ReadyReplicas)
	}
	stableReady := int32(0)
	if p.in.Stable.Exists {
		stableReady = max(p.in.Stable.ServingReplicas, p.in.Stable.ReadyReplicas)
	}
	p.st.EffectiveWeight = EffectiveWeight(stableReady, canaryReady)
	if p.phase == "" {
		p.phase = v1alpha1.PhaseProgressing
	}
	p.st.Phase = p.phase
	return Plan{
		StableRevision: p.st.StableRevision,
		StableReplicas: max(p.in.Replicas, 0),
		CanaryRevision: cr,
		CanaryReplicas: canaryReplicas,
		Status:         p.st,
		Transition:     p.transition,
		Reason:         p.reason,
		Message:        p.msg,
		Events:         p.events,
		Consumed:       p.consumed,
		RequeueAfter:   p.requeue,
		Phase:          p.phase,
		Degraded:       p.degraded,
	}
}

// weightAt is the canary weight in force at a step: that of the last setWeight
// at or before it (0 before the first one). Past the last step it stays at the
// last weight.
func weightAt(steps []v1alpha1.RolloutStep, step int32) int32 {
	w := int32(0)
	for i := 0; i < len(steps) && i <= int(step); i++ {
		if s := steps[i].SetWeight; s != nil {
			w = *s
		}
	}
	return w
}

func describe(s v1alpha1.RolloutStep) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		return "pause " + s.Pause.Duration.Duration.String()
	default:
		return "pause until promoted"
	}
}

func interval(a *v1alpha1.AnalysisSpec) time.Duration {
	if a.Interval.Duration > 0 {
		return a.Interval.Duration
	}
	return DefaultInterval
}

func failureLimit(a *v1alpha1.AnalysisSpec) int32 {
	if a.FailureLimit == nil {
		return 1
	}
	return *a.FailureLimit
}

func orVerdict(msg string, v v1alpha1.Verdict) string {
	if msg != "" {
		return msg
	}
	return string(v)
}
