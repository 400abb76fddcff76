package controllers

import (
	"bytes"
	"encoding/json"

	apiequality "k8s.io/apimachinery/pkg/api/equality"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// The one rule for when a pass writes a RAGService's status. A reader can say
// from it alone whether a pass writes: there is no hold, no window and no
// clock. The status is written when what the API server would store differs
// from what it stores, at one of two points of a pass:
//
//   - after the planner decided, when the decision changed the rollout memory:
//     before anything acts on it, so a manager killed after acting finds what
//     it decided (a canary started, a step taken, a token handled);
//   - at the end of the pass, the summary (conditions, phase, counts), when it
//     differs from what was last written.
//
// So a service at idle is never written (nothing moved), a pass that changes
// nothing a user reads writes nothing, and a write never triggers the next
// pass (the RAGService watch ignores status writes: ragServiceChanged). The
// status is at most one pass behind what it describes: every change it
// describes (a Deployment's status, a pod) brings a pass.

// writePoint is where in a pass the status may be written.
type writePoint string

const (
	// atDecision: the planner decided, nothing acted on the decision yet.
	atDecision writePoint = "decision"
	// atEnd: the pass is over; the summary is computed.
	atEnd writePoint = "end"
)

// statusWrite is how the status is written, if at all.
type statusWrite string

const (
	writeNone statusWrite = "none"
	// writeUpdate is a full update: the first write of a status. A merge
	// patch leaves out zero values equal to the (absent) old ones, and the
	// printer columns should show "0", not "<none>", from the start.
	writeUpdate statusWrite = "update"
	// writePatch is a merge patch carrying the resourceVersion it was
	// computed from (see writeStatus).
	writePatch statusWrite = "patch"
)

// writeInput is what the rule looks at.
type writeInput struct {
	at writePoint
	// stored is the status as the pass read it (or as its own decision write
	// left it); next is the status the pass would store.
	stored, next ragv1.RAGServiceStatus
	// initialize: the decision deploys a service's first revision, from no
	// memory. It follows from the spec alone, so it is acted on first and
	// written once, at the end: a manager killed in between finds the stable
	// Deployment running the spec's revision and adopts it (rollout.Decide).
	initialize bool
	// staleRead: the pass's decision write was refused because the object
	// changed since it was read; nothing of the pass stands.
	staleRead bool
}

// decideStatusWrite is the rule; why names the case.
func decideStatusWrite(in writeInput) (w statusWrite, why string) {
	switch {
	case in.staleRead:
		return writeNone, "the decision was made from a stale read: the next pass decides again"
	case in.at == atDecision && !memoryChanged(in.stored.RolloutStatus, in.next.RolloutStatus):
		return writeNone, "the decision leaves the rollout memory as read: whoever runs the next pass decides the same"
	case in.at == atDecision && in.initialize && in.stored.StableRevision == "":
		return writeNone, "a first revision follows from the spec: written once, at the end of the pass"
	case sameStatus(in.stored, in.next):
		return writeNone, "what would be stored is what is stored"
	case neverWritten(in.stored):
		return writeUpdate, "the first write of the status"
	default:
		return writePatch, "the stored status differs"
	}
}

// neverWritten says whether the operator never wrote st.
func neverWritten(st ragv1.RAGServiceStatus) bool {
	return st.ObservedGeneration == 0 && len(st.Conditions) == 0 && st.StableRevision == ""
}

// memoryChanged says whether a decision changed the rollout memory it was
// made from. The effective weight is left out: it is counted from the ready
// pods on every pass, not remembered, and the end of the pass writes it.
func memoryChanged(read, decided ragv1.RolloutStatus) bool {
	read.EffectiveWeight, decided.EffectiveWeight = 0, 0
	return !sameJSON(read, decided)
}

// sameStatus says whether two statuses are stored alike. It compares what the
// API server stores (JSON), not the Go values: a condition's transition time
// is kept to the second, so a summary stamped with this pass's clock differs
// from the same summary read back from the server only in nanoseconds, and a
// write of it would be a patch of nothing but the resourceVersion.
func sameStatus(a, b ragv1.RAGServiceStatus) bool {
	return apiequality.Semantic.DeepEqual(a, b) || sameJSON(a, b)
}

// sameJSON says whether a and b encode to the same JSON (and both encode).
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
