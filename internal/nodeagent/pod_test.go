package nodeagent

import "testing"

// Only a pod that runs nothing because its configuration was missing is
// started again (as the kubelet retries CreateContainerConfigError); an image
// the agent cannot run stays as it is, and a running container is never
// replaced.
func TestWaitsOnConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    *podWorker
		want bool
	}{
		{"missing Secret", &podWorker{static: []ContainerObservation{{WaitingReason: ReasonConfigError}}}, true},
		{"image it cannot run", &podWorker{static: []ContainerObservation{{WaitingReason: ReasonImageNeverPull}}}, false},
		{"binary missing", &podWorker{static: []ContainerObservation{{WaitingReason: ReasonStartError}}}, false},
		{"one container runs", &podWorker{containers: []*container{{}}, static: []ContainerObservation{{WaitingReason: ReasonConfigError}}}, false},
		{"nothing at all", &podWorker{}, false},
	} {
		if got := tc.w.waitsOnConfig(); got != tc.want {
			t.Errorf("%s: waitsOnConfig() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
