package rollout

import "time"

// Requeue bounds. A canary in progress is always looked at again (pauses end,
// deadlines pass, analysis falls due) but never in a hot loop.
const (
	minRequeue    = time.Second
	canaryRequeue = 30 * time.Second
)

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

// deadline is when the current step's progress deadline passes.
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
