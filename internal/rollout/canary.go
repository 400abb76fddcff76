package rollout

import (
	"fmt"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// canary runs the canary of Memory.CanaryRevision (== DesiredRevision).
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

	// The progress deadline comes first and depends on nothing that can fail:
	// pods that never become ready, and a space that is not proven by then.
	p.recordSpaceCheck()
	es := p.spaceOf(c)
	pending := p.spacePending()
	deadlineHit := false
	if end, ok := p.deadline(); ok && (ready < desired || pending) {
		deadlineHit = p.in.Now.After(end)
	}
	unverified := deadlineHit && pending && ready >= desired
	if unverified && es.Verdict == v1alpha1.SpacePending {
		// Fail closed: a space not proven by the deadline is never a pass;
		// but nothing was compared, so it is not called changed either.
		es.Verdict = v1alpha1.SpaceUnverified
		es.Message = fmt.Sprintf("the probes were not answered within the progress deadline of %s: %s", p.progressDeadline(),
			cmpOr(es.Message, "no ready pod of each track to probe"))
	}
	spaceFailed := es.Verdict == v1alpha1.SpaceUnverified
	unverified = unverified || spaceFailed
	spaceChanged := es.Verdict == v1alpha1.SpaceChanged || spaceFailed
	p.recordVerdict()
	failed := p.analysisFailed()
	auto := p.in.Rollout.AutoRollback == nil || *p.in.Rollout.AutoRollback
	spaceReason := ReasonEmbeddingSpaceChanged
	spaceMsg := fmt.Sprintf("revision %s embeds in another vector space than stable: %s", c, es.Message)
	if spaceFailed {
		spaceReason = ReasonSpaceCheckFailed
		spaceMsg = fmt.Sprintf("the embedding-space check of revision %s could not complete, so it did not prove that it embeds in stable's vector space: %s", c, es.Message)
	}

	switch {
	case deadlineHit && auto && !unverified:
		p.rollback(ReasonProgressDeadlineExceeded, fmt.Sprintf("%d/%d canary pods ready after the progress deadline of %s", ready, desired, p.progressDeadline()))
		return
	case p.cmd == CommandAbort:
		p.use(fmt.Sprintf("rolled back canary %s at step %s", c, stepOf(p.st.CurrentStep, len(steps))))
		p.rollback(ReasonAborted, fmt.Sprintf("Aborted by abort token %q", p.token))
		return
	case spaceChanged && auto:
		p.rollback(spaceReason, spaceMsg)
		return
	case failed && auto:
		p.rollback(ReasonAnalysisFailed, p.failMessage())
		return
	case p.cmd == CommandRetry && (deadlineHit || failed || spaceChanged):
		p.use(fmt.Sprintf("retried revision %s from step 1", c))
		p.start("RetryStarted", fmt.Sprintf("Retrying revision %s from step 1 by retry token %q", c, p.token))
		return
	case p.cmd.promotes() && spaceChanged:
		if spaceFailed {
			p.decline(spaceMsg + "; fix what keeps the probes from being answered, then retry")
		} else {
			p.decline(spaceMsg + "; declare the change in spec.embedding.space to cut over instead")
		}
	case p.cmd.promotes() && pending:
		p.decline(fmt.Sprintf("the embedding-space check of revision %s has not passed yet; clients reach only stable until it does", c))
	case p.cmd == CommandPromoteFull:
		p.use(fmt.Sprintf("promoted revision %s at step %s, skipping the remaining steps", c, stepOf(p.st.CurrentStep, len(steps))))
		p.promote("PromotedManually", fmt.Sprintf("Promoting revision %s at step %s by promote-full token %q", c, stepOf(p.st.CurrentStep, len(steps)), p.token))
		return
	case p.cmd == CommandPromote:
		// Past the current step, whatever it waits for (a pause, the pods of
		// a setWeight, an analysis); the steps after it run as usual.
		from := p.st.CurrentStep
		p.use(fmt.Sprintf("moved canary %s past step %s (%s)", c, stepOf(from, len(steps)), describe(steps[from])))
		p.event(EventNormal, "StepPromoted", fmt.Sprintf("Moved canary %s past step %s (%s) by promote token %q", c, stepOf(from, len(steps)), describe(steps[from]), p.token))
		p.st.CurrentStep++
		if int(p.st.CurrentStep) == len(steps) {
			p.promote("PromotedManually", fmt.Sprintf("Promoting revision %s: promote token %q moved it past its last step", c, p.token))
			return
		}
		p.st.StepStartTime = p.now()
		p.st.CanaryWeight = weightAt(steps, p.st.CurrentStep)
		desired = CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
		msg := fmt.Sprintf("Advanced canary %s to step %s (%s)", c, stepOf(p.st.CurrentStep, len(steps)), describe(steps[p.st.CurrentStep]))
		p.set(TransitionAdvance, "StepAdvanced", msg)
		p.event(EventNormal, "StepAdvanced", msg)
	case p.cmd == CommandRetry:
		p.decline("the canary has not failed")
	}

	p.canaryReplicas = desired
	p.state = StateProgressing
	p.requeueIn(canaryRequeue)
	p.requeueAnalysis()
	switch {
	case spaceChanged:
		p.hold(spaceReason, spaceMsg+"; autoRollback is off, and clients reach only stable")
		return
	case deadlineHit:
		p.hold(ReasonProgressDeadlineExceeded, fmt.Sprintf("%d/%d canary pods ready after the progress deadline of %s; autoRollback is off", ready, desired, p.progressDeadline()))
		return
	case failed:
		p.hold(ReasonAnalysisFailed, p.failMessage()+"; autoRollback is off")
		return
	case p.in.Rollout.Paused:
		p.set(TransitionHold, "Paused", fmt.Sprintf("Canary %s paused at step %s by spec.rollout.paused", c, stepOf(p.st.CurrentStep, len(steps))))
		p.state = StatePaused
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
		msg := fmt.Sprintf("Advanced canary %s to step %s (%s)", c, stepOf(p.st.CurrentStep, len(steps)), describe(steps[p.st.CurrentStep]))
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
			p.wait("WaitingForCanaryPods", fmt.Sprintf("Step %s: %d/%d canary pods of %s ready", stepOf(n, total), ready, desired, c))
			if end, ok := p.deadline(); ok {
				p.requeueAt(end.Add(time.Second))
			}
			return false
		}
	case step.Pause != nil && step.Pause.Duration == nil:
		p.set(TransitionWait, "WaitingForPromote", fmt.Sprintf("Step %s: paused until the promote annotation", stepOf(n, total)))
		p.state = StatePaused
		return false
	case step.Pause != nil:
		end := p.stepStart().Add(step.Pause.Duration.Duration)
		if p.in.Now.Before(end) {
			p.wait("PauseInProgress", fmt.Sprintf("Step %s: pausing until %s", stepOf(n, total), end.UTC().Format(time.RFC3339)))
			p.requeueAt(end)
			return false
		}
	}
	if p.spacePending() {
		es := p.st.EmbeddingSpace
		msg := fmt.Sprintf("Step %s: checking that %s embeds in stable's space before clients reach it", stepOf(n, total), c)
		if es.Attempts > 0 {
			msg += fmt.Sprintf(" (%d failed probe attempts; last: %s)", es.Attempts, es.Message)
		}
		p.wait("WaitingForSpaceCheck", msg)
		p.requeueSpaceCheck()
		if end, ok := p.deadline(); ok {
			p.requeueAt(end.Add(time.Second))
		}
		return false
	}
	return p.analysisPassed(n, total)
}

