package nodeagent

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestBuildStatus(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	started := now.Add(-time.Minute)
	crash := &Termination{ExitCode: 137, Signal: 9, Reason: "Error", StartedAt: started.Add(-time.Minute), FinishedAt: started, ProcessID: 41}
	for _, tc := range []struct {
		name        string
		obs         PodObservation
		phase       corev1.PodPhase
		ready       corev1.ConditionStatus
		readyReason string
		state       string // waiting reason, "running" or "terminated"
		restarts    int32
	}{
		{
			name:  "creating",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s"}}},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, readyReason: "ContainersNotReady", state: ReasonContainerCreating,
		},
		{
			name:  "unknown image stays pending with its reason",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s", WaitingReason: ReasonImageNeverPull, WaitingMessage: "no"}}},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, readyReason: "ContainersNotReady", state: ReasonImageNeverPull,
		},
		{
			name:  "running, not ready yet",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s", Running: true, StartedAt: started, ProcessID: 42}}},
			phase: corev1.PodRunning, ready: corev1.ConditionFalse, readyReason: "ContainersNotReady", state: "running",
		},
		{
			name:  "running and ready after a restart",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s", Running: true, Ready: true, StartedAt: started, ProcessID: 42, RestartCount: 1, LastTermination: crash}}},
			phase: corev1.PodRunning, ready: corev1.ConditionTrue, state: "running", restarts: 1,
		},
		{
			name:  "crash loop back-off",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s", WaitingReason: ReasonCrashLoopBackOff, RestartCount: 3, LastTermination: crash}}},
			phase: corev1.PodPending, ready: corev1.ConditionFalse, readyReason: "ContainersNotReady", state: ReasonCrashLoopBackOff, restarts: 3,
		},
		{
			name:  "one of two containers ready",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "a", Running: true, Ready: true}, {Name: "b", Running: true}}},
			phase: corev1.PodRunning, ready: corev1.ConditionFalse, readyReason: "ContainersNotReady", state: "running",
		},
		{
			name:  "exited 0 with restartPolicy Never",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s", Terminated: &Termination{Reason: "Completed"}}}},
			phase: corev1.PodSucceeded, ready: corev1.ConditionFalse, readyReason: "PodCompleted", state: "terminated",
		},
		{
			name:  "exited 1 with restartPolicy Never",
			obs:   PodObservation{PodIP: "198.18.1.1", Containers: []ContainerObservation{{Name: "s", Terminated: &Termination{ExitCode: 1, Reason: "Error"}}}},
			phase: corev1.PodFailed, ready: corev1.ConditionFalse, readyReason: "PodCompleted", state: "terminated",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := BuildStatus(corev1.PodStatus{}, tc.obs, "/bin/embedserver", now)
			if st.Phase != tc.phase {
				t.Errorf("phase %s, want %s", st.Phase, tc.phase)
			}
			if st.PodIP != "198.18.1.1" || len(st.PodIPs) != 1 || st.PodIPs[0].IP != "198.18.1.1" {
				t.Errorf("pod IPs %q %v", st.PodIP, st.PodIPs)
			}
			c := condition(st, corev1.PodReady)
			if c.Status != tc.ready || c.Reason != tc.readyReason {
				t.Errorf("Ready = %s/%s, want %s/%s", c.Status, c.Reason, tc.ready, tc.readyReason)
			}
			if cr := condition(st, corev1.ContainersReady); cr.Status != tc.ready {
				t.Errorf("ContainersReady = %s, want %s", cr.Status, tc.ready)
			}
			cs := st.ContainerStatuses[len(st.ContainerStatuses)-1]
			var state string
			switch {
			case cs.State.Running != nil:
				state = "running"
			case cs.State.Terminated != nil:
				state = "terminated"
			case cs.State.Waiting != nil:
				state = cs.State.Waiting.Reason
			}
			if state != tc.state {
				t.Errorf("container state %q, want %q", state, tc.state)
			}
			if cs.RestartCount != tc.restarts {
				t.Errorf("restarts %d, want %d", cs.RestartCount, tc.restarts)
			}
			if (cs.Started != nil && *cs.Started) != (state == "running") {
				t.Errorf("started %v for state %s", *cs.Started, state)
			}
		})
	}
}

func TestBuildStatusDetails(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	crash := &Termination{ExitCode: 137, Signal: 9, Reason: "Error", ProcessID: 41}
	obs := PodObservation{PodIP: "198.18.1.1", HostIP: "127.0.0.1", StartTime: now.Add(-time.Hour), Containers: []ContainerObservation{
		{Name: "s", Image: "ragops/embedserver:1", Running: true, StartedAt: now.Add(-time.Minute), ProcessID: 42, RestartCount: 1, LastTermination: crash},
	}}
	st := BuildStatus(corev1.PodStatus{}, obs, "/bin/embedserver", now)
	cs := st.ContainerStatuses[0]
	if cs.ContainerID != "local://42" || cs.Image != "ragops/embedserver:1" || cs.ImageID != "local:///bin/embedserver" {
		t.Errorf("container identity %q %q %q", cs.ContainerID, cs.Image, cs.ImageID)
	}
	if lt := cs.LastTerminationState.Terminated; lt == nil || lt.ExitCode != 137 || lt.Signal != 9 {
		t.Errorf("last termination %+v", cs.LastTerminationState)
	}
	if st.HostIP != "127.0.0.1" || st.StartTime == nil || !st.StartTime.Time.Equal(now.Add(-time.Hour)) {
		t.Errorf("host IP %q start %v", st.HostIP, st.StartTime)
	}
	if c := condition(st, corev1.PodReady); c.Message != "containers with unready status: [s]" {
		t.Errorf("ready message %q", c.Message)
	}

	// A condition keeps its transition time while its value holds, and moves
	// when it changes.
	earlier := metav1.NewTime(now.Add(-time.Hour))
	old := corev1.PodStatus{Conditions: []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: earlier},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: earlier},
	}}
	st = BuildStatus(old, obs, "/bin/embedserver", now)
	if got := condition(st, corev1.PodScheduled).LastTransitionTime; !got.Equal(&earlier) {
		t.Errorf("PodScheduled moved to %v", got)
	}
	if got := condition(st, corev1.PodReady).LastTransitionTime; !got.Time.Equal(now) {
		t.Errorf("Ready changed to False but its transition time is %v", got)
	}
}

func condition(st corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

func TestBackoff(t *testing.T) {
	for n, want := range map[int32]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 5: 30 * time.Second, 50: 30 * time.Second} {
		if got := Backoff(n); got != want {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, want)
		}
	}
}
