package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Decide plans one reconcile pass. It never fails. The controller calls it on
// every pass in which it could read the two tracks, whatever else failed (the
// template could not be built, an HPA list or a Secret read failed): what it
// could not compute is absent from Input, and Decide still returns a safe plan,
// so progress deadlines, aborts and rollbacks fire.
func Decide(in Input) Plan {
	p := &planner{in: in, st: *in.Memory.DeepCopy()}
	p.command, p.token, p.outranked = resolve(in.Tokens, in.Memory.LastHandled)
	p.cmd = p.command
	p.run()
	p.recordHandled()
	return p.finish()
}

type planner struct {
	in Input
	st v1alpha1.RolloutStatus

	canaryReplicas int32
	transition     Transition
	reason, msg    string
	// standing is the reason and message of the last thing decided: where the
	// rollout stands after the pass (a wait after an advance, say).
	standing Problem
	state    State
	events   []Event
	requeue  time.Duration

	// command is the pass's command and token its token (resolve);
	// outranked are the other new tokens' commands, ignored.
	command   Command
	token     string
	outranked []Command
	// cmd is the command still to be acted on or declined; used, did and
	// ignored say what became of command.
	cmd     Command
	used    bool
	did     string
	ignored string
}

func (p *planner) run() {
	p.transition = TransitionNone
	if p.in.DesiredRevision == "" {
		// The controller could not build the template: keep going where we are.
		p.in.DesiredRevision = p.st.StableRevision
		if p.st.CanaryRevision != "" {
			p.in.DesiredRevision = p.st.CanaryRevision
		}
	}

	if p.st.StableRevision == "" && !p.adopt() {
		if p.in.DesiredRevision == "" {
			// Nothing runs and nothing can be built: there is nothing to deploy.
			p.set(TransitionNone, "NoRevision", "No revision to deploy: the pod template could not be built")
			p.state = StateSteady
			p.decline("no revision is deployed yet")
			return
		}
		p.st.StableRevision = p.in.DesiredRevision
		p.st.EmbeddingSpace = &v1alpha1.EmbeddingSpaceStatus{Name: p.in.Space.Declared}
		p.set(TransitionInitialize, "Initialized", fmt.Sprintf("Deploying revision %s as stable", p.in.DesiredRevision))
		p.event(EventNormal, "Initialized", p.msg)
		p.steady()
		p.decline("no canary runs: the first revision is being deployed")
		return
	}

	if p.in.Rollout.Strategy == v1alpha1.StrategyRollingUpdate {
		p.rollingUpdate()
		return
	}

	switch s, c, d := p.st.StableRevision, p.st.CanaryRevision, p.in.DesiredRevision; {
	case c != "" && p.st.Promoting:
		p.promoting()
	case c != "" && c == s:
		// A promotion an earlier operator version began by switching stable
		// to the canary's revision: stable runs it, so it is done.
		p.dropCanary()
		p.set(TransitionFinish, "Promoted", fmt.Sprintf("Promoted revision %s (a promotion begun by an earlier operator version)", s))
		p.event(EventNormal, "Promoted", p.msg)
		p.decline("the promotion was already under way")
		p.steady()
	case c != "" && d == s:
		p.fastRollback()
	case c != "" && d != c:
		if p.blocked() {
			if p.cmd == CommandRetry {
				p.use(fmt.Sprintf("retried revision %s from step 1, replacing canary %s", d, c))
				p.start("RetryStarted", fmt.Sprintf("Retrying revision %s from step 1 (replacing canary %s) by retry token %q", d, c, p.token))
				return
			}
			p.event(EventNormal, "CanaryRemoved", fmt.Sprintf("Spec asks for rolled-back revision %s: removed canary %s", d, c))
			p.dropCanary()
			p.holdRolledBack()
			p.decline(fmt.Sprintf("the spec asks for rolled-back revision %s; retry it first", d))
			return
		}
		if p.in.Rollout.Paused {
			// Held where it is: the running canary keeps its step (and can
			// still fail); the new revision starts when the rollout resumes.
			p.runCanary()
			if p.transition == TransitionHold {
				p.msg += fmt.Sprintf("; revision %s waits for the rollout to resume", d)
				p.standing.Message = p.msg
			}
			return
		}
		p.start("CanaryRestarted", fmt.Sprintf("Spec changed during the canary of %s: restarting with revision %s", c, d))
	case c != "":
		p.runCanary()
	default:
		p.noCanary()
	}
}

