package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

func TestCanaryReplicas(t *testing.T) {
	for _, c := range []struct{ replicas, weight, want int32 }{
		{0, 20, 0}, {0, 100, 0}, {-1, 50, 0}, {3, 0, 0},
		{1, 1, 1}, {3, 20, 1}, {5, 20, 1}, {10, 20, 2}, {11, 20, 3},
		{3, 34, 2}, {3, 33, 1}, {3, 50, 2}, {4, 50, 2}, {3, 67, 3},
		{3, 100, 3}, {7, 150, 7}, {1000, 1, 10}, {1000, 99, 990}, {1000, 100, 1000},
	} {
		if got := CanaryReplicas(c.replicas, c.weight); got != c.want {
			t.Errorf("CanaryReplicas(%d, %d) = %d, want %d", c.replicas, c.weight, got, c.want)
		}
	}
}

func TestEffectiveWeight(t *testing.T) {
	for _, c := range []struct{ stable, canary, want int32 }{
		{0, 0, 0}, {5, 0, 0}, {0, 3, 100}, {3, 1, 25}, {4, 1, 20}, {5, 1, 17},
		{2, 1, 33}, {1, 2, 67}, {1, 1, 50}, {7, 1, 13}, {199, 1, 1}, {-2, 1, 100},
	} {
		if got := EffectiveWeight(c.stable, c.canary); got != c.want {
			t.Errorf("EffectiveWeight(%d, %d) = %d, want %d", c.stable, c.canary, got, c.want)
		}
	}
}

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-d)); return &t }

func tableSpec() v1alpha1.RolloutSpec {
	return v1alpha1.RolloutSpec{
		Strategy:         v1alpha1.StrategyCanary,
		Steps:            []v1alpha1.RolloutStep{weightStep(25), pauseStep(30 * time.Second), weightStep(50), {Pause: &v1alpha1.PauseStep{}}},
		ProgressDeadline: metav1.Duration{Duration: 2 * time.Minute},
	}
}

// base: stable "a" healthy with 4 pods, spec unchanged.
func base() Input {
	return Input{
		Now: now, Replicas: 4, Rollout: tableSpec(), DesiredRevision: "a",
		Memory: v1alpha1.RolloutStatus{StableRevision: "a"},
		Stable: Track{Revision: "a", Exists: true, Replicas: 4, ReadyReplicas: 4, UpdatedReplicas: 4, AvailableReplicas: 4, RolledOut: true},
	}
}

// running: a canary of "b" at step, started startAgo, with ready canary pods.
func running(step int32, startAgo time.Duration, ready int32) func(*Input) {
	return func(in *Input) {
		in.DesiredRevision = "b"
		in.Memory.CanaryRevision = "b"
		in.Memory.CurrentStep = step
		in.Memory.CanaryWeight = weightAt(in.Rollout.Steps, step)
		in.Memory.StepStartTime = ago(startAgo)
		desired := CanaryReplicas(in.Replicas, in.Memory.CanaryWeight)
		in.Canary = Track{Revision: "b", Exists: true, Replicas: desired, ReadyReplicas: ready, UpdatedReplicas: desired}
	}
}

func analysisOn(policy v1alpha1.NoDataPolicy) func(*Input) {
	return func(in *Input) {
		in.Rollout.Analysis = &v1alpha1.AnalysisSpec{
			Interval: metav1.Duration{Duration: 30 * time.Second}, MinRequests: ptr.To[int64](20),
			OnNoData: policy, FailureLimit: ptr.To[int32](1),
		}
	}
}

func recorded(v v1alpha1.Verdict, failures int32, at time.Duration) func(*Input) {
	return func(in *Input) {
		in.Memory.Analysis = &v1alpha1.AnalysisStatus{Revision: "b", Verdict: v, Failures: failures, Time: *ago(at)}
	}
}

func newVerdict(rev string, v v1alpha1.Verdict, at time.Duration) func(*Input) {
	return func(in *Input) {
		in.Verdict = &v1alpha1.AnalysisStatus{Revision: rev, Verdict: v, Time: *ago(at), Message: "m"}
	}
}

func noAuto(in *Input)        { in.Rollout.AutoRollback = new(bool) }
func paused(in *Input)        { in.Rollout.Paused = true }
func promoteAn(in *Input)     { token(CommandPromote, "t1")(in) }
func promoteFullAn(in *Input) { token(CommandPromoteFull, "t1")(in) }
func abortAn(in *Input)       { token(CommandAbort, "t1")(in) }
func retryAn(in *Input)       { token(CommandRetry, "t1")(in) }

// token sets a command annotation's token.
func token(c Command, t string) func(*Input) {
	return func(in *Input) {
		if in.Tokens == nil {
			in.Tokens = map[Command]string{}
		}
		in.Tokens[c] = t
	}
}

// handled records tokens as handled in the memory.
func handled(h v1alpha1.HandledCommands) func(*Input) {
	return func(in *Input) { in.Memory.LastHandled = &h }
}

func rolledBack(rev string) func(*Input) {
	return func(in *Input) {
		in.DesiredRevision = rev
		in.Memory.Rollback = &v1alpha1.RollbackStatus{Revision: rev, Reason: ReasonAnalysisFailed, Time: *ago(time.Hour)}
		in.Canary = Track{Revision: rev, Exists: true}
	}
}

// promoting: the canary "b" passed its steps and grows to full size, stable
// "a" keeps its own; ready of its 4 pods are ready.
func promoting(ready int32, startAgo time.Duration) func(*Input) {
	return func(in *Input) {
		running(4, startAgo, ready)(in)
		in.Memory.Promoting = true
		in.Memory.CanaryWeight = 50
		in.Canary.Replicas = 4
	}
}

type want struct {
	transition     Transition
	reason         string
	stable, canary string
	canaryReplicas int32
	step           int32
	state          State
	rollback       string   // reason of status.rollback, "" for none
	ignored        bool     // the command was not acted on (and says why)
	events         []string // reasons, in order
	selects        Selection
}

type decideCase struct {
	name  string
	setup []func(*Input)
	want  want
	check func(*testing.T, Plan)
}

