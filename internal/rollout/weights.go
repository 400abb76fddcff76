package rollout

// CanaryReplicas is the canary track's size for a weight: ceil(replicas*weight/100).
// Any positive weight on a non-empty fleet gets at least one pod, weight 100 gets
// the full size, and an empty fleet (replicas 0) never gets a canary pod.
func CanaryReplicas(replicas, weight int32) int32 {
	if replicas <= 0 || weight <= 0 {
		return 0
	}
	if weight >= 100 {
		return replicas
	}
	// int64: replicas*weight must not overflow for large fleets.
	return int32((int64(replicas)*int64(weight) + 99) / 100)
}

// EffectiveWeight is the canary's share of the ready pods, in percent, rounded
// half up: the traffic share the Service actually gives it. Zero when no pod is
// ready.
func EffectiveWeight(stableReady, canaryReady int32) int32 {
	if canaryReady <= 0 {
		return 0
	}
	if stableReady < 0 {
		stableReady = 0
	}
	total := int64(stableReady) + int64(canaryReady)
	return int32((200*int64(canaryReady) + total) / (2 * total))
}

// The Deployment strategy of both tracks, which the planner's capacity
// promise rests on: maxUnavailable 0, so a template change (a promotion)
// surges new pods before old ones go and ready capacity never drops; maxSurge
// MaxSurgePercent of the size, rounded up as the Deployment controller rounds
// it, bounds the extra pods.
const (
	MaxSurgePercent = 25
	MaxUnavailable  = 0
)

// MaxSurge is how many pods above replicas a rolling Deployment may run.
func MaxSurge(replicas int32) int32 {
	if replicas <= 0 {
		return 0
	}
	return int32((int64(replicas)*MaxSurgePercent + 99) / 100)
}
