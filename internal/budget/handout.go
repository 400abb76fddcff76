package budget

// The hand-out: how the operator divides a service's budget among its pods.
//
// The budget B is for the whole service: every pod of both tracks. Each pod
// spends at most the share it holds, so the shares must never add up to more
// than B. A pod holds either the share the operator last told it (PUT /budget
// on its admin port) or, until told, the start share it read at start from
// the service's budget Secret (environment, so a new value reaches new pods
// without a new pod template).
//
// The operator divides B by Pods, an upper bound on how many pods the
// service can have before its next hand-out:
//
//	Pods = draining + max(live, allowed)
//
// live counts the pods that exist and are not terminated or being deleted
// (ready or not, both tracks); draining the ones being deleted that still run
// (a draining pod still finishes calls); allowed is what the service's
// Deployments may run at once: each one's replicas plus its rolling-update
// surge, and the stable track's desired replicas when the RAGService asks for
// more than its Deployment has yet. Every pod is told B/Pods, and the Secret's
// start share is set to B/Pods too, before the pods are told.
//
// Why the sum stays within B:
//   - Every pod that exists is counted (live or draining), so when every pod
//     holds B/Pods the sum is at most B.
//   - A pod the Deployments start before the next hand-out is within
//     allowed (a Deployment never runs more than replicas plus surge of
//     non-terminating pods), and it starts on the Secret's start share,
//     which is B/Pods: the sum is still at most B.
//   - When Pods grows (scale-up, a canary, a new surge), the Secret and every
//     pod are lowered to the new B/Pods on the same event that grows it (the
//     Deployment or RAGService change), before the new pods exist, in
//     practice: the pods still have to be created, scheduled and started,
//     and the start share is read then. Until a pod confirms the lower share
//     it counts as not told (status.budget.podsTold) and is retried.
//   - When Pods shrinks, the shares rise only after the pods that made it
//     larger are gone: a deleted pod is counted as draining until it has
//     stopped.
//   - A container that restarts inside its pod reads the start share again,
//     which is the current B/Pods.
//
// The price of the bound is the surge headroom: 2 replicas with the default
// 25% surge divide B by 3 while nothing rolls. Probe requests and canary
// analysis traffic go through the pods, so they are spent from the pods'
// shares like any client's requests.

// Divisor is Pods above: how many pods a budget is divided among. It is at
// least 1.
func Divisor(live, draining, allowed int) int {
	return max(0, draining) + max(live, allowed, 1)
}

// PerPod is each of pods pods' share of budget: rounded down, so the shares
// never add up to more than budget. A declared budget smaller than the pods
// still gives each pod 1 a minute: 0 would tell a pod "not declared" and let
// it spend freely, which is worse than going over by less than one call a
// minute per pod.
func PerPod(budget Share, pods int) Share {
	pods = max(pods, 1)
	div := func(b int) int {
		if b <= 0 {
			return 0
		}
		return max(1, b/pods)
	}
	return Share{RequestsPerMinute: div(budget.RequestsPerMinute), TokensPerMinute: div(budget.TokensPerMinute)}
}