func TestDecide(t *testing.T) {
	cases := []decideCase{
		{name: "steady", want: want{transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady}},
		{name: "replicas change only: no canary",
			setup: []func(*Input){func(in *Input) { in.Replicas = 7; in.Stable.RolledOut = false }},
			want:  want{transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady},
			check: func(t *testing.T, p Plan) {
				if p.StableReplicas != 7 {
					t.Errorf("stable replicas %d, want 7", p.StableReplicas)
				}
			}},
		{name: "first deploy",
			setup: []func(*Input){func(in *Input) { in.Memory = v1alpha1.RolloutStatus{}; in.Stable = Track{} }},
			want:  want{transition: TransitionInitialize, reason: "Initialized", stable: "a", state: StateSteady, events: []string{"Initialized"}}},
		{name: "first deploy: a command is declined, not dropped",
			setup: []func(*Input){func(in *Input) { in.Memory = v1alpha1.RolloutStatus{}; in.Stable = Track{} }, promoteAn},
			want:  want{ignored: true, transition: TransitionInitialize, reason: "Initialized", stable: "a", state: StateSteady, events: []string{"Initialized"}}},
		{name: "status lost mid-canary: a token present is not acted on by the adopted canary",
			setup: []func(*Input){running(3, time.Hour, 2), func(in *Input) { in.Memory = v1alpha1.RolloutStatus{} }, promoteFullAn},
			want:  want{ignored: true, transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"Adopted", "Adopted", "StepAdvanced"}},
			check: func(t *testing.T, p Plan) {
				if p.Memory.LastHandled == nil || p.Memory.LastHandled.PromoteFull != "t1" {
					t.Errorf("handled %+v, want the token recorded", p.Memory.LastHandled)
				}
			}},
		{name: "a token handled before the canary started does nothing to it",
			setup: []func(*Input){func(in *Input) { in.DesiredRevision = "b" }, promoteFullAn, handled(v1alpha1.HandledCommands{PromoteFull: "t1"})},
			want:  want{transition: TransitionStart, reason: "CanaryStarted", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, events: []string{"CanaryStarted"}}},
		{name: "first pass without a buildable template: nothing to deploy",
			setup: []func(*Input){func(in *Input) { in.Memory = v1alpha1.RolloutStatus{}; in.Stable = Track{}; in.DesiredRevision = "" }},
			want:  want{transition: TransitionNone, reason: "NoRevision", state: StateSteady}},
		{name: "lost status: adopt stable and canary from labels",
			setup: []func(*Input){func(in *Input) {
				in.Memory = v1alpha1.RolloutStatus{}
				in.DesiredRevision = "b"
				in.Canary = Track{Revision: "b", Exists: true, Replicas: 1, ReadyReplicas: 1}
			}},
			want: want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"Adopted", "Adopted", "StepAdvanced"}}},
		{name: "template change starts a canary",
			setup: []func(*Input){func(in *Input) { in.DesiredRevision = "b" }},
			want:  want{transition: TransitionStart, reason: "CanaryStarted", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, events: []string{"CanaryStarted"}},
			check: func(t *testing.T, p Plan) {
				if p.Memory.CanaryWeight != 25 || !p.Memory.StepStartTime.Time.Equal(now) {
					t.Errorf("weight %d start %v, want 25 at now", p.Memory.CanaryWeight, p.Memory.StepStartTime)
				}
			}},
		{name: "paused: a template change does not start a canary",
			setup: []func(*Input){paused, func(in *Input) { in.DesiredRevision = "b" }},
			want:  want{transition: TransitionHold, reason: "Paused", stable: "a", state: StatePaused}},
		{name: "paused: a spec edit mid-canary keeps the running canary where it is",
			setup: []func(*Input){running(1, time.Hour, 1), paused, func(in *Input) { in.DesiredRevision = "c" }},
			want:  want{transition: TransitionHold, reason: "Paused", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StatePaused}},
		{name: "paused: a spec back to stable still removes the canary",
			setup: []func(*Input){running(1, time.Hour, 1), paused, func(in *Input) { in.DesiredRevision = "a" }},
			want:  want{transition: TransitionFastRollback, reason: "FastRollback", stable: "a", state: StateSteady, events: []string{"FastRollback"}}},
		{name: "paused: rolling update waits",
			setup: []func(*Input){paused, func(in *Input) { in.DesiredRevision = "b"; in.Rollout.Strategy = v1alpha1.StrategyRollingUpdate }},
			want:  want{transition: TransitionHold, reason: "Paused", stable: "a", state: StatePaused}},
		{name: "rolling update skips the canary",
			setup: []func(*Input){func(in *Input) { in.DesiredRevision = "b"; in.Rollout.Strategy = v1alpha1.StrategyRollingUpdate }},
			want:  want{transition: TransitionRollingUpdate, reason: "RollingUpdate", stable: "b", state: StateProgressing, events: []string{"RollingUpdate"}, selects: SelectBoth},
			check: func(t *testing.T, p Plan) {
				// 4 replicas, surge 1: one new pod next to the 4 old ones.
				if p.StableReplicas != 1 || p.RetiringRevision != "a" || p.RetiringReplicas != 4 {
					t.Errorf("sizes: new %d, retiring %s x%d; want b x1 next to a x4", p.StableReplicas, p.RetiringRevision, p.RetiringReplicas)
				}
			}},
		{name: "rolling update: the old revision shrinks as new pods become ready",
			setup: []func(*Input){func(in *Input) {
				in.DesiredRevision, in.Rollout.Strategy = "b", v1alpha1.StrategyRollingUpdate
				in.Memory = v1alpha1.RolloutStatus{StableRevision: "b", Retiring: &v1alpha1.RetiringRevision{Revision: "a"}}
				in.Retiring, in.Stable = in.Stable, Track{Revision: "b", Exists: true, Replicas: 2, ReadyReplicas: 2}
			}},
			want: want{transition: TransitionWait, reason: "RollingUpdate", stable: "b", state: StateProgressing, selects: SelectBoth},
			check: func(t *testing.T, p Plan) {
				if p.StableReplicas != 3 || p.RetiringRevision != "a" || p.RetiringReplicas != 2 {
					t.Errorf("sizes: new %d, retiring %s x%d; want b x3 next to a x2", p.StableReplicas, p.RetiringRevision, p.RetiringReplicas)
				}
			}},
		{name: "rolling update: done once the new revision is ready at full size",
			setup: []func(*Input){func(in *Input) {
				in.DesiredRevision, in.Rollout.Strategy = "b", v1alpha1.StrategyRollingUpdate
				in.Memory = v1alpha1.RolloutStatus{StableRevision: "b", Retiring: &v1alpha1.RetiringRevision{Revision: "a"}}
				in.Stable = Track{Revision: "b", Exists: true, Replicas: 4, ReadyReplicas: 4}
			}},
			want: want{transition: TransitionNone, reason: "Steady", stable: "b", state: StateSteady},
			check: func(t *testing.T, p Plan) {
				if p.StableReplicas != 4 || p.RetiringRevision != "" || p.Memory.Retiring != nil {
					t.Errorf("new %d, retiring %q %+v; want b x4 alone", p.StableReplicas, p.RetiringRevision, p.Memory.Retiring)
				}
			}},
		{name: "rolling update: a change during one waits for it",
			setup: []func(*Input){func(in *Input) {
				in.DesiredRevision, in.Rollout.Strategy = "c", v1alpha1.StrategyRollingUpdate
				in.Memory = v1alpha1.RolloutStatus{StableRevision: "b", Retiring: &v1alpha1.RetiringRevision{Revision: "a"}}
				in.Retiring, in.Stable = in.Stable, Track{Revision: "b", Exists: true, Replicas: 1, ReadyReplicas: 0}
			}},
			want: want{transition: TransitionWait, reason: "RollingUpdate", stable: "b", state: StateProgressing, selects: SelectBoth}},
		{name: "switch to rolling update during a canary removes it",
			setup: []func(*Input){running(1, time.Second, 1), func(in *Input) { in.Rollout.Strategy = v1alpha1.StrategyRollingUpdate }},
			want:  want{transition: TransitionRollingUpdate, reason: "RollingUpdate", stable: "b", state: StateProgressing, events: []string{"CanaryRemoved", "RollingUpdate"}, selects: SelectBoth}},
		{name: "setWeight done: advance",
			setup: []func(*Input){running(0, time.Minute, 1)},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"StepAdvanced"}}},
		{name: "setWeight waiting for pods",
			setup: []func(*Input){running(0, 30*time.Second, 0)},
			want:  want{transition: TransitionWait, reason: "WaitingForCanaryPods", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing},
			check: func(t *testing.T, p Plan) {
				if p.RequeueAfter != 30*time.Second {
					t.Errorf("requeue %s, want 30s", p.RequeueAfter)
				}
			}},
		{name: "progress deadline: rollback",
			setup: []func(*Input){running(0, 3*time.Minute, 0)},
			want:  want{transition: TransitionRollback, reason: ReasonProgressDeadlineExceeded, stable: "a", state: StateRolledBack, rollback: ReasonProgressDeadlineExceeded, events: []string{ReasonProgressDeadlineExceeded}}},
		{name: "progress deadline while paused: still rollback",
			setup: []func(*Input){running(2, 3*time.Minute, 1), paused},
			want:  want{transition: TransitionRollback, reason: ReasonProgressDeadlineExceeded, stable: "a", state: StateRolledBack, rollback: ReasonProgressDeadlineExceeded, events: []string{ReasonProgressDeadlineExceeded}}},
		{name: "progress deadline beats a promote",
			setup: []func(*Input){running(0, 3*time.Minute, 0), promoteAn},
			want:  want{ignored: true, transition: TransitionRollback, reason: ReasonProgressDeadlineExceeded, stable: "a", state: StateRolledBack, rollback: ReasonProgressDeadlineExceeded, events: []string{ReasonProgressDeadlineExceeded}}},
		{name: "progress deadline without autoRollback: hold degraded",
			setup: []func(*Input){running(0, 3*time.Minute, 0), noAuto},
			want:  want{transition: TransitionHold, reason: ReasonProgressDeadlineExceeded, stable: "a", canary: "b", canaryReplicas: 1, state: StateHeld}},
		{name: "old step with all pods ready is no deadline",
			setup: []func(*Input){running(2, time.Hour, 2)},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 3, state: StatePaused, events: []string{"StepAdvanced"}}},
		{name: "pause in progress",
			setup: []func(*Input){running(1, 10*time.Second, 1)},
			want:  want{transition: TransitionWait, reason: "PauseInProgress", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing},
			check: func(t *testing.T, p Plan) {
				if p.RequeueAfter != 20*time.Second {
					t.Errorf("requeue %s, want 20s (pause end)", p.RequeueAfter)
				}
			}},
		{name: "pause over: advance and scale",
			setup: []func(*Input){running(1, 31*time.Second, 1)},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 2, state: StateProgressing, events: []string{"StepAdvanced"}}},
		{name: "pause without duration waits for promote",
			setup: []func(*Input){running(3, time.Hour, 2)},
			want:  want{transition: TransitionWait, reason: "WaitingForPromote", stable: "a", canary: "b", canaryReplicas: 2, step: 3, state: StatePaused}},
		{name: "promote at the last step's pause promotes: the canary grows to full size",
			setup: []func(*Input){running(3, time.Hour, 2), promoteAn},
			want:  want{transition: TransitionPromote, reason: "PromotedManually", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, events: []string{"StepPromoted", "PromotedManually"}}},
		{name: "promote moves past a timed pause only",
			setup: []func(*Input){running(1, 10*time.Second, 1), promoteAn},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 2, state: StateProgressing, events: []string{"StepPromoted", "StepAdvanced"}}},
		{name: "promote moves past a setWeight's wait for pods, the next step runs as usual",
			setup: []func(*Input){running(0, time.Second, 0), promoteAn},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"StepPromoted", "StepAdvanced"}}},
		{name: "promote moves one step while paused, and the rollout stays paused",
			setup: []func(*Input){running(0, time.Second, 0), paused, promoteAn},
			want:  want{transition: TransitionHold, reason: "Paused", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StatePaused, events: []string{"StepPromoted", "StepAdvanced"}}},
		{name: "promote-full skips every remaining step",
			setup: []func(*Input){running(0, time.Second, 0), promoteFullAn},
			want:  want{transition: TransitionPromote, reason: "PromotedManually", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, events: []string{"PromotedManually"}}},
		{name: "promote-full acts while paused",
			setup: []func(*Input){running(0, time.Second, 0), paused, promoteFullAn},
			want:  want{transition: TransitionPromote, reason: "PromotedManually", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, events: []string{"PromotedManually"}}},
		{name: "promote-full outranks promote",
			setup: []func(*Input){running(0, time.Second, 0), promoteAn, promoteFullAn},
			want:  want{transition: TransitionPromote, reason: "PromotedManually", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, events: []string{"PromotedManually"}},
			check: func(t *testing.T, p Plan) {
				if h := p.Memory.LastHandled; h == nil || h.Promote != "t1" || h.PromoteFull != "t1" || !cmp.Equal(p.Outranked, []Command{CommandPromote}) {
					t.Errorf("handled %+v outranked %v, want both tokens handled and promote outranked", h, p.Outranked)
				}
			}},
		{name: "a promote token already handled does nothing",
			setup: []func(*Input){running(3, time.Hour, 2), promoteAn, handled(v1alpha1.HandledCommands{Promote: "t1"})},
			want:  want{transition: TransitionWait, reason: "WaitingForPromote", stable: "a", canary: "b", canaryReplicas: 2, step: 3, state: StatePaused},
			check: func(t *testing.T, p Plan) {
				if p.Command != CommandNone || p.Memory.LastHandled.Result != "" {
					t.Errorf("command %q handled %+v, want none", p.Command, p.Memory.LastHandled)
				}
			}},
		{name: "a new promote token acts and is recorded with what it did",
			setup: []func(*Input){running(3, time.Hour, 2), token(CommandPromote, "t2"), handled(v1alpha1.HandledCommands{Promote: "t1"})},
			want:  want{transition: TransitionPromote, reason: "PromotedManually", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, events: []string{"StepPromoted", "PromotedManually"}},
			check: func(t *testing.T, p Plan) {
				if h := p.Memory.LastHandled; h.Promote != "t2" || !strings.Contains(h.Result, `promote token "t2": moved canary b past step 4/4`) {
					t.Errorf("handled %+v", h)
				}
			}},
		{name: "a legacy timestamp value works once",
			setup: []func(*Input){running(3, time.Hour, 2), token(CommandPromote, "2026-12-01T10:00:00Z")},
			want:  want{transition: TransitionPromote, reason: "PromotedManually", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, events: []string{"StepPromoted", "PromotedManually"}}},
		{name: "an empty value is no token",
			setup: []func(*Input){running(3, time.Hour, 2), token(CommandPromote, "")},
			want:  want{transition: TransitionWait, reason: "WaitingForPromote", stable: "a", canary: "b", canaryReplicas: 2, step: 3, state: StatePaused}},
		{name: "abort rolls back at once",
			setup: []func(*Input){running(2, time.Second, 1), abortAn},
			want:  want{transition: TransitionRollback, reason: ReasonAborted, stable: "a", state: StateRolledBack, rollback: ReasonAborted, events: []string{ReasonAborted}}},
		{name: "paused holds a finished step",
			setup: []func(*Input){running(1, time.Hour, 1), paused},
			want:  want{transition: TransitionHold, reason: "Paused", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StatePaused}},
		{name: "no steps: a canary at full size is handed over in the same pass, no pod created",
			setup: []func(*Input){func(in *Input) { in.Rollout.Steps = nil }, running(0, time.Minute, 4), func(in *Input) { in.Memory.CanaryWeight = 100; in.Canary.Replicas = 4 }},
			want:  want{transition: TransitionFinish, reason: "Promoted", stable: "b", state: StateSteady, events: []string{"PromotionStarted", "Promoted"}},
			check: func(t *testing.T, p Plan) {
				if p.StableReplicas != 4 || p.RetiringRevision != "a" || p.RetiringReplicas != 4 || p.Memory.Retiring == nil || !p.Memory.Retiring.Since.Time.Equal(now) {
					t.Errorf("stable b x%d, retiring %s x%d (%+v); want b x4 and a kept at x4 from now", p.StableReplicas, p.RetiringRevision, p.RetiringReplicas, p.Memory.Retiring)
				}
				if p.RequeueAfter != DefaultScaleDownDelay {
					t.Errorf("requeue %s, want the scale-down delay %s", p.RequeueAfter, DefaultScaleDownDelay)
				}
			}},
		{name: "promoting: the canary grows, stable keeps its full size",
			setup: []func(*Input){promoting(2, time.Minute)},
			want:  want{transition: TransitionWait, reason: ReasonPromoting, stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing},
			check: func(t *testing.T, p Plan) {
				if p.StableReplicas != 4 || !p.Memory.Promoting {
					t.Errorf("stable x%d promoting %v, want stable x4 while promoting", p.StableReplicas, p.Memory.Promoting)
				}
			}},
		{name: "promoting: abort rolls the canary back, stable untouched",
			setup: []func(*Input){promoting(2, time.Minute), abortAn},
			want:  want{transition: TransitionRollback, reason: ReasonAborted, stable: "a", state: StateRolledBack, rollback: ReasonAborted, events: []string{ReasonAborted}},
			check: func(t *testing.T, p Plan) {
				if p.Memory.Promoting {
					t.Error("still promoting after the rollback")
				}
			}},
		{name: "promoting: stalled past the deadline rolls back, stable untouched",
			setup: []func(*Input){promoting(2, time.Hour)},
			want:  want{transition: TransitionRollback, reason: ReasonProgressDeadlineExceeded, stable: "a", state: StateRolledBack, rollback: ReasonProgressDeadlineExceeded, events: []string{ReasonProgressDeadlineExceeded}}},
		{name: "promoting: stalled without autoRollback holds, stable serving",
			setup: []func(*Input){promoting(2, time.Hour), noAuto},
			want:  want{transition: TransitionHold, reason: "PromotionStalled", stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateHeld}},
		{name: "promoting: all pods ready hands over",
			setup: []func(*Input){promoting(4, time.Minute)},
			want:  want{transition: TransitionFinish, reason: "Promoted", stable: "b", state: StateSteady, events: []string{"Promoted"}}},
		{name: "promoting: spec moved on, next canary starts after the handover",
			setup: []func(*Input){promoting(4, time.Minute), func(in *Input) { in.DesiredRevision = "c" }},
			want:  want{transition: TransitionStart, reason: "CanaryStarted", stable: "b", canary: "c", canaryReplicas: 1, state: StateProgressing, events: []string{"Promoted", "CanaryStarted"}},
			check: func(t *testing.T, p Plan) {
				if p.RetiringRevision != "" {
					t.Errorf("retiring %s kept while a new canary runs", p.RetiringRevision)
				}
			}},
		{name: "retiring: kept at full size until the scale-down delay",
			setup: []func(*Input){func(in *Input) {
				in.Memory.Retiring = &v1alpha1.RetiringRevision{Revision: "z", Since: ago(20 * time.Second)}
			}},
			want: want{transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady},
			check: func(t *testing.T, p Plan) {
				if p.RetiringRevision != "z" || p.RetiringReplicas != 4 || p.RequeueAfter != 10*time.Second {
					t.Errorf("retiring %s x%d requeue %s, want z x4 for 10s more", p.RetiringRevision, p.RetiringReplicas, p.RequeueAfter)
				}
			}},
		{name: "retiring: removed after the scale-down delay",
			setup: []func(*Input){func(in *Input) {
				in.Memory.Retiring = &v1alpha1.RetiringRevision{Revision: "z", Since: ago(30 * time.Second)}
			}},
			want: want{transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady},
			check: func(t *testing.T, p Plan) {
				if p.RetiringRevision != "" || p.Memory.Retiring != nil {
					t.Errorf("retiring %s %+v, want gone", p.RetiringRevision, p.Memory.Retiring)
				}
			}},
		{name: "retiring: a scale-down delay of 0 removes it at once",
			setup: []func(*Input){func(in *Input) {
				in.Memory.Retiring = &v1alpha1.RetiringRevision{Revision: "z", Since: ago(0)}
				in.Rollout.ScaleDownDelay = &metav1.Duration{}
			}},
			want: want{transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady},
			check: func(t *testing.T, p Plan) {
				if p.RetiringRevision != "" {
					t.Errorf("retiring %s kept", p.RetiringRevision)
				}
			}},
		{name: "fast rollback: spec back to stable",
			setup: []func(*Input){running(2, time.Second, 1), func(in *Input) { in.DesiredRevision = "a" }},
			want:  want{transition: TransitionFastRollback, reason: "FastRollback", stable: "a", state: StateSteady, events: []string{"FastRollback"}}},
		{name: "spec edit mid-rollout restarts at step 0",
			setup: []func(*Input){running(2, time.Second, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictFail, 1, 0), func(in *Input) { in.DesiredRevision = "c" }},
			want:  want{transition: TransitionStart, reason: "CanaryRestarted", stable: "a", canary: "c", canaryReplicas: 1, state: StateProgressing, events: []string{"CanaryRestarted"}},
			check: func(t *testing.T, p Plan) {
				if p.Memory.Analysis != nil {
					t.Errorf("analysis of the old canary kept: %+v", p.Memory.Analysis)
				}
			}},
		{name: "rolled-back revision is not retried",
			setup: []func(*Input){rolledBack("b")},
			want:  want{transition: TransitionHold, reason: "RolledBack", stable: "a", state: StateRolledBack, rollback: ReasonAnalysisFailed}},
		{name: "rolled-back revision: promote is ignored",
			setup: []func(*Input){rolledBack("b"), promoteAn},
			want:  want{ignored: true, transition: TransitionHold, reason: "RolledBack", stable: "a", state: StateRolledBack, rollback: ReasonAnalysisFailed}},
		{name: "retry restarts the rolled-back revision",
			setup: []func(*Input){rolledBack("b"), retryAn},
			want:  want{transition: TransitionStart, reason: "RetryStarted", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, rollback: ReasonAnalysisFailed, events: []string{"RetryStarted"}}},
		{name: "a new template after a rollback starts",
			setup: []func(*Input){rolledBack("b"), func(in *Input) { in.DesiredRevision = "c" }},
			want:  want{transition: TransitionStart, reason: "CanaryStarted", stable: "a", canary: "c", canaryReplicas: 1, state: StateProgressing, rollback: ReasonAnalysisFailed, events: []string{"CanaryStarted"}}},
		{name: "spec edited back to the rolled-back revision during another canary",
			setup: []func(*Input){rolledBack("b"), running(1, time.Second, 1), func(in *Input) { in.Memory.CanaryRevision = "c" }},
			want:  want{transition: TransitionHold, reason: "RolledBack", stable: "a", state: StateRolledBack, rollback: ReasonAnalysisFailed, events: []string{"CanaryRemoved"}}},
		{name: "spec back to the rolled-back revision during another canary: retry acts",
			setup: []func(*Input){rolledBack("b"), running(1, time.Second, 1), func(in *Input) { in.Memory.CanaryRevision = "c" }, retryAn},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, rollback: ReasonAnalysisFailed, events: []string{"RetryStarted", "StepAdvanced"}}},
		{name: "spec back to the rolled-back revision during another canary: promote is declined",
			setup: []func(*Input){rolledBack("b"), running(1, time.Second, 1), func(in *Input) { in.Memory.CanaryRevision = "c" }, promoteAn},
			want:  want{ignored: true, transition: TransitionHold, reason: "RolledBack", stable: "a", state: StateRolledBack, rollback: ReasonAnalysisFailed, events: []string{"CanaryRemoved"}}},
		{name: "first failed interval is tolerated",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), newVerdict("b", v1alpha1.VerdictFail, 0)},
			want:  want{transition: TransitionWait, reason: "WaitingForAnalysis", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"AnalysisIntervalFailed"}},
			check: failures(1)},
		{name: "failures over the limit roll back",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictFail, 1, 30*time.Second), newVerdict("b", v1alpha1.VerdictFail, 0)},
			want:  want{transition: TransitionRollback, reason: ReasonAnalysisFailed, stable: "a", state: StateRolledBack, rollback: ReasonAnalysisFailed, events: []string{"AnalysisIntervalFailed", ReasonAnalysisFailed}},
			check: failures(2)},
		{name: "failures over the limit while paused still roll back",
			setup: []func(*Input){running(1, time.Minute, 1), paused, analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictFail, 1, 30*time.Second), newVerdict("b", v1alpha1.VerdictFail, 0)},
			want:  want{transition: TransitionRollback, reason: ReasonAnalysisFailed, stable: "a", state: StateRolledBack, rollback: ReasonAnalysisFailed, events: []string{"AnalysisIntervalFailed", ReasonAnalysisFailed}}},
		{name: "failures over the limit without autoRollback hold",
			setup: []func(*Input){running(1, time.Minute, 1), noAuto, analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictFail, 1, 30*time.Second), newVerdict("b", v1alpha1.VerdictFail, 0)},
			want:  want{transition: TransitionHold, reason: ReasonAnalysisFailed, stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateHeld, events: []string{"AnalysisIntervalFailed"}}},
		{name: "retry restarts a held canary",
			setup: []func(*Input){running(2, time.Minute, 2), noAuto, analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictFail, 2, 10*time.Second), retryAn},
			want:  want{transition: TransitionStart, reason: "RetryStarted", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, events: []string{"RetryStarted"}}},
		{name: "a verdict passed twice counts once",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictFail, 1, 0), newVerdict("b", v1alpha1.VerdictFail, 0)},
			want:  want{transition: TransitionWait, reason: "WaitingForAnalysis", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing},
			check: failures(1)},
		{name: "a verdict on another revision is ignored",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), newVerdict("x", v1alpha1.VerdictFail, 0)},
			want:  want{transition: TransitionWait, reason: "WaitingForAnalysis", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing},
			check: func(t *testing.T, p Plan) {
				if p.Memory.Analysis != nil {
					t.Errorf("recorded a foreign verdict: %+v", p.Memory.Analysis)
				}
			}},
		{name: "pass after the step started: advance",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), newVerdict("b", v1alpha1.VerdictPass, 0)},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 2, state: StateProgressing, events: []string{"StepAdvanced"}},
			check: failures(0)},
		{name: "pass from before the step: wait for a fresh one",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictPass, 0, 2*time.Minute)},
			want:  want{transition: TransitionWait, reason: "WaitingForAnalysis", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing}},
		{name: "inconclusive, onNoData Pause: hold",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), newVerdict("b", v1alpha1.VerdictInconclusive, 0)},
			want:  want{transition: TransitionWait, reason: "WaitingForAnalysisData", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing},
			check: failures(0)},
		{name: "inconclusive, onNoData Continue: advance",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataContinue), newVerdict("b", v1alpha1.VerdictInconclusive, 0)},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 2, state: StateProgressing, events: []string{"StepAdvanced"}}},
		{name: "inconclusive, onNoData Fail: counts as failed",
			setup: []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataFail), newVerdict("b", v1alpha1.VerdictInconclusive, 0)},
			want:  want{transition: TransitionWait, reason: "WaitingForAnalysis", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"AnalysisIntervalFailed"}},
			check: failures(1)},
		{name: "HPA scale-up restarts the step clock instead of the deadline firing",
			setup: []func(*Input){running(2, time.Hour, 2), func(in *Input) { in.Replicas = 8 }},
			want:  want{transition: TransitionWait, reason: "WaitingForCanaryPods", stable: "a", canary: "b", canaryReplicas: 4, step: 2, state: StateProgressing},
			check: func(t *testing.T, p Plan) {
				if p.StableReplicas != 8 || !p.Memory.StepStartTime.Time.Equal(now) {
					t.Errorf("stable %d, step start %v; want 8 and now", p.StableReplicas, p.Memory.StepStartTime)
				}
			}},
		{name: "HPA scale-down shrinks the canary, stable follows the HPA",
			setup: []func(*Input){running(2, time.Second, 2), func(in *Input) { in.Replicas = 2 }},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 3, state: StatePaused, events: []string{"StepAdvanced"}}},
		{name: "zero replicas: no canary pods",
			setup: []func(*Input){func(in *Input) { in.Replicas = 0; in.Rollout.Steps = in.Rollout.Steps[:1] }, running(0, time.Second, 0)},
			want:  want{transition: TransitionFinish, reason: "Promoted", stable: "b", state: StateSteady, events: []string{"PromotionStarted", "Promoted"}}},
		{name: "no desired revision: the running canary goes on",
			setup: []func(*Input){running(1, time.Minute, 1), func(in *Input) { in.DesiredRevision = "" }},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 2, state: StateProgressing, events: []string{"StepAdvanced"}}},
		{name: "promote with nothing to act on is declined",
			setup: []func(*Input){promoteAn},
			want:  want{ignored: true, transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady}},
		{name: "abort with nothing to act on is declined",
			setup: []func(*Input){abortAn},
			want:  want{ignored: true, transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady}},
		{name: "retry with nothing rolled back is declined",
			setup: []func(*Input){retryAn},
			want:  want{ignored: true, transition: TransitionNone, reason: "Steady", stable: "a", state: StateSteady}},
		{name: "paused before a canary: retry is declined, not dropped",
			setup: []func(*Input){paused, func(in *Input) { in.DesiredRevision = "b" }, retryAn},
			want:  want{ignored: true, transition: TransitionHold, reason: "Paused", stable: "a", state: StatePaused}},
		{name: "rolling update: promote is declined",
			setup: []func(*Input){func(in *Input) { in.DesiredRevision = "b"; in.Rollout.Strategy = v1alpha1.StrategyRollingUpdate }, promoteAn},
			want:  want{ignored: true, transition: TransitionRollingUpdate, reason: "RollingUpdate", stable: "b", state: StateProgressing, events: []string{"RollingUpdate"}, selects: SelectBoth}},
		{name: "no desired revision: a stuck canary still rolls back at its deadline",
			setup: []func(*Input){running(0, 3*time.Minute, 0), func(in *Input) { in.DesiredRevision = "" }},
			want:  want{transition: TransitionRollback, reason: ReasonProgressDeadlineExceeded, stable: "a", state: StateRolledBack, rollback: ReasonProgressDeadlineExceeded, events: []string{ReasonProgressDeadlineExceeded}}},
		{name: "no desired revision: abort still rolls back",
			setup: []func(*Input){running(1, time.Second, 1), func(in *Input) { in.DesiredRevision = "" }, abortAn},
			want:  want{transition: TransitionRollback, reason: ReasonAborted, stable: "a", state: StateRolledBack, rollback: ReasonAborted, events: []string{ReasonAborted}}},
	}
	cases = append(cases, spaceCases()...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := base()
			for _, f := range c.setup {
				f(&in)
			}
			before := in.Memory.DeepCopy()
			p := Decide(in)
			checkPlan(t, c.name, in, p)
			got := want{
				transition: p.Transition, reason: p.Reason, stable: p.StableRevision, canary: p.CanaryRevision,
				canaryReplicas: p.CanaryReplicas, step: p.Memory.CurrentStep, state: p.State,
				ignored: p.Command != CommandNone && !p.CommandUsed, selects: p.Selects,
			}
			if c.want.selects == "" {
				// The spaceCheck is off in these cases unless a case says: a
				// canary is reached at once; without one stable serves alone.
				c.want.selects = SelectStable
				if c.want.canary != "" {
					c.want.selects = SelectBoth
				}
			}
			if p.Memory.Rollback != nil {
				got.rollback = p.Memory.Rollback.Reason
			}
			for _, e := range p.Events {
				got.events = append(got.events, e.Reason)
			}
			if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("Decide (-want +got):\n%s\n message: %s\n events: %+v", diff, p.Message, p.Events)
			}
			if p.Memory.StableRevision != p.StableRevision || p.Memory.CanaryRevision != p.CanaryRevision {
				t.Errorf("memory and plan disagree: %+v", p.Memory)
			}
			if got.ignored && p.CommandIgnored == "" {
				t.Errorf("command %s neither used nor declined with a reason", p.Command)
			}
			if p.Command != CommandNone && (p.Memory.LastHandled == nil || p.Memory.LastHandled.Result == "") {
				t.Errorf("command %s handled without a record: %+v", p.Command, p.Memory.LastHandled)
			}
			if p.Transition == TransitionRollback && (p.Memory.Rollback.Revision != before.CanaryRevision || !p.Memory.Rollback.Time.Time.Equal(now)) {
				t.Errorf("rollback record %+v, want revision %s at now", p.Memory.Rollback, before.CanaryRevision)
			}
			if c.check != nil {
				c.check(t, p)
			}
			// Decide is pure: the same input gives the same plan.
			if again := Decide(in); again.Transition != p.Transition || again.Message != p.Message {
				t.Errorf("not deterministic: %s/%s then %s/%s", p.Transition, p.Message, again.Transition, again.Message)
			}
		})
	}
}

