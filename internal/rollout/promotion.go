package rollout

import (
	"fmt"
	"time"
)

// promote makes the canary's revision the stable one; its pods stay until the
// stable track has rolled out (promoting).
func (p *planner) promote(reason, msg string) {
	p.st.StableRevision = p.st.CanaryRevision
	p.st.CurrentStep = int32(len(p.steps()))
	p.st.StepStartTime = p.now()
	p.canaryReplicas = CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
	p.set(TransitionPromote, reason, msg)
	p.event(EventNormal, reason, msg)
	// Once this pass switched stable, the rollout stands where the next pass
	// finds it: the conditions say so now, not a pass later (a status write
	// that would change their words alone).
	p.standing = Problem{Reason: "WaitingForStableRollout", Message: promotingMessage(p.st.StableRevision)}
	p.state = StateProgressing
	p.requeue = 0
	p.requeueIn(canaryRequeue)
	p.decline("promotion started")
}

// promoting is phase two of a promotion: stable already runs the canary's
// revision (rolling with maxUnavailable 0); the canary pods stay until stable is
// rolled out so ready capacity never drops.
func (p *planner) promoting() {
	s := p.st.StableRevision
	p.canaryReplicas = CanaryReplicas(p.in.Replicas, p.st.CanaryWeight)
	switch p.cmd {
	case CommandAbort:
		p.decline("promotion is already under way; change the spec to roll forward or back")
	default:
		p.decline("promotion is already under way")
	}
	if st := p.in.Stable; st.Exists && st.Revision == s && st.RolledOut {
		// Stable runs the canary's template now, and so its space.
		if es := p.spaceOf(s); es.CanarySpace != es.Name {
			p.event(EventNormal, "CutoverFinished", fmt.Sprintf("Stable serves space %s (revision %s); the Service selects both tracks again", orEmpty(es.CanarySpace), s))
			es.Name = es.CanarySpace
		}
		p.dropCanary()
		p.set(TransitionFinish, "Promoted", fmt.Sprintf("Promoted revision %s: stable is rolled out, canary removed", s))
		p.event(EventNormal, "Promoted", p.msg)
		p.state = StateSteady
		if p.in.DesiredRevision != s {
			// The spec moved on during promotion: its canary starts now.
			p.noCanary()
		}
		return
	}
	p.set(TransitionWait, "WaitingForStableRollout", promotingMessage(s))
	p.state = StateProgressing
	if end, ok := p.deadline(); ok {
		if !p.in.Now.After(end) {
			p.requeueAt(end.Add(time.Second))
		} else {
			p.set(TransitionHold, "PromotionStalled", fmt.Sprintf("Promoting revision %s: stable has not rolled out within the progress deadline", s))
			p.state = StateHeld
		}
	}
	p.requeueIn(canaryRequeue)
}

func promotingMessage(rev string) string {
	return fmt.Sprintf("Promoting revision %s: waiting for the stable Deployment to roll out", rev)
}
