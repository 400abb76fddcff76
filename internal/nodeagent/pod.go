package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// podWorker owns one pod: its address, its containers' processes and the
// status the API shows for it.
type podWorker struct {
	a         *Agent
	ns, name  string
	uid       types.UID
	podIP     string
	startTime time.Time
	log       *slog.Logger

	containers []*container           // the ones that run
	static     []ContainerObservation // the ones that cannot run, with the reason

	kick        chan struct{}
	stopStatus  chan struct{}
	statusDone  chan struct{}
	once        sync.Once
	lastWritten *corev1.PodStatus
}

// waitsOnConfig says whether the worker runs nothing because a container's
// Secret or ConfigMap was missing when it started.
func (w *podWorker) waitsOnConfig() bool {
	if len(w.containers) > 0 {
		return false
	}
	for _, s := range w.static {
		if s.WaitingReason == ReasonConfigError {
			return true
		}
	}
	return false
}

func (w *podWorker) notify() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// start prepares the containers and launches them and the status loop.
func (a *Agent) startPod(pod *corev1.Pod, ip string) *podWorker {
	w := &podWorker{
		a: a, ns: pod.Namespace, name: pod.Name, uid: pod.UID, podIP: ip,
		startTime:  time.Now(),
		log:        a.log.With("pod", pod.Namespace+"/"+pod.Name),
		kick:       make(chan struct{}, 1),
		stopStatus: make(chan struct{}),
		statusDone: make(chan struct{}),
	}
	if pod.Status.StartTime != nil {
		w.startTime = pod.Status.StartTime.Time
	}
	dir := filepath.Join(a.cfg.StateDir, "pods", fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.log.Error("cannot create pod directory", "err", err)
	}
	prevRestarts := map[string]int32{}
	for _, cs := range pod.Status.ContainerStatuses {
		prevRestarts[cs.Name] = cs.RestartCount
	}
	ctx := context.Background()
	src := Sources{
		Secret: func(name string) (map[string][]byte, error) {
			s, err := a.client.CoreV1().Secrets(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return s.Data, nil
		},
		ConfigMap: func(name string) (map[string]string, error) {
			cm, err := a.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return cm.Data, nil
		},
	}
	facts := PodFacts{PodIP: ip, NodeName: a.cfg.NodeName, HostIP: a.cfg.HostIP}
	for _, spec := range pod.Spec.Containers {
		obs := ContainerObservation{Name: spec.Name, Image: spec.Image, RestartCount: prevRestarts[spec.Name]}
		if !RunsImage(spec.Image) {
			obs.WaitingReason = ReasonImageNeverPull
			obs.WaitingMessage = fmt.Sprintf("image %q cannot run here: the local node agent runs only images named *embedserver (as the local binary %s)", spec.Image, a.cfg.Binary)
			w.static = append(w.static, obs)
			continue
		}
		if _, err := os.Stat(a.cfg.Binary); err != nil {
			obs.WaitingReason = ReasonStartError
			obs.WaitingMessage = fmt.Sprintf("the embedserver binary %s is missing (run `make build`): %v", a.cfg.Binary, err)
			w.static = append(w.static, obs)
			continue
		}
		env, vars, err := BuildEnv(pod, &spec, facts, src)
		if err != nil {
			obs.WaitingReason, obs.WaitingMessage = ReasonConfigError, err.Error()
			w.static = append(w.static, obs)
			continue
		}
		c := newContainer(spec, prevRestarts[spec.Name])
		c.binary = a.cfg.Binary
		c.netns = a.cfg.PodNetNS
		c.args = CommandLine(&spec, ip, vars)
		c.env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
		c.podIP = ip
		c.policy = pod.Spec.RestartPolicy
		c.grace = graceOf(pod)
		c.logPath = filepath.Join(dir, spec.Name+".log")
		c.pidPath = filepath.Join(dir, spec.Name+".pid")
		c.log = w.log
		c.notify = w.notify
		w.containers = append(w.containers, c)
	}
	for _, c := range w.containers {
		go c.run()
	}
	go w.statusLoop()
	w.notify()
	return w
}

func graceOf(pod *corev1.Pod) time.Duration {
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

func (w *podWorker) observe() PodObservation {
	obs := PodObservation{PodIP: w.podIP, HostIP: w.a.cfg.HostIP, StartTime: w.startTime}
	byName := map[string]ContainerObservation{}
	for _, c := range w.containers {
		byName[c.spec.Name] = c.observe()
	}
	for _, s := range w.static {
		byName[s.Name] = s
	}
	pod, err := w.a.pods.Pods(w.ns).Get(w.name)
	if err == nil {
		for _, c := range pod.Spec.Containers {
			obs.Containers = append(obs.Containers, byName[c.Name])
		}
	}
	return obs
}

// statusLoop writes the pod status whenever what the agent observes changes,
// and at least every few seconds (so a missed write heals).
func (w *podWorker) statusLoop() {
	defer close(w.statusDone)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.stopStatus:
			return
		case <-w.kick:
		case <-tick.C:
		}
		if err := w.writeStatus(); err != nil {
			w.log.Error("pod status update failed", "err", err)
		}
	}
}

func (w *podWorker) writeStatus() error {
	ctx := context.Background()
	obs := w.observe()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := w.a.client.CoreV1().Pods(w.ns).Get(ctx, w.name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("get pod: %w", err)
		}
		if pod.UID != w.uid {
			return nil
		}
		st := BuildStatus(pod.Status, obs, w.a.cfg.Binary, time.Now())
		if w.lastWritten != nil && equality.Semantic.DeepEqual(*w.lastWritten, st) {
			return nil
		}
		pod.Status = st
		if _, err := w.a.client.CoreV1().Pods(w.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
			return err
		}
		w.lastWritten = &st
		return nil
	})
}

// terminate stops the containers (SIGTERM, the grace period, SIGKILL), writes
// their final status and deletes the pod object with grace 0 so controllers see
// it gone. It runs once per pod.
func (w *podWorker) terminate(grace time.Duration, deleteObject bool) {
	w.once.Do(func() {
		w.log.Info("stopping pod", "grace", grace.String())
		if !deleteObject {
			// The agent is stopping (or the object is already gone): the pod
			// did not end, so its status must not say it did. A restarted
			// agent runs it again.
			close(w.stopStatus)
			<-w.statusDone
		}
		var wg sync.WaitGroup
		for _, c := range w.containers {
			wg.Add(1)
			go func() { defer wg.Done(); c.stop(grace) }()
		}
		wg.Wait()
		if deleteObject {
			close(w.stopStatus)
			<-w.statusDone
			_ = w.writeStatus()
			zero := int64(0)
			err := w.a.client.CoreV1().Pods(w.ns).Delete(context.Background(), w.name, metav1.DeleteOptions{
				GracePeriodSeconds: &zero,
				Preconditions:      &metav1.Preconditions{UID: &w.uid},
			})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				w.log.Error("pod delete failed", "err", err)
			}
		}
		w.log.Info("pod stopped")
	})
}