func failures(n int32) func(*testing.T, Plan) {
	return func(t *testing.T, p Plan) {
		t.Helper()
		got := int32(0)
		if p.Memory.Analysis != nil {
			got = p.Memory.Analysis.Failures
		}
		if got != n {
			t.Errorf("failures %d, want %d", got, n)
		}
	}
}

func TestAnalysisDue(t *testing.T) {
	cases := []struct {
		name  string
		setup []func(*Input)
		want  bool
	}{
		{"no analysis configured", []func(*Input){running(1, time.Minute, 1)}, false},
		{"no canary", []func(*Input){analysisOn(v1alpha1.NoDataPause)}, false},
		{"canary without ready pods", []func(*Input){running(0, time.Minute, 0), analysisOn(v1alpha1.NoDataPause)}, false},
		{"first verdict", []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause)}, true},
		{"verdict younger than the interval", []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictPass, 0, 10*time.Second)}, false},
		{"verdict one interval old", []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictPass, 0, 30*time.Second)}, true},
		{"verdict on another revision", []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), recorded(v1alpha1.VerdictPass, 0, time.Second), func(in *Input) { in.Memory.Analysis.Revision = "x" }}, true},
		{"promoting", []func(*Input){promoting(2, time.Minute), analysisOn(v1alpha1.NoDataPause)}, false},
		{"rolling update", []func(*Input){running(1, time.Minute, 1), analysisOn(v1alpha1.NoDataPause), func(in *Input) { in.Rollout.Strategy = v1alpha1.StrategyRollingUpdate }}, false},
	}
	for _, c := range cases {
		in := base()
		for _, f := range c.setup {
			f(&in)
		}
		if got := AnalysisDue(in); got != c.want {
			t.Errorf("%s: AnalysisDue = %v, want %v", c.name, got, c.want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	in := base()
	running(2, time.Minute, 1)(&in)
	analysisOn(v1alpha1.NoDataPause)(&in)
	newVerdict("b", v1alpha1.VerdictPass, 0)(&in)
	for b.Loop() {
		_ = Decide(in)
	}
}

// Status keeps whole seconds. A step started at 10.4 s is stamped 11 s, never
// 10 s, so its progress deadline (and any pause) cannot end early once the
// stamp is read back: it ends at most a second late.
func TestStepStampsNeverEndWaitsEarly(t *testing.T) {
	start := now.Add(400 * time.Millisecond)
	in := base()
	in.Now = start
	in.DesiredRevision = "b"
	in.Rollout.ProgressDeadline = metav1.Duration{Duration: 3 * time.Second}
	plan := Decide(in)
	if plan.Transition != TransitionStart && plan.Transition != TransitionWait {
		t.Fatalf("transition %s, want a started canary", plan.Transition)
	}
	stamp := plan.Memory.StepStartTime
	if stamp == nil || stamp.Before(&metav1.Time{Time: start}) || stamp.Sub(start) >= time.Second {
		t.Fatalf("stepStartTime %v for a start at %v: want the next whole second", stamp, start)
	}

	// The canary's pods never become ready; the status went through a write.
	next := in
	next.Memory = plan.Memory
	next.Canary = Track{Revision: "b", Exists: true, Replicas: plan.CanaryReplicas}
	for _, c := range []struct {
		after        time.Duration
		wantRollback bool
	}{
		{2900 * time.Millisecond, false}, // before the deadline by the real clock
		{3100 * time.Millisecond, false}, // past it by the real clock, within the stamp's second
		{3700 * time.Millisecond, true},
	} {
		next.Now = start.Add(c.after)
		got := Decide(next).Transition == TransitionRollback
		if got != c.wantRollback {
			t.Errorf("%v after the start: rollback %v, want %v", c.after, got, c.wantRollback)
		}
	}
}

// During promotion stable keeps serving at full size while the canary grows:
// the canary's effective weight is its share of every serving pod.
func TestEffectiveWeightDuringPromotion(t *testing.T) {
	in := base()
	promoting(2, time.Second)(&in)
	plan := Decide(in)
	if plan.Transition != TransitionWait {
		t.Fatalf("transition %s, want Wait (promotion under way)", plan.Transition)
	}
	if got := plan.Memory.EffectiveWeight; got != 33 {
		t.Errorf("effectiveWeight %d, want 33 (2 canary of 6 serving pods)", got)
	}
	// Once handed over no canary runs: the weight is 0.
	promoting(4, time.Second)(&in)
	if plan := Decide(in); plan.Transition != TransitionFinish || plan.Memory.EffectiveWeight != 0 {
		t.Errorf("transition %s effectiveWeight %d after the handover, want Finish and 0", plan.Transition, plan.Memory.EffectiveWeight)
	}
}

// checked: the spaceCheck is on, as by default.
func checked(in *Input) { in.Space.Check = true }

// spaceRecord sets the running canary's embedding-space record.
func spaceRecord(v v1alpha1.SpaceVerdict, attempts int32, at time.Duration) func(*Input) {
	return func(in *Input) {
		in.Memory.EmbeddingSpace = &v1alpha1.EmbeddingSpaceStatus{Revision: in.Memory.CanaryRevision, Verdict: v, Attempts: attempts, Time: ago(at), Message: "earlier"}
	}
}

func spaceVerdict(v v1alpha1.SpaceVerdict, msg string) func(*Input) {
	return func(in *Input) {
		in.SpaceVerdict = &v1alpha1.EmbeddingSpaceStatus{Revision: in.Memory.CanaryRevision, Verdict: v, Time: ago(0), Message: msg}
	}
}

// cutoverTo: the spec declares space to, stable serves "".
func cutoverTo(to string) func(*Input) {
	return func(in *Input) {
		in.Space.Declared = to
		if in.Memory.EmbeddingSpace == nil {
			in.Memory.EmbeddingSpace = &v1alpha1.EmbeddingSpaceStatus{}
		}
		if c := in.Memory.CanaryRevision; c != "" {
			in.Memory.EmbeddingSpace.Revision, in.Memory.EmbeddingSpace.CanarySpace = c, to
			in.Memory.CanaryWeight = 100
			in.Canary.Replicas = in.Replicas
		}
	}
}

func spaceIs(name string, v v1alpha1.SpaceVerdict) func(*testing.T, Plan) {
	return func(t *testing.T, p Plan) {
		t.Helper()
		es := p.Memory.EmbeddingSpace
		if es == nil || es.Name != name || es.Verdict != v {
			t.Errorf("embedding space %+v, want name %q verdict %q", es, name, v)
		}
	}
}

func spaceCases() []decideCase {
	return []decideCase{
		{name: "space: a new canary is checked first, clients stay on stable",
			setup: []func(*Input){checked, func(in *Input) { in.DesiredRevision = "b" }},
			want:  want{transition: TransitionStart, reason: "CanaryStarted", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, events: []string{"CanaryStarted"}, selects: SelectStable},
			check: spaceIs("", v1alpha1.SpacePending)},
		{name: "space: pods ready, check pending: the step waits for it",
			setup: []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute)},
			want:  want{transition: TransitionWait, reason: "WaitingForSpaceCheck", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, selects: SelectStable}},
		{name: "space: compatible, clients reach both tracks and the step advances",
			setup: []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute), spaceVerdict(v1alpha1.SpaceCompatible, "min cosine 1.0000")},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, events: []string{"EmbeddingSpaceCompatible", "StepAdvanced"}, selects: SelectBoth},
			check: spaceIs("", v1alpha1.SpaceCompatible)},
		{name: "space: changed, rolled back at once",
			setup: []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute), spaceVerdict(v1alpha1.SpaceChanged, "dimensions 384 -> 256")},
			want:  want{transition: TransitionRollback, reason: ReasonEmbeddingSpaceChanged, stable: "a", state: StateRolledBack, rollback: ReasonEmbeddingSpaceChanged, events: []string{ReasonEmbeddingSpaceChanged}},
			check: func(t *testing.T, p Plan) {
				spaceIs("", v1alpha1.SpaceChanged)(t, p)
				if !strings.Contains(p.Memory.Rollback.Message, "dimensions 384 -> 256") {
					t.Errorf("rollback message %q does not carry the numbers", p.Memory.Rollback.Message)
				}
			}},
		{name: "space: changed without autoRollback, held, clients stay on stable",
			setup: []func(*Input){checked, noAuto, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpaceChanged, 0, time.Minute)},
			want:  want{transition: TransitionHold, reason: ReasonEmbeddingSpaceChanged, stable: "a", canary: "b", canaryReplicas: 1, state: StateHeld, selects: SelectStable}},
		{name: "space: a promote while pending is declined",
			setup: []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute), promoteAn},
			want:  want{ignored: true, transition: TransitionWait, reason: "WaitingForSpaceCheck", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, selects: SelectStable}},
		{name: "space: a failed probe counts, and is retried after its backoff",
			setup: []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 2, 10*time.Second), spaceVerdict(v1alpha1.SpacePending, "probe: timeout")},
			want:  want{transition: TransitionWait, reason: "WaitingForSpaceCheck", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, selects: SelectStable},
			check: func(t *testing.T, p Plan) {
				es := p.Memory.EmbeddingSpace
				if es.Attempts != 3 || es.Message != "probe: timeout" || p.RequeueAfter != 4*time.Second {
					t.Errorf("attempts %d message %q requeue %s, want 3, the error, 4s", es.Attempts, es.Message, p.RequeueAfter)
				}
			}},
		{name: "space: not proven by the deadline fails closed, as a check that could not complete (not a changed space)",
			setup: []func(*Input){checked, running(0, 3*time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 7, 10*time.Second)},
			want:  want{transition: TransitionRollback, reason: ReasonSpaceCheckFailed, stable: "a", state: StateRolledBack, rollback: ReasonSpaceCheckFailed, events: []string{ReasonSpaceCheckFailed}},
			check: func(t *testing.T, p Plan) {
				spaceIs("", v1alpha1.SpaceUnverified)(t, p)
				if m := p.Memory.Rollback.Message; strings.Contains(m, "embeds in another vector space") {
					t.Errorf("rollback message %q: says the space changed, but nothing was compared", m)
				}
				if m := p.Memory.Rollback.Message; !strings.Contains(m, "not answered within the progress deadline") || !strings.Contains(m, "earlier") {
					t.Errorf("rollback message %q: want the deadline and the last probe error", m)
				}
			}},
		{name: "space: an unverified check held without autoRollback keeps its reason and message",
			setup: []func(*Input){checked, running(0, 3*time.Minute, 1), noAuto, func(in *Input) {
				in.Memory.EmbeddingSpace = &v1alpha1.EmbeddingSpaceStatus{Revision: "b", Verdict: v1alpha1.SpaceUnverified, Attempts: 7, Message: "the probes were not answered within the progress deadline of 2m0s: earlier"}
			}},
			want: want{transition: TransitionHold, reason: ReasonSpaceCheckFailed, stable: "a", canary: "b", canaryReplicas: 1, state: StateHeld, selects: SelectStable},
			check: func(t *testing.T, p Plan) {
				if m := p.Memory.EmbeddingSpace.Message; m != "the probes were not answered within the progress deadline of 2m0s: earlier" {
					t.Errorf("message %q grew on a later pass", m)
				}
			}},
		{name: "space: a verdict is never taken twice",
			setup: []func(*Input){checked, running(1, time.Minute, 1), spaceRecord(v1alpha1.SpaceCompatible, 0, time.Minute), spaceVerdict(v1alpha1.SpaceChanged, "late")},
			want:  want{transition: TransitionAdvance, reason: "StepAdvanced", stable: "a", canary: "b", canaryReplicas: 2, step: 2, state: StateProgressing, events: []string{"StepAdvanced"}, selects: SelectBoth},
			check: spaceIs("", v1alpha1.SpaceCompatible)},
		{name: "space: a canary from before the guard gets a record and is checked",
			setup: []func(*Input){checked, running(1, time.Minute, 1)},
			want:  want{transition: TransitionWait, reason: "WaitingForSpaceCheck", stable: "a", canary: "b", canaryReplicas: 1, step: 1, state: StateProgressing, selects: SelectStable},
			check: spaceIs("", v1alpha1.SpacePending)},
		{name: "space: check off, no gate",
			setup: []func(*Input){func(in *Input) { in.DesiredRevision = "b" }},
			want:  want{transition: TransitionStart, reason: "CanaryStarted", stable: "a", canary: "b", canaryReplicas: 1, state: StateProgressing, events: []string{"CanaryStarted"}, selects: SelectBoth},
			check: spaceIs("", "")},
		{name: "cutover: a declared space starts a full-size preview, clients on stable",
			setup: []func(*Input){checked, cutoverTo("v2"), func(in *Input) { in.DesiredRevision = "b" }},
			want:  want{transition: TransitionStart, reason: "CutoverStarted", stable: "a", canary: "b", canaryReplicas: 4, state: StateProgressing, events: []string{"CutoverStarted"}, selects: SelectStable}},
		{name: "cutover: preview ready, paused for a person",
			setup: []func(*Input){checked, running(0, time.Minute, 4), cutoverTo("v2")},
			want:  want{transition: TransitionWait, reason: ReasonAwaitingCutover, stable: "a", canary: "b", canaryReplicas: 4, state: StatePaused, selects: SelectStable}},
		{name: "cutover: a probe verdict is recorded, not acted on",
			setup: []func(*Input){checked, running(0, time.Minute, 4), cutoverTo("v2"), func(in *Input) { in.Memory.EmbeddingSpace.Verdict = v1alpha1.SpacePending }, spaceVerdict(v1alpha1.SpaceChanged, "dimensions 384 -> 256")},
			want:  want{transition: TransitionWait, reason: ReasonAwaitingCutover, stable: "a", canary: "b", canaryReplicas: 4, state: StatePaused, events: []string{"EmbeddingSpaceChecked"}, selects: SelectStable},
			check: spaceIs("", v1alpha1.SpaceChanged)},
		{name: "cutover: a promote before the preview is ready is declined",
			setup: []func(*Input){checked, running(0, time.Minute, 3), cutoverTo("v2"), promoteAn},
			want:  want{ignored: true, transition: TransitionWait, reason: "WaitingForCanaryPods", stable: "a", canary: "b", canaryReplicas: 4, state: StateProgressing, selects: SelectStable}},
		{name: "cutover: promote hands the service to the full-size preview at once: clients on its space only",
			setup: []func(*Input){checked, running(0, time.Minute, 4), cutoverTo("v2"), promoteAn},
			want:  want{transition: TransitionFinish, reason: "Promoted", stable: "b", state: StateSteady, events: []string{"CutoverPromoted", "CutoverFinished", "Promoted"}, selects: SelectStable},
			check: func(t *testing.T, p Plan) {
				if es := p.Memory.EmbeddingSpace; es == nil || es.Name != "v2" {
					t.Errorf("embedding space %+v, want stable serving v2", es)
				}
				if p.RetiringRevision != "a" {
					t.Errorf("retiring %q, want a (kept for the scale-down delay, selected by no Service)", p.RetiringRevision)
				}
			}},
		{name: "cutover: promoting after a scale-up keeps clients on the preview until it is full",
			setup: []func(*Input){checked, promoting(3, time.Minute), cutoverTo("v2")},
			want:  want{transition: TransitionWait, reason: ReasonPromoting, stable: "a", canary: "b", canaryReplicas: 4, step: 4, state: StateProgressing, selects: SelectCanary}},
		{name: "cutover: finished, stable serves the new space alone",
			setup: []func(*Input){checked, promoting(4, time.Minute), cutoverTo("v2")},
			want:  want{transition: TransitionFinish, reason: "Promoted", stable: "b", state: StateSteady, events: []string{"CutoverFinished", "Promoted"}},
			check: func(t *testing.T, p Plan) {
				if es := p.Memory.EmbeddingSpace; es == nil || es.Name != "v2" {
					t.Errorf("embedding space %+v, want stable serving v2", es)
				}
			}},
		{name: "cutover: abort in the preview rolls back",
			setup: []func(*Input){checked, running(0, time.Minute, 4), cutoverTo("v2"), abortAn},
			want:  want{transition: TransitionRollback, reason: ReasonAborted, stable: "a", state: StateRolledBack, rollback: ReasonAborted, events: []string{ReasonAborted}}},
		{name: "cutover: a preview that never becomes ready rolls back at the deadline",
			setup: []func(*Input){checked, running(0, 3*time.Minute, 2), cutoverTo("v2")},
			want:  want{transition: TransitionRollback, reason: ReasonProgressDeadlineExceeded, stable: "a", state: StateRolledBack, rollback: ReasonProgressDeadlineExceeded, events: []string{ReasonProgressDeadlineExceeded}}},
		{name: "cutover: the first deploy records the declared space",
			setup: []func(*Input){func(in *Input) { in.Memory = v1alpha1.RolloutStatus{}; in.Stable = Track{}; in.Space.Declared = "v1" }},
			want:  want{transition: TransitionInitialize, reason: "Initialized", stable: "a", state: StateSteady, events: []string{"Initialized"}},
			check: spaceIs("v1", "")},
	}
}

