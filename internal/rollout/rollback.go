package rollout

import (
	"fmt"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// rollback removes the canary at once, leaves stable as it is and blocks the
// canary's revision until the spec changes or retry is asked for.
func (p *planner) rollback(reason, msg string) {
	c := p.st.CanaryRevision
	p.st.Rollback = &v1alpha1.RollbackStatus{Revision: c, Reason: reason, Message: msg, Time: *p.now()}
	p.dropCanary()
	p.set(TransitionRollback, reason, fmt.Sprintf("Rolled back canary %s: %s", c, msg))
	p.event(EventWarning, reason, p.msg)
	p.state = StateRolledBack
	p.requeue = 0
	switch p.cmd {
	case CommandAbort:
		p.decline("the canary was already rolled back")
	case CommandRetry:
		p.decline("the canary was rolled back in this pass; retry again to restart it")
	default:
		p.decline("the canary was rolled back")
	}
}

// fastRollback: the spec went back to the stable revision during a canary.
func (p *planner) fastRollback() {
	c := p.st.CanaryRevision
	p.dropCanary()
	p.set(TransitionFastRollback, "FastRollback", fmt.Sprintf("Spec is back to stable revision %s: removed canary %s without steps", p.st.StableRevision, c))
	p.event(EventNormal, "FastRollback", p.msg)
	p.state = StateSteady
	switch p.cmd {
	case CommandRetry:
		p.decline("the spec is back to the stable revision")
	default:
		p.decline("the canary was removed: the spec is back to the stable revision")
	}
}

func (p *planner) dropCanary() {
	p.st.CanaryRevision = ""
	p.st.Promoting = false
	p.st.CurrentStep = 0
	p.st.CanaryWeight = 0
	p.st.StepStartTime = nil
	p.canaryReplicas = 0
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
	p.state = StateRolledBack
}