// cutover runs a canary that declares another space than stable serves: it
// grows to full size as a preview on the canary Service, clients stay on
// stable, and a promote switches them over at once (see selection).
func (p *planner) cutover() {
	c := p.st.CanaryRevision
	p.recordSpaceCheck()
	es := p.spaceOf(c)
	p.st.CurrentStep = 0
	p.st.CanaryWeight = 100
	desired := max(p.in.Replicas, 0)
	ready := p.canaryReady()
	if cn := p.in.Canary; cn.Exists && cn.Revision == c && desired > cn.Replicas && p.transition != TransitionStart {
		p.st.StepStartTime = p.now() // a scale-up waits for new pods afresh
	}
	deadlineHit := false
	if end, ok := p.deadline(); ok && ready < desired {
		deadlineHit = p.in.Now.After(end)
	}
	auto := p.in.Rollout.AutoRollback == nil || *p.in.Rollout.AutoRollback
	to := orEmpty(es.CanarySpace)

	switch {
	case deadlineHit && auto:
		p.rollback(ReasonProgressDeadlineExceeded, fmt.Sprintf("%d/%d preview pods of space %s ready after the progress deadline of %s", ready, desired, to, p.progressDeadline()))
		return
	case p.cmd == CommandAbort:
		p.use(fmt.Sprintf("aborted the cutover to space %s", to))
		p.rollback(ReasonAborted, fmt.Sprintf("Cutover to space %s aborted by abort token %q", to, p.token))
		return
	case p.cmd == CommandRetry && deadlineHit:
		p.use(fmt.Sprintf("retried the cutover to space %s", to))
		p.start("RetryStarted", fmt.Sprintf("Retrying the cutover to space %s with revision %s by retry token %q", to, c, p.token))
		return
	case p.cmd.promotes() && ready >= desired:
		// A cutover has one step: promote and promote-full both switch.
		p.use(fmt.Sprintf("cut over to space %s", to))
		p.promote("CutoverPromoted", fmt.Sprintf("Cutting over to space %s by %s token %q: revision %s, previewed at full size, serves every client now", to, p.command, p.token, c))
		return
	case p.cmd.promotes():
		p.decline(fmt.Sprintf("the preview of space %s has %d/%d ready pods; promote once all are ready, so capacity never drops", to, ready, desired))
	case p.cmd == CommandRetry:
		p.decline("the cutover has not failed")
	}

	p.canaryReplicas = desired
	p.requeueIn(canaryRequeue)
	p.requeueSpaceCheck()
	switch {
	case deadlineHit:
		p.hold(ReasonProgressDeadlineExceeded, fmt.Sprintf("%d/%d preview pods of space %s ready after the progress deadline of %s; autoRollback is off", ready, desired, to, p.progressDeadline()))
	case ready < desired:
		p.wait("WaitingForCanaryPods", fmt.Sprintf("Cutover to space %s: %d/%d preview pods of %s ready", to, ready, desired, c))
		p.state = StateProgressing
		if end, ok := p.deadline(); ok {
			p.requeueAt(end.Add(time.Second))
		}
	default:
		p.set(TransitionWait, ReasonAwaitingCutover, fmt.Sprintf("Revision %s serves space %s on the canary Service (%d/%d pods ready) while clients stay on stable (space %s): re-index against it, then promote",
			c, to, ready, desired, orEmpty(es.Name)))
		p.state = StatePaused
	}
}

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// hold stops a failed canary where it is: a person must act (no autoRollback).
// Summarize reports it as Stalled, and warns once when that condition appears.
func (p *planner) hold(reason, msg string) {
	p.set(TransitionHold, reason, msg)
	p.state = StateHeld
}

func (p *planner) canaryReady() int32 {
	if cn := p.in.Canary; cn.Exists && cn.Revision == p.st.CanaryRevision {
		return cn.ReadyReplicas
	}
	return 0
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

// stepOf names step n of total as users read it, "2/4": 1-based, as kubectl
// rag shows it, while status.currentStep counts from 0. Past the last step
// (all passed) it stays at the last.
func stepOf(n int32, total int) string {
	return fmt.Sprintf("%d/%d", min(int(n)+1, total), total)
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