func TestSpaceCheckDue(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup []func(*Input)
		want  bool
	}{
		{"check off", []func(*Input){running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute)}, false},
		{"pending with a ready pod on each track", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute)}, true},
		{"no ready canary pod", []func(*Input){checked, running(0, time.Minute, 0), spaceRecord(v1alpha1.SpacePending, 0, time.Minute)}, false},
		{"no ready stable pod", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute), func(in *Input) { in.Stable.ReadyReplicas = 0 }}, false},
		{"already compatible", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpaceCompatible, 0, time.Minute)}, false},
		{"record of another revision", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute), func(in *Input) { in.Memory.EmbeddingSpace.Revision = "x" }}, false},
		{"backoff after 3 failures not over (4s)", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 3, 3*time.Second)}, false},
		{"backoff after 3 failures over", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 3, 4*time.Second)}, true},
		{"promoting", []func(*Input){checked, promoting(2, time.Minute), spaceRecord(v1alpha1.SpacePending, 0, time.Minute)}, false},
		{"rolling update", []func(*Input){checked, running(0, time.Minute, 1), spaceRecord(v1alpha1.SpacePending, 0, time.Minute), func(in *Input) { in.Rollout.Strategy = v1alpha1.StrategyRollingUpdate }}, false},
	} {
		in := base()
		for _, f := range c.setup {
			f(&in)
		}
		if got := SpaceCheckDue(in); got != c.want {
			t.Errorf("%s: SpaceCheckDue = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSpaceBackoff(t *testing.T) {
	for n, want := range map[int32]time.Duration{0: 0, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		if got := spaceBackoff(n); got != want {
			t.Errorf("spaceBackoff(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestSpaceChangeProblem(t *testing.T) {
	mem := v1alpha1.RolloutStatus{StableRevision: "a", EmbeddingSpace: &v1alpha1.EmbeddingSpaceStatus{Name: "v1"}}
	for _, c := range []struct {
		name     string
		strategy v1alpha1.RolloutStrategy
		declared string
		mem      v1alpha1.RolloutStatus
		want     bool
	}{
		{"canary cuts over", v1alpha1.StrategyCanary, "v2", mem, false},
		{"rolling update, same space", v1alpha1.StrategyRollingUpdate, "v1", mem, false},
		{"rolling update, another space", v1alpha1.StrategyRollingUpdate, "v2", mem, true},
		{"rolling update, nothing deployed yet", v1alpha1.StrategyRollingUpdate, "v2", v1alpha1.RolloutStatus{}, false},
	} {
		p := SpaceChangeProblem(c.strategy, c.declared, c.mem)
		if (p != nil) != c.want {
			t.Errorf("%s: problem %+v, want one: %v", c.name, p, c.want)
		}
		if p != nil && (p.Reason != ReasonSpaceChangeNeedsCanary || !strings.Contains(p.Message, "spec.embedding.space")) {
			t.Errorf("%s: %+v does not name the field", c.name, p)
		}
	}
}

// A first revision acted on before it was written (the controller writes it
// once, at the end of its pass) and a manager killed in between: the next
// pass adopts the stable Deployment and records what Initialize would have,
// the space its template declares included.
func TestAdoptingTheFirstRevisionRecordsWhatInitializeWould(t *testing.T) {
	in := Input{Now: now, Replicas: 2, Rollout: v1alpha1.RolloutSpec{Strategy: v1alpha1.StrategyCanary},
		DesiredRevision: "a", Space: SpaceInput{Declared: "docs-v1", Check: true}}
	initialized := Decide(in)
	if initialized.Transition != TransitionInitialize {
		t.Fatalf("transition %s, want Initialize", initialized.Transition)
	}

	in.Stable = Track{Revision: "a", Exists: true, Replicas: 2}
	adopted := Decide(in)
	if d := cmp.Diff(initialized.Memory, adopted.Memory); d != "" {
		t.Errorf("adopted memory differs from what Initialize recorded (-initialized +adopted):\n%s", d)
	}

}