// AdoptTracks picks, when the status was lost, which of a service's revision
// Deployments to take as stable (the one serving the most ready pods, then
// the larger, then by name) and as the canary (the next one that has
// replicas). adopt takes them from there.
func AdoptTracks(all []Track) (stable, canary Track) {
	sorted := slices.Clone(all)
	slices.SortStableFunc(sorted, func(a, b Track) int {
		if c := cmp.Compare(b.ReadyReplicas, a.ReadyReplicas); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Replicas, a.Replicas); c != 0 {
			return c
		}
		return cmp.Compare(a.Revision, b.Revision)
	})
	for _, t := range sorted {
		switch {
		case !t.Exists || t.Revision == "":
		case !stable.Exists:
			stable = t
		case !canary.Exists && t.Replicas > 0:
			canary = t
		}
	}
	return stable, canary
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
	// The status that recorded which tokens were handled is gone: a token
	// present now was written before, and a new canary must not act on it.
	p.decline("the status was rebuilt from the Deployments; tokens present then are not acted on")
	if p.st.EmbeddingSpace == nil && st.Revision == p.in.DesiredRevision {
		// Stable runs the template the spec asks for, which carries the
		// space it declares: what Initialize would have recorded (the
		// controller acts on a first revision before writing it, so a
		// manager killed in between leaves exactly this to adopt).
		p.st.EmbeddingSpace = &v1alpha1.EmbeddingSpaceStatus{Name: p.in.Space.Declared}
	}
	if p.st.CanaryRevision == "" && cn.Exists && cn.Revision != "" && cn.Replicas > 0 && cn.Revision != st.Revision {
		// The step is unknown: start the canary over, keeping its pods.
		p.st.CanaryRevision = cn.Revision
		p.st.CurrentStep = 0
		p.st.StepStartTime = p.now()
		p.st.Analysis = nil
		p.event(EventNormal, "Adopted", fmt.Sprintf("Adopted canary revision %s from its Deployment, restarting at step 1", cn.Revision))
	}
	if p.in.DesiredRevision == "" {
		p.in.DesiredRevision = p.st.StableRevision
		if p.st.CanaryRevision != "" {
			p.in.DesiredRevision = p.st.CanaryRevision
		}
	}
	return true
}

func (p *planner) rollingUpdate() {
	p.decline("no canary runs under strategy RollingUpdate")
	if p.st.CanaryRevision != "" {
		p.event(EventNormal, "CanaryRemoved", fmt.Sprintf("Strategy is RollingUpdate: removed canary %s", p.st.CanaryRevision))
		p.dropCanary()
	}
	d, s := p.in.DesiredRevision, p.st.StableRevision
	rolling := p.st.Retiring != nil && p.st.Retiring.Since == nil
	switch {
	case d != s && rolling:
		// One rolling update at a time: the next starts once this one is done.
		p.rolling(fmt.Sprintf("; revision %s starts once it is done", d))
		return
	case d != s && p.in.Rollout.Paused:
		p.set(TransitionHold, "Paused", fmt.Sprintf("Rolling update to %s not started: spec.rollout.paused holds the rollout", d))
		p.steady()
		p.state = StatePaused
		return
	case d != s:
		p.set(TransitionRollingUpdate, "RollingUpdate", fmt.Sprintf("Rolling from revision %s to %s", s, d))
		p.event(EventNormal, "RollingUpdate", p.msg)
		// A revision still retiring after a promotion goes at once: the one
		// that served until now shrinks instead.
		p.st.Retiring = &v1alpha1.RetiringRevision{Revision: s}
		p.st.StableRevision = d
		p.rolling("")
		return
	case rolling:
		p.rolling("")
		return
	}
	p.steady()
}

// rolling reports a rolling update under way: the new revision's Deployment
// grows as the surge allows while the old one shrinks as new pods become
// ready (retire, finish).
func (p *planner) rolling(more string) {
	ready, want := p.stableReady(), max(p.in.Replicas, 0)
	if ready >= want {
		p.steady() // done: retire lets the old revision go
		return
	}
	msg := fmt.Sprintf("Rolling update to revision %s: %d/%d of its pods ready, revision %s shrinks as they become ready%s",
		p.st.StableRevision, ready, want, p.st.Retiring.Revision, more)
	if p.transition == TransitionRollingUpdate {
		p.standing = Problem{Reason: "RollingUpdate", Message: msg}
	} else {
		p.set(TransitionWait, "RollingUpdate", msg)
	}
	p.state = StateProgressing
	p.canaryReplicas = 0
}

