// Package deploysim is the Deployment controller as the tests model it: one
// decision at a time about which pod of a Deployment to create or delete,
// under a rolling strategy. The golden rollout simulations (internal/rollout)
// and the envtest simulator (controllers) both move their pods with Next and
// the strategy the operator gives both tracks (rollout.MaxSurge,
// rollout.MaxUnavailable), so they cannot disagree with each other or with
// what the operator configures.
package deploysim

// Strategy is a Deployment's rolling update, resolved for its size.
type Strategy struct {
	MaxSurge, MaxUnavailable int32
}

// Pod is one pod of a Deployment, as far as rolling it matters.
type Pod struct {
	Revision string
	Ready    bool
}

// Action is the Deployment controller's next move: create one pod of the
// Deployment's revision, delete the pod at index Delete, or nothing (Create
// false, Delete -1).
type Action struct {
	Create bool
	Delete int
}

// None is no move.
var None = Action{Delete: -1}

// Next is the next move for a Deployment of replicas pods of revision over
// pods. In order: an old-revision pod that is not ready goes (it serves
// nothing); surplus pods of the revision go, unready ones first; a missing pod
// of the revision is created while the total stays within replicas plus the
// surge; an old ready pod goes only while the other ready pods still number
// replicas minus maxUnavailable (so with maxUnavailable 0 ready capacity never
// drops).
func Next(st Strategy, replicas int32, revision string, pods []Pod) Action {
	var cur, ready int32
	oldUnready, oldReady, curUnready, curAny := -1, -1, -1, -1
	for i, p := range pods {
		if p.Ready {
			ready++
		}
		switch {
		case p.Revision == revision:
			cur++
			curAny = i
			if !p.Ready {
				curUnready = i
			}
		case p.Ready:
			oldReady = i
		default:
			oldUnready = i
		}
	}
	old := int32(len(pods)) - cur
	switch {
	case oldUnready >= 0:
		return Action{Delete: oldUnready}
	case cur > replicas && curUnready >= 0:
		return Action{Delete: curUnready}
	case cur > replicas:
		return Action{Delete: curAny}
	case cur < replicas && int32(len(pods)) < replicas+surge(st, old):
		return Action{Create: true, Delete: -1}
	case oldReady >= 0 && ready-1 >= replicas-st.MaxUnavailable:
		return Action{Delete: oldReady}
	}
	return None
}

// surge is how many pods above replicas may exist: the strategy's maxSurge
// during a rollout; when no old pods are left it is a plain scale, which the
// Deployment controller does at once.
func surge(st Strategy, old int32) int32 {
	if old == 0 {
		return 0
	}
	// The Deployment controller never rolls with neither surge nor
	// unavailability: it then allows one more pod.
	if st.MaxSurge == 0 && st.MaxUnavailable == 0 {
		return 1
	}
	return st.MaxSurge
}
