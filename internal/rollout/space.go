package rollout

import (
	"fmt"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Reasons of the embedding-space guard.
const (
	ReasonEmbeddingSpaceChanged  = "EmbeddingSpaceChanged"
	ReasonAwaitingCutover        = "AwaitingCutover"
	ReasonSpaceChangeNeedsCanary = "SpaceChangeNeedsCanary"
)

// SpaceInput is what the planner needs of the embedding space.
type SpaceInput struct {
	// Declared is spec.embedding.space.
	Declared string
	// Check is spec.rollout.spaceCheck.enabled: every canary proves on probe
	// texts that it embeds in stable's space before a client reaches it.
	Check bool
}

// Selection is which tracks the shared Service sends clients to.
type Selection string

// Selections of the shared Service.
const (
	// SelectBoth: both tracks, traffic split by ready pods.
	SelectBoth Selection = "Both"
	// SelectStable: the stable track only (a canary not yet proven to share
	// stable's space, or the preview of a cutover).
	SelectStable Selection = "Stable"
	// SelectCanary: the canary track only (a cutover being promoted, while
	// stable takes the new template).
	SelectCanary Selection = "Canary"
)

// spaceRetryMax bounds the backoff between failed probe attempts.
const spaceRetryMax = 30 * time.Second

// spaceBackoff is the wait after the n-th failed probe attempt: 1s, 2s, 4s ...
// up to spaceRetryMax.
func spaceBackoff(attempts int32) time.Duration {
	if attempts <= 0 {
		return 0
	}
	d := time.Second << min(attempts-1, 5)
	return min(d, spaceRetryMax)
}

// SpaceChangeProblem is the refusal of a declared space change under strategy
// RollingUpdate, which would serve both spaces at once; nil otherwise.
func SpaceChangeProblem(strategy v1alpha1.RolloutStrategy, declared string, memory v1alpha1.RolloutStatus) *Problem {
	es := memory.EmbeddingSpace
	if strategy != v1alpha1.StrategyRollingUpdate || es == nil || memory.StableRevision == "" || es.Name == declared {
		return nil
	}
	return &Problem{Reason: ReasonSpaceChangeNeedsCanary, Message: fmt.Sprintf(
		"spec.embedding.space changed from %q to %q under strategy RollingUpdate, which would serve both spaces at once: "+
			"a change of space needs strategy Canary (a cutover), or spec.embedding.space back to %q", es.Name, declared, es.Name)}
}

// SpaceCheckDue says whether the controller should probe both tracks before
// calling Decide: the running canary's space is not checked yet, a pod of each
// track is ready to answer, and the backoff after a failed attempt is over.
func SpaceCheckDue(in Input) bool {
	m := in.Memory
	c, es := m.CanaryRevision, m.EmbeddingSpace
	if !in.Space.Check || in.Rollout.Strategy == v1alpha1.StrategyRollingUpdate || c == "" || c == m.StableRevision || m.Promoting {
		return false
	}
	if es == nil || es.Revision != c || es.Verdict != v1alpha1.SpacePending {
		return false
	}
	if cn := in.Canary; !cn.Exists || cn.Revision != c || cn.ReadyReplicas == 0 {
		return false
	}
	if st := in.Stable; !st.Exists || st.Revision != m.StableRevision || st.ReadyReplicas == 0 {
		return false
	}
	return es.Time == nil || es.Attempts == 0 || !in.Now.Before(es.Time.Add(spaceBackoff(es.Attempts)))
}

// space is the embedding-space record, made when there is none (a service
// from before the guard, a lost status): stable is taken to serve the space
// the spec declares.
func (p *planner) space() *v1alpha1.EmbeddingSpaceStatus {
	if p.st.EmbeddingSpace == nil {
		p.st.EmbeddingSpace = &v1alpha1.EmbeddingSpaceStatus{Name: p.in.Space.Declared}
	}
	return p.st.EmbeddingSpace
}

// newSpaceCheck starts the record of the canary revision c: the space it
// declares and, with the check on, a Pending verdict.
func (p *planner) newSpaceCheck(c string) {
	es := p.space()
	*es = v1alpha1.EmbeddingSpaceStatus{Name: es.Name, CanarySpace: p.in.Space.Declared, Revision: c}
	switch {
	case es.CanarySpace != es.Name:
		es.Verdict = v1alpha1.SpacePending
		if !p.in.Space.Check {
			es.Verdict, es.Message = "", "not checked: spec.rollout.spaceCheck.enabled is false"
		}
	case p.in.Space.Check:
		es.Verdict = v1alpha1.SpacePending
	default:
		es.Message = "not checked: spec.rollout.spaceCheck.enabled is false"
	}
}

// spaceOf is the record of the running canary, made when it has none (a
// canary adopted or running since before the guard): it then declares
// stable's space and its check is pending.
func (p *planner) spaceOf(c string) *v1alpha1.EmbeddingSpaceStatus {
	if es := p.space(); es.Revision != c {
		name := es.Name
		*es = v1alpha1.EmbeddingSpaceStatus{Name: name, CanarySpace: name, Revision: c}
		if p.in.Space.Check {
			es.Verdict = v1alpha1.SpacePending
		}
	}
	return p.st.EmbeddingSpace
}

// cutover: the running canary declares another space than stable serves.
func (p *planner) isCutover() bool {
	c := p.st.CanaryRevision
	if c == "" {
		return false
	}
	es := p.spaceOf(c)
	return es.CanarySpace != es.Name
}

// spacePending: the canary has not (yet) proven that it shares stable's space.
func (p *planner) spacePending() bool {
	es := p.spaceOf(p.st.CanaryRevision)
	return p.in.Space.Check && es.Verdict != v1alpha1.SpaceCompatible
}

// recordSpaceCheck folds this pass's check of the canary into the record: a
// failed attempt (Pending) counts toward the backoff; a verdict is kept with
// its numbers.
func (p *planner) recordSpaceCheck() {
	v, c := p.in.SpaceVerdict, p.st.CanaryRevision
	if v == nil || c == "" || v.Revision != c {
		return
	}
	es := p.spaceOf(c)
	if es.Verdict != v1alpha1.SpacePending {
		return // decided before; a verdict is never taken twice
	}
	switch v.Verdict {
	case v1alpha1.SpaceCompatible, v1alpha1.SpaceChanged:
		name, canarySpace, attempts := es.Name, es.CanarySpace, es.Attempts
		*es = *v.DeepCopy()
		es.Name, es.CanarySpace, es.Revision, es.Attempts = name, canarySpace, c, attempts
		switch {
		case canarySpace != name:
			p.event(EventNormal, "EmbeddingSpaceChecked", fmt.Sprintf("Cutover preview %s (space %s) against stable (space %s): %s", c, orEmpty(canarySpace), orEmpty(name), v.Message))
		case v.Verdict == v1alpha1.SpaceCompatible:
			p.event(EventNormal, "EmbeddingSpaceCompatible", fmt.Sprintf("Revision %s embeds in stable's space: %s; clients now reach both tracks", c, v.Message))
		}
	default:
		es.Attempts++
		es.Time, es.Message = v.Time.DeepCopy(), v.Message
		if es.Attempts == 1 {
			p.event(EventWarning, "EmbeddingSpaceProbeFailed", fmt.Sprintf("Probing revision %s failed, retrying with backoff until the progress deadline: %s", c, v.Message))
		}
	}
}

// requeueSpaceCheck looks again when the next probe attempt is due.
func (p *planner) requeueSpaceCheck() {
	es := p.st.EmbeddingSpace
	if es == nil || es.Verdict != v1alpha1.SpacePending || es.Attempts == 0 || es.Time == nil {
		return
	}
	p.requeueAt(es.Time.Add(spaceBackoff(es.Attempts)))
}

// selection is which revisions the shared Service selects: stable alone
// when no canary runs (a retiring or removed revision's pods, still serving
// what reached them, get no new clients); both tracks once a canary proved
// stable's space; the canary alone while a cutover is handed over. During a
// rolling update both revisions serve.
func (p *planner) selection() Selection {
	c := p.st.CanaryRevision
	if c == "" {
		if r := p.st.Retiring; r != nil && r.Since == nil {
			return SelectBoth
		}
		return SelectStable
	}
	cutover := p.isCutover()
	if p.st.Promoting && cutover {
		return SelectCanary
	}
	if cutover || p.spacePending() {
		return SelectStable
	}
	return SelectBoth
}

func orEmpty(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