func (p *planner) noCanary() {
	d := p.in.DesiredRevision
	if d == p.st.StableRevision {
		p.steady()
		switch p.cmd {
		case CommandRetry:
			p.decline("nothing was rolled back")
		default:
			p.decline("no canary runs")
		}
		return
	}
	if p.blocked() {
		if p.cmd == CommandRetry {
			p.use(fmt.Sprintf("retried revision %s from step 1", d))
			p.start("RetryStarted", fmt.Sprintf("Retrying revision %s from step 1 by retry token %q", d, p.token))
			return
		}
		p.holdRolledBack()
		switch p.cmd {
		case CommandPromote, CommandPromoteFull:
			p.decline(fmt.Sprintf("revision %s was rolled back; retry it first", d))
		default:
			p.decline("no canary runs")
		}
		return
	}
	if p.in.Rollout.Paused {
		p.set(TransitionHold, "Paused", fmt.Sprintf("Canary of revision %s not started: spec.rollout.paused holds the rollout", d))
		p.state = StatePaused
		switch p.cmd {
		case CommandRetry:
			p.decline("nothing was rolled back")
		default:
			p.decline("no canary runs: spec.rollout.paused holds the rollout")
		}
		return
	}
	if name := p.space().Name; p.in.Space.Declared != name {
		p.start("CutoverStarted", fmt.Sprintf("Started cutover to space %s with revision %s (stable %s serves space %s): the canary Service previews it",
			orEmpty(p.in.Space.Declared), d, p.st.StableRevision, orEmpty(name)))
		return
	}
	p.start("CanaryStarted", fmt.Sprintf("Started canary of revision %s (stable %s)", d, p.st.StableRevision))
}

// runCanary runs the canary of Memory.CanaryRevision: a cutover when it
// declares another space than stable's, a canary by steps otherwise.
func (p *planner) runCanary() {
	if p.isCutover() {
		p.cutover()
		return
	}
	p.canary()
}

func (p *planner) steady() {
	p.canaryReplicas = 0
	if p.transition == TransitionNone {
		p.set(TransitionNone, "Steady", fmt.Sprintf("Stable revision %s", p.st.StableRevision))
	}
	p.state = StateSteady
}

func (p *planner) start(reason, msg string) {
	if r := p.st.Retiring; r != nil && r.Since != nil {
		// A new rollout starts: the revision retired by the last promotion
		// goes now, so the shared Service, which selects every revision
		// once the canary proves its space, never reaches it.
		p.st.Retiring = nil
	}
	p.st.CanaryRevision = p.in.DesiredRevision
	p.st.CurrentStep = 0
	p.st.CanaryWeight = 0
	p.st.StepStartTime = p.now()
	p.st.Analysis = nil
	p.newSpaceCheck(p.in.DesiredRevision)
	p.set(TransitionStart, reason, msg)
	p.event(EventNormal, reason, msg)
	p.runCanary()
}

func (p *planner) set(t Transition, reason, msg string) {
	p.standing = Problem{Reason: reason, Message: msg}
	// A wait after an advance in the same pass reports the advance.
	if t == TransitionWait && (p.transition == TransitionAdvance || p.transition == TransitionStart) {
		p.msg += "; " + msg
		return
	}
	p.transition, p.reason, p.msg = t, reason, msg
}

func (p *planner) wait(reason, msg string) {
	p.set(TransitionWait, reason, msg)
}

func (p *planner) event(typ, reason, msg string) {
	p.events = append(p.events, Event{Type: typ, Reason: reason, Message: msg})
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

func (p *planner) finish() Plan {
	cr := p.st.CanaryRevision
	canaryReplicas := p.canaryReplicas
	if cr == "" {
		canaryReplicas = 0
	}
	stableReplicas := max(p.in.Replicas, 0)
	keep := p.retire()
	retiring := ""
	if r := p.st.Retiring; r != nil {
		retiring = r.Revision
		if r.Since == nil {
			stableReplicas = RollingReplicas(stableReplicas, keep)
		}
	}
	// The canary track's share of the pods the shared Service sends clients
	// to; a track the Service does not select serves nobody.
	sel := p.selection()
	canaryReady, stableReady := int32(0), p.in.Stable.serving()
	if cr != "" {
		canaryReady = p.in.Canary.serving()
	}
	switch sel {
	case SelectStable:
		canaryReady = 0
	case SelectCanary:
		stableReady = 0
	}
	p.st.EffectiveWeight = EffectiveWeight(stableReady, canaryReady)
	if p.state == "" {
		p.state = StateProgressing
	}
	return Plan{
		StableRevision:   p.st.StableRevision,
		StableReplicas:   stableReplicas,
		CanaryRevision:   cr,
		CanaryReplicas:   canaryReplicas,
		RetiringRevision: retiring,
		RetiringReplicas: keep,
		Memory:           p.st,
		Transition:       p.transition,
		Reason:           p.reason,
		Message:          p.msg,
		Standing:         p.standing,
		State:            p.state,
		Selects:          sel,
		Events:           p.events,
		Command:          p.command,
		Token:            p.token,
		Outranked:        p.outranked,
		CommandUsed:      p.used,
		CommandIgnored:   p.declined(),
		RequeueAfter:     p.requeue,
	}
}
