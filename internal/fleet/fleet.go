// Package fleet stages the canaries the operator itself causes. When an
// operator upgrade changes the default embedding-server image, every
// RAGService without spec.image gets a new pod template at the same moment:
// without a gate, a thousand canaries, their surge pods and their probe
// traffic would start at once, and a bad image would fail everywhere at once.
//
// Classify tells, for one service, whether the revision its spec asks for is
// the operator's doing (the spec did not change, the default image did) and
// where that revision stands: waiting for a slot, running as a canary, or
// rolled back. Decide, from every service's class, says whether one waiting
// service may start now: at most MaxCanaries operator-caused canaries run at
// once, the waiting ones start in the order of their namespace/name, and once
// FailureLimit services rolled back the same image nothing more starts.
//
// Both are pure: the caller reads the services (the manager's cache) and
// keeps the in-process reservations; everything that must survive a restart
// lives in each service's status.fleetRollout.
package fleet

import (
	"fmt"
	"slices"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Defaults of the manager's --max-fleet-canaries and --fleet-failure-limit.
const (
	DefaultMaxCanaries  = 5
	DefaultFailureLimit = 2
)

// Reasons of the conditions and events of a service the fleet holds back.
const (
	// ReasonWaiting: an operator-caused revision waits for a slot.
	ReasonWaiting = "WaitingForFleetRollout"
	// ReasonStopped: the image's fleet rollout stopped after too many
	// rollbacks; the service stays on its image.
	ReasonStopped = "FleetRolloutStopped"
)

// Facts are what Classify needs of one service, read from its spec and status.
type Facts struct {
	// Key is namespace/name: the queue's order.
	Key string
	// Image is the manager's default embedding-server image now.
	Image string
	// Generation is metadata.generation; ObservedGeneration is
	// status.observedGeneration (the fallback baseline of a service whose
	// status has no record yet: written by an operator without this package).
	Generation, ObservedGeneration int64
	// SpecHash is the hash of the pod template the spec makes with the
	// default image left out; DesiredRevision the revision it makes with
	// Image. Both "" when the spec cannot be built.
	SpecHash, DesiredRevision string
	// Stable, Canary and RolledBack are status.stableRevision,
	// status.canaryRevision and status.rollback.revision.
	Stable, Canary, RolledBack string
	// Canary strategy (RollingUpdate has no canary to stage) and not paused
	// (a paused rollout starts nothing anyway).
	CanaryStrategy bool
	Paused         bool
	// Record is status.fleetRollout; nil when never written.
	Record *v1alpha1.FleetRolloutStatus
}

// Role is where a service stands in the fleet rollout.
type Role string

// Roles.
const (
	// RoleNone: nothing for the fleet to hold: steady, the user's own change,
	// a first revision, a spec that cannot be built, a revision the planner
	// holds (rolled back, paused).
	RoleNone Role = "None"
	// RolePending: an operator-caused revision waits to start its canary.
	RolePending Role = "Pending"
	// RoleRunning: an operator-caused canary runs.
	RoleRunning Role = "Running"
)

// Class is what Classify found.
type Class struct {
	Role Role
	// UserChange: the spec changed since the operator last read it, and so
	// did the template it makes. Never queued.
	UserChange bool
	// Failed: this service rolled back an operator-caused canary of the
	// current default image.
	Failed bool
	// Record is status.fleetRollout as this pass leaves it.
	Record v1alpha1.FleetRolloutStatus
}

// Classify classifies one service and returns the record to store. The
// baseline (generation and spec hash) moves to the spec read now, so a later
// pass compares with it: a change is the user's exactly when both the
// generation (a write of the spec) and the spec's own template (not the
// replicas an HPA writes, not a rollout setting, not a field the API server
// defaults on read after a CRD upgrade) changed since the last pass.
func Classify(f Facts) Class {
	var rec v1alpha1.FleetRolloutStatus
	if f.Record != nil {
		rec = *f.Record
	}
	c := Class{UserChange: userChange(f)}
	if f.SpecHash != "" {
		rec.SpecGeneration, rec.SpecHash = f.Generation, f.SpecHash
	}
	if c.UserChange {
		// The user's revision: it starts at once and carries the new
		// default image too; nothing of it is the fleet's.
		rec.Revision, rec.Image = "", ""
	}
	if rec.Revision != "" && f.RolledBack == rec.Revision && f.Stable != rec.Revision {
		rec.RolledBackImage = rec.Image
	}
	if rec.Revision != "" && f.Stable == rec.Revision && rec.RolledBackImage == rec.Image {
		// Promoted after all (a retry): the image runs here.
		rec.RolledBackImage = ""
	}
	c.Failed = rec.RolledBackImage != "" && rec.RolledBackImage == f.Image
	c.Role = RoleNone
	d := f.DesiredRevision
	switch {
	case f.Canary != "" && f.Canary == rec.Revision:
		// Counted whatever its image (it loads the upstream all the same),
		// and until the canary is cleared: a promotion that already made it
		// stable still runs both revisions' pods.
		c.Role = RoleRunning
		if d != "" && d != f.Canary && d != f.Stable && d != f.RolledBack && f.CanaryStrategy {
			// A newer default image replaces it in the same slot.
			rec.Revision, rec.Image = d, f.Image
		}
	case c.UserChange || f.Stable == "" || d == "" || d == f.Stable || d == f.Canary:
	case d == f.RolledBack:
		// The planner holds a rolled-back revision; a retry starts it.
	case !f.CanaryStrategy || f.Paused:
	default:
		rec.Revision, rec.Image = d, f.Image
		c.Role = RolePending
	}
	c.Record = rec
	return c
}

// userChange says whether the spec changed since the operator last read it,
// in a way that changes the pod template. Without a record the operator's
// observedGeneration is the baseline: a spec it has not acted on yet.
func userChange(f Facts) bool {
	if f.Record == nil || f.Record.SpecHash == "" {
		return f.ObservedGeneration != 0 && f.Generation != f.ObservedGeneration
	}
	return f.Generation != f.Record.SpecGeneration && f.SpecHash != "" && f.SpecHash != f.Record.SpecHash
}

// Limits are the manager's flags.
type Limits struct {
	// MaxCanaries is how many operator-caused canaries run at once, fleet-wide.
	MaxCanaries int
	// FailureLimit is how many services may roll back an image before its
	// fleet rollout stops.
	FailureLimit int
}

// Member is one service of the fleet as Decide sees it.
type Member struct {
	Key  string
	Role Role
	// Failed: it rolled back the current image's operator-caused canary.
	Failed bool
	// Reserved: admitted by this process, its canary not yet seen running.
	Reserved bool
}

// Decision is what Decide says of one service and of the fleet.
type Decision struct {
	// Admit: the service may start its canary now.
	Admit bool
	// Stopped: the image's fleet rollout stopped (Failures reached the limit).
	Stopped bool
	// Position is the service's place in the queue when not admitted, from 1
	// (the next to start).
	Position int
	// Waiting counts the services that wait (admitted ones aside); Running
	// the operator-caused canaries running or admitted; Failures the
	// services that rolled back the image.
	Waiting, Running, Failures int
	// MaxCanaries and FailureLimit are the limits Decide applied.
	MaxCanaries, FailureLimit int
	// Next are the waiting services that fit in the free slots (this one
	// aside): the ones to wake.
	Next []string
	// Queue are the waiting services, in order (this one included).
	Queue []string
}

// Decide decides for the service key, from every member of the fleet
// (key's own entry included; its role must be RolePending for it to be
// admitted). A member reserved and still pending counts as running: this
// process admitted it, and the cache has not seen its canary yet.
func Decide(members []Member, key string, l Limits) Decision {
	if l.MaxCanaries < 1 {
		l.MaxCanaries = DefaultMaxCanaries
	}
	if l.FailureLimit < 1 {
		l.FailureLimit = DefaultFailureLimit
	}
	d := Decision{MaxCanaries: l.MaxCanaries, FailureLimit: l.FailureLimit}
	var queue []string
	selfPending, selfReserved := false, false
	for _, m := range members {
		if m.Failed {
			d.Failures++
		}
		switch {
		case m.Role == RoleRunning, m.Role == RolePending && m.Reserved:
			d.Running++
		case m.Role == RolePending:
			queue = append(queue, m.Key)
		}
		if m.Key == key && m.Role == RolePending {
			selfPending, selfReserved = true, m.Reserved
		}
	}
	slices.Sort(queue)
	d.Stopped = d.Failures >= l.FailureLimit
	free := 0
	if !d.Stopped {
		free = max(l.MaxCanaries-d.Running, 0)
	}
	fits := queue[:min(free, len(queue))]
	d.Queue = queue[len(fits):]
	d.Waiting = len(d.Queue)
	pos := slices.Index(queue, key)
	switch {
	case !selfPending || d.Stopped:
	case selfReserved:
		d.Admit = true
	case pos >= 0 && pos < free:
		d.Admit = true
	}
	if selfPending && !d.Admit && pos >= 0 {
		d.Position = pos - len(fits) + 1
	}
	for _, k := range fits {
		if k != key {
			d.Next = append(d.Next, k)
		}
	}
	return d
}

// Message says why a service waits, naming the image and the limit. It
// leaves out what changes as the queue moves (the service's place, the
// canaries running): a message that changed on every pass would be a status
// write of every waiting service on every pass, a thousand a minute in a
// large fleet. The place is logged; the counts are metrics.
func (d Decision) Message(image string) (reason, msg string) {
	if d.Stopped {
		return ReasonStopped, fmt.Sprintf("The fleet rollout of image %s stopped: %d services rolled it back (limit %d reached); this service stays on its image until the manager's default image changes or the rolled-back services are retried and promote",
			image, d.Failures, d.FailureLimit)
	}
	return ReasonWaiting, fmt.Sprintf("Waiting for the fleet rollout of image %s: at most %d operator-caused canaries run at once, started in namespace/name order",
		image, d.MaxCanaries)
}
