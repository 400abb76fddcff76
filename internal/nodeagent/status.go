package nodeagent

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons the agent reports in container states, kubelet's where one exists.
const (
	ReasonImageNeverPull    = "ErrImageNeverPull" // not an image the agent runs
	ReasonContainerCreating = "ContainerCreating"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonConfigError       = "CreateContainerConfigError" // a Secret or ConfigMap is missing
	ReasonStartError        = "RunContainerError"          // the binary could not start
)

// Termination is how a process ended.
type Termination struct {
	ExitCode   int32
	Signal     int32
	Reason     string // Completed, Error, OOMKilled...
	Message    string
	StartedAt  time.Time
	FinishedAt time.Time
	ProcessID  int
}

// ContainerObservation is what the agent knows of one container.
type ContainerObservation struct {
	Name  string
	Image string
	// Exactly one of Waiting, Running (StartedAt set) or Terminated describes now.
	WaitingReason, WaitingMessage string
	Running                       bool
	StartedAt                     time.Time
	ProcessID                     int
	Terminated                    *Termination
	Ready                         bool
	RestartCount                  int32
	LastTermination               *Termination
}

// PodObservation is what the agent knows of one pod.
type PodObservation struct {
	PodIP      string
	HostIP     string
	StartTime  time.Time
	Containers []ContainerObservation
}

// BuildStatus turns an observation into the pod status the API shows. old is
// the status the API has now: a condition keeps its lastTransitionTime while its
// value does not change.
func BuildStatus(old corev1.PodStatus, obs PodObservation, binary string, now time.Time) corev1.PodStatus {
	now = now.Truncate(time.Second) // the API keeps seconds; finer times would look like changes
	st := corev1.PodStatus{
		HostIP:   obs.HostIP,
		QOSClass: old.QOSClass,
	}
	if obs.HostIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: obs.HostIP}}
	}
	if obs.PodIP != "" {
		st.PodIP = obs.PodIP
		st.PodIPs = []corev1.PodIP{{IP: obs.PodIP}}
	}
	if !obs.StartTime.IsZero() {
		t := metav1.NewTime(obs.StartTime)
		st.StartTime = &t
	}

	var unready []string
	running, terminated, failed := 0, 0, 0
	for _, c := range obs.Containers {
		cs := corev1.ContainerStatus{
			Name:         c.Name,
			Image:        c.Image,
			ImageID:      "local://" + binary,
			Ready:        c.Ready,
			RestartCount: c.RestartCount,
		}
		started := false
		switch {
		case c.Running:
			started = true
			running++
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.StartedAt)}
			cs.ContainerID = fmt.Sprintf("local://%d", c.ProcessID)
		case c.Terminated != nil:
			terminated++
			if c.Terminated.ExitCode != 0 {
				failed++
			}
			cs.State.Terminated = terminatedState(c.Terminated)
			cs.ContainerID = fmt.Sprintf("local://%d", c.Terminated.ProcessID)
		default:
			reason := c.WaitingReason
			if reason == "" {
				reason = ReasonContainerCreating
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: c.WaitingMessage}
			cs.ImageID = ""
		}
		cs.Started = &started
		if c.LastTermination != nil {
			cs.LastTerminationState.Terminated = terminatedState(c.LastTermination)
		}
		if !c.Ready {
			unready = append(unready, c.Name)
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}

	n := len(obs.Containers)
	switch {
	case n > 0 && terminated == n && failed == 0:
		st.Phase = corev1.PodSucceeded
	case n > 0 && terminated == n:
		st.Phase = corev1.PodFailed
	case n > 0 && running+terminated == n:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodPending
	}

	ready := len(unready) == 0 && n > 0 && running == n
	notReadyMsg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	conds := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, obs.PodIP != "", "", ""),
		cond(corev1.PodInitialized, true, "", ""),
		cond(corev1.ContainersReady, ready, "ContainersNotReady", notReadyMsg),
		cond(corev1.PodReady, ready, "ContainersNotReady", notReadyMsg),
		cond(corev1.PodScheduled, true, "", ""),
	}
	if st.Phase == corev1.PodSucceeded || st.Phase == corev1.PodFailed {
		conds[2].Reason, conds[3].Reason = "PodCompleted", "PodCompleted"
		conds[2].Message, conds[3].Message = "", ""
	}
	for i := range conds {
		conds[i].LastTransitionTime = metav1.NewTime(now)
		for _, o := range old.Conditions {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	st.Conditions = conds
	return st
}

func cond(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
	if ok {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue}
	}
	return corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: reason, Message: msg}
}

func terminatedState(t *Termination) *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{
		ExitCode:    t.ExitCode,
		Signal:      t.Signal,
		Reason:      t.Reason,
		Message:     t.Message,
		StartedAt:   metav1.NewTime(t.StartedAt),
		FinishedAt:  metav1.NewTime(t.FinishedAt),
		ContainerID: fmt.Sprintf("local://%d", t.ProcessID),
	}
}

// Backoff is the wait before restart number n+1 of a container that keeps
// exiting: 1s doubling to 30s. Shorter than kubelet's 10s..5m so a local loop
// recovers quickly, same shape.
func Backoff(restarts int32) time.Duration {
	d := time.Second
	for i := int32(0); i < restarts && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}
