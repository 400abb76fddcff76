// Package rollout is the pure rollout planner of a RAGService: from the spec, the
// observed Deployments of the two tracks, the last analysis verdict and the
// rollout memory it decides the size and revision of each track, the canary step
// and the transition, with the reason (Decide); and from what was observed and
// decided it derives the conditions, the phase and the events (Summarize).
//
// It has no client and no clock: the caller passes what it observed and the time.
// Everything it remembers between calls lives in v1alpha1.RolloutStatus (and,
// after a lost status, in the Deployments' revision labels), so a manager killed
// at any point resumes where it stopped.
package rollout

import (
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// DefaultProgressDeadline applies when the spec leaves progressDeadline empty
// (the CRD defaults it; this guards objects created without defaulting).
const DefaultProgressDeadline = 10 * time.Minute

// DefaultInterval is the analysis interval when the spec leaves it empty.
const DefaultInterval = 30 * time.Second

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
	// effectiveWeight and decides availability (0 means: the same as
	// ReadyReplicas).
	ServingReplicas int32
	// Pods counts every pod of the Deployment, ready or not (status.replicas).
	Pods int32
	// UpdatedReplicas and AvailableReplicas are the Deployment's status fields,
	// for display.
	UpdatedReplicas, AvailableReplicas int32
	// RolledOut: observedGeneration current, updated == ready == replicas and no
	// pods of an older template left. Promotion waits for it before it removes
	// the canary pods.
	RolledOut bool
	// DeadlineExceeded: the Deployment controller gave up on its progress
	// deadline (condition Progressing=False, ProgressDeadlineExceeded).
	DeadlineExceeded bool
}

// serving is the number of ready pods the Service sends traffic to.
func (t Track) serving() int32 {
	if !t.Exists {
		return 0
	}
	return max(t.ServingReplicas, t.ReadyReplicas)
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
	// (replicas excluded); "" when the template could not be built, and the
	// rollout then goes on with the revisions it already runs.
	DesiredRevision string
	// Memory is the rollout status last written: the planner's memory across
	// restarts.
	Memory v1alpha1.RolloutStatus
	// Stable and Canary are the observed Deployments of Memory's stable and
	// canary revisions; Retiring that of Memory.Retiring's.
	Stable, Canary, Retiring Track
	// Verdict is a verdict on the canary computed this pass (see AnalysisDue),
	// or nil. A verdict already recorded in Memory (same revision, not newer)
	// is ignored, so passing one twice never counts it twice.
	Verdict *v1alpha1.AnalysisStatus
	// Tokens are the command annotations' values (Tokens). A token that
	// Memory.LastHandled records as handled is nothing; of the new ones, the
	// first in priority order is the pass's command.
	Tokens map[Command]string
	// Space is the space the spec declares and whether canaries are checked.
	Space SpaceInput
	// SpaceVerdict is a check of the canary's space made this pass (see
	// SpaceCheckDue), or nil. Verdict Pending means the attempt failed and
	// Message says why; it is retried with backoff.
	SpaceVerdict *v1alpha1.EmbeddingSpaceStatus
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
	// TransitionRollingUpdate: strategy RollingUpdate, the new revision's
	// Deployment grows while the old one shrinks.
	TransitionRollingUpdate Transition = "RollingUpdate"
	// TransitionStart: a canary starts (or restarts) at its first step (currentStep 0).
	TransitionStart Transition = "Start"
	// TransitionWait: the current step is not done yet.
	TransitionWait Transition = "Wait"
	// TransitionAdvance: the canary moved to the next step.
	TransitionAdvance Transition = "Advance"
	// TransitionPromote: the canary's Deployment grows to full size to take
	// over as stable.
	TransitionPromote Transition = "Promote"
	// TransitionFinish: the handover: the canary's revision, at full size,
	// is stable now; the previous one retires.
	TransitionFinish Transition = "Finish"
	// TransitionRollback: the canary Deployment is deleted at once (its pods
	// go with it) and its revision blocked.
	TransitionRollback Transition = "Rollback"
	// TransitionFastRollback: the spec went back to the stable template during a
	// canary; the canary goes, no steps.
	TransitionFastRollback Transition = "FastRollback"
	// TransitionHold: nothing moves until a person acts or the spec changes
	// (paused, held failure, rolled-back revision).
	TransitionHold Transition = "Hold"
)

// State is where the rollout stands after a decision: what Summarize turns
// into conditions and the phase.
type State string

// States of a rollout.
const (
	// StateSteady: no canary runs; stable runs (or rolls to) the desired revision.
	StateSteady State = "Steady"
	// StateProgressing: a canary or a promotion is under way.
	StateProgressing State = "Progressing"
	// StatePaused: waits for a person (a pause step without duration) or for
	// spec.rollout.paused to be lifted.
	StatePaused State = "Paused"
	// StateHeld: the rollout failed and holds (autoRollback off, promotion
	// stalled): a person must act.
	StateHeld State = "Held"
	// StateRolledBack: the desired revision was rolled back and is not tried
	// again until the spec changes or retry is asked for.
	StateRolledBack State = "RolledBack"
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

// ReasonPromoting is the standing reason while the canary's Deployment grows
// to full size before it takes over as stable.
const ReasonPromoting = "Promoting"

// Plan is what the controller applies.
type Plan struct {
	// StableRevision and StableReplicas are the stable revision and the size
	// of its Deployment: Input.Replicas, but during a rolling update as many
	// as the surge allows next to the retiring revision's.
	StableRevision string
	StableReplicas int32
	// RetiringRevision is the revision that stopped being stable and keeps
	// RetiringReplicas pods for now; "" when none. Every other revision's
	// Deployment is removed.
	RetiringRevision string
	RetiringReplicas int32
	// CanaryRevision is the canary Deployment's template revision; "" means no
	// canary runs: the controller deletes the canary Deployment.
	CanaryRevision string
	CanaryReplicas int32
	// Memory is the whole rollout status to store; the controller writes it as
	// it is.
	Memory v1alpha1.RolloutStatus
	// Transition, Reason and Message say what this pass decided and why.
	Transition Transition
	Reason     string
	Message    string
	// Standing says where the rollout stands after the pass: the reason and
	// message of its last decision (after an advance to a step that waits, the
	// wait's). The Reconciling and Stalled conditions carry it.
	Standing Problem
	// State is where the rollout stands.
	State State
	// Selects is which tracks the shared Service sends clients to; applied
	// before the Deployments, so a narrower selection is in place before new
	// pods exist.
	Selects Selection
	// Events are transitions only; Summarize adds those of conditions and of
	// ignored commands.
	Events []Event
	// Command is the pass's command and Token its token (none when no new
	// token was present); CommandUsed says whether a flow acted on it and,
	// when none did, CommandIgnored says why. Outranked are the commands of
	// the other new tokens, ignored. Memory.LastHandled records them all.
	Command        Command
	Token          string
	Outranked      []Command
	CommandUsed    bool
	CommandIgnored string
	// RequeueAfter is when to look again even if nothing changes: the end of a
	// pause, the next analysis, a deadline. Zero when only a change can move
	// things.
	RequeueAfter time.Duration
}
