package rollout

import (
	"fmt"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// DefaultScaleDownDelay applies when the spec leaves scaleDownDelay unset.
const DefaultScaleDownDelay = 30 * time.Second

// promote starts the handover of the service to the canary's revision: its
// Deployment grows to full size while stable keeps its own, and once all of
// its pods are ready one decision makes it stable (promoting). A canary
// already at full size is handed over in this very pass.
func (p *planner) promote(reason, msg string) {
	p.st.Promoting = true
	p.st.CurrentStep = int32(len(p.steps()))
	p.st.StepStartTime = p.now()
	p.set(TransitionPromote, reason, msg)
	p.event(EventNormal, reason, msg)
	p.requeue = 0
	p.decline("promotion started")
	p.promoting()
}

// promoting grows the canary's Deployment to spec.replicas; when every pod is
// ready, the canary's revision becomes stable (handover) and the previous
// stable revision retires, keeping its pods for scaleDownDelay. No pod is
// created for a revision that already runs at full size, and stable keeps
// its full size until the handover, so ready capacity never drops.
func (p *planner) promoting() {
	c := p.st.CanaryRevision
	p.canaryReplicas = max(p.in.Replicas, 0)
	switch p.cmd {
	case CommandAbort:
		// Stable was never touched: an abort is an ordinary rollback.
		p.use(fmt.Sprintf("rolled back canary %s during its promotion", c))
		p.rollback(ReasonAborted, fmt.Sprintf("Aborted during promotion by abort token %q", p.token))
		return
	case CommandNone:
	default:
		p.decline("promotion is already under way")
	}
	ready := p.canaryReady()
	if cn := p.in.Canary; cn.Exists && cn.Revision == c && cn.Replicas >= p.canaryReplicas && ready >= p.canaryReplicas {
		p.handover()
		return
	}
	msg := promotingMessage(c, ready, p.canaryReplicas)
	if p.transition == TransitionPromote {
		// The pass is told as the promotion; where it stands is this wait.
		p.standing = Problem{Reason: ReasonPromoting, Message: msg}
	} else {
		p.set(TransitionWait, ReasonPromoting, msg)
	}
	p.state = StateProgressing
	p.requeueIn(canaryRequeue)
	if end, ok := p.deadline(); ok {
		if !p.in.Now.After(end) {
			p.requeueAt(end.Add(time.Second))
			return
		}
		auto := p.in.Rollout.AutoRollback == nil || *p.in.Rollout.AutoRollback
		stalled := fmt.Sprintf("%d/%d pods of revision %s ready after the progress deadline of %s", ready, p.canaryReplicas, c, p.progressDeadline())
		if auto {
			// Stable still serves at full size: nothing was lost but time.
			p.rollback(ReasonProgressDeadlineExceeded, "promotion stalled: "+stalled)
			return
		}
		p.set(TransitionHold, "PromotionStalled", "Promotion stalled: "+stalled+"; autoRollback is off, stable keeps serving")
		p.state = StateHeld
	}
}

// handover makes the canary's revision stable in one decision: the Services
// follow it, and the previous stable revision keeps its pods until
// scaleDownDelay has passed.
func (p *planner) handover() {
	old, c := p.st.StableRevision, p.st.CanaryRevision
	es := p.spaceOf(c)
	if es.CanarySpace != es.Name {
		p.event(EventNormal, "CutoverFinished", fmt.Sprintf("Revision %s serves space %s as stable; revision %s (space %s) no longer serves",
			c, orEmpty(es.CanarySpace), old, orEmpty(es.Name)))
		es.Name = es.CanarySpace
	}
	p.st.StableRevision = c
	p.st.Retiring = &v1alpha1.RetiringRevision{Revision: old, Since: p.now()}
	p.st.Promoting = false
	p.dropCanary()
	p.set(TransitionFinish, "Promoted", fmt.Sprintf("Promoted revision %s: its pods now serve as stable; revision %s is removed after %s",
		c, old, p.scaleDownDelay()))
	p.event(EventNormal, "Promoted", p.msg)
	p.state = StateSteady
	if p.in.DesiredRevision != c {
		// The spec moved on during promotion: its canary starts now.
		p.noCanary()
	}
}

func promotingMessage(rev string, ready, want int32) string {
	return fmt.Sprintf("Promoting revision %s: %d/%d of its pods ready; it serves as stable once all are", rev, ready, want)
}

// scaleDownDelay is how long a retired stable revision keeps its pods.
func (p *planner) scaleDownDelay() time.Duration {
	if d := p.in.Rollout.ScaleDownDelay; d != nil {
		return max(d.Duration, 0)
	}
	return DefaultScaleDownDelay
}

// retire decides the size of the retiring revision, or lets it go: after a
// handover it keeps its full size until scaleDownDelay has passed; under
// RollingUpdate it shrinks as the new revision's pods become ready, never
// below what keeps spec.replicas ready. It returns the replicas it keeps.
func (p *planner) retire() int32 {
	r := p.st.Retiring
	if r == nil {
		return 0
	}
	if r.Revision == p.st.StableRevision || r.Revision == p.st.CanaryRevision {
		// Serving again (a rollback to it started a canary of it): not retiring.
		p.st.Retiring = nil
		return 0
	}
	if r.Since == nil {
		keep := RetiringReplicas(p.in.Replicas, p.stableReady())
		if keep == 0 && p.stableReady() >= p.in.Replicas {
			p.st.Retiring = nil
			return 0
		}
		p.requeueIn(canaryRequeue)
		return keep
	}
	end := r.Since.Add(p.scaleDownDelay())
	if !p.in.Now.Before(end) {
		p.st.Retiring = nil
		return 0
	}
	p.requeueAt(end)
	return max(p.in.Replicas, 0)
}

// stableReady counts the ready pods of the stable revision.
func (p *planner) stableReady() int32 {
	if st := p.in.Stable; st.Exists && st.Revision == p.st.StableRevision {
		return st.ReadyReplicas
	}
	return 0
}

// RetiringReplicas is the size of the old revision during a rolling update:
// enough that its ready pods and the new revision's together keep replicas
// ready (maxUnavailable 0).
func RetiringReplicas(replicas, newReady int32) int32 {
	return max(replicas-max(newReady, 0), 0)
}

// RollingReplicas is the size of the new revision during a rolling update:
// as many pods as the surge allows next to the old revision's.
func RollingReplicas(replicas, retiring int32) int32 {
	return max(min(replicas, replicas+MaxSurge(replicas)-retiring), 0)
}
