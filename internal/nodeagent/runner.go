package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// container runs one container of a pod as a local process and restarts it
// according to the pod's restart policy, with readiness and liveness from its
// probes. Every change of what it observes calls notify.
type container struct {
	spec    corev1.Container
	binary  string
	netns   string // network namespace to run in; "" for the agent's own
	args    []string
	env     []string
	podIP   string
	policy  corev1.RestartPolicy
	grace   time.Duration // liveness kill grace
	logPath string
	pidPath string
	log     *slog.Logger
	notify  func()

	mu       sync.Mutex
	obs      ContainerObservation
	proc     *os.Process
	stopping bool
	stopCh   chan struct{}
	done     chan struct{}
}

func newContainer(spec corev1.Container, restarts int32) *container {
	return &container{
		spec:   spec,
		obs:    ContainerObservation{Name: spec.Name, Image: spec.Image, RestartCount: restarts, WaitingReason: ReasonContainerCreating},
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
	}
}

func (c *container) observe() ContainerObservation {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.obs
	return o
}

func (c *container) update(f func(o *ContainerObservation)) {
	c.mu.Lock()
	f(&c.obs)
	c.mu.Unlock()
	c.notify()
}

// run is the container's life: start, wait, restart with backoff, until stop.
func (c *container) run() {
	defer close(c.done)
	backoffN := int32(0)
	for {
		started := time.Now()
		exit, err := c.runOnce()
		if err != nil {
			c.log.Error("container did not start", "container", c.spec.Name, "err", err)
			c.update(func(o *ContainerObservation) {
				o.Running, o.Ready = false, false
				o.WaitingReason, o.WaitingMessage = ReasonStartError, err.Error()
			})
		}
		if c.isStopping() {
			if exit != nil {
				c.update(func(o *ContainerObservation) { o.Terminated = exit })
			}
			return
		}
		if exit != nil {
			restart := c.policy == corev1.RestartPolicyAlways || c.policy == "" ||
				(c.policy == corev1.RestartPolicyOnFailure && exit.ExitCode != 0)
			if !restart {
				c.update(func(o *ContainerObservation) { o.Terminated = exit })
				return
			}
			if time.Since(started) > time.Minute {
				backoffN = 0 // it ran fine for a while: not a crash loop
			}
		}
		wait := Backoff(backoffN)
		backoffN++
		c.update(func(o *ContainerObservation) {
			if exit != nil {
				o.LastTermination = exit
				o.RestartCount++
				o.WaitingReason = ReasonCrashLoopBackOff
				o.WaitingMessage = fmt.Sprintf("back-off %s restarting failed container=%s pod IP=%s", wait, c.spec.Name, c.podIP)
			}
		})
		select {
		case <-c.stopCh:
			return
		case <-time.After(wait):
		}
	}
}

func (c *container) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

// runOnce starts the process and waits for it to exit. A start error returns
// (nil, err).
func (c *container) runOnce() (*Termination, error) {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(c.binary, c.args...)
	if c.netns != "" {
		// The pod's address lives in the project's own network namespace:
		// nsenter joins it and execs the server, so the PID is the server's.
		cmd = exec.Command("nsenter", append([]string{"--net=" + NetNSPath(c.netns), "--", c.binary}, c.args...)...)
	}
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = sysProcAttr()
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return nil, nil
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", c.binary, err)
	}
	c.proc = cmd.Process
	c.mu.Unlock()
	started := time.Now()
	_ = os.WriteFile(c.pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	c.log.Info("container started", "container", c.spec.Name, "pid", cmd.Process.Pid, "args", c.args)
	c.update(func(o *ContainerObservation) {
		o.Running, o.StartedAt, o.ProcessID = true, started, cmd.Process.Pid
		o.WaitingReason, o.WaitingMessage = "", ""
		o.Terminated = nil
		o.Ready = c.spec.ReadinessProbe == nil && c.spec.StartupProbe == nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	go c.probe(ctx)
	werr := cmd.Wait()
	cancel()
	_ = os.Remove(c.pidPath)
	c.mu.Lock()
	c.proc = nil
	c.mu.Unlock()

	t := &Termination{StartedAt: started, FinishedAt: time.Now(), ProcessID: cmd.Process.Pid, Reason: "Completed"}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Signal = int32(ws.Signal())
			t.ExitCode = 128 + int32(ws.Signal())
		} else {
			t.ExitCode = int32(ee.ExitCode())
		}
		t.Reason = "Error"
	} else if werr != nil {
		t.ExitCode, t.Reason, t.Message = 1, "Error", werr.Error()
	}
	c.log.Info("container exited", "container", c.spec.Name, "pid", t.ProcessID, "exitCode", t.ExitCode)
	c.update(func(o *ContainerObservation) {
		o.Running, o.Ready = false, false
		o.WaitingReason, o.WaitingMessage = ReasonContainerCreating, ""
	})
	return t, nil
}

// probe runs the startup probe, then readiness and liveness, until ctx ends.
func (c *container) probe(ctx context.Context) {
	for _, p := range []*corev1.Probe{c.spec.StartupProbe, c.spec.ReadinessProbe, c.spec.LivenessProbe} {
		if kind := unsupportedProbe(p); kind != "" {
			c.log.Warn("probe kind not run by the local node agent; treated as passing", "container", c.spec.Name, "kind", kind)
		}
	}
	if p := c.spec.StartupProbe; p != nil {
		if !c.loop(ctx, p, func(ok bool) bool { return !ok }, "startup") {
			return
		}
		if c.spec.ReadinessProbe == nil {
			c.update(func(o *ContainerObservation) { o.Ready = true })
		}
	}
	if p := c.spec.ReadinessProbe; p != nil {
		go c.loop(ctx, p, func(ok bool) bool {
			c.mu.Lock()
			changed := c.obs.Ready != ok
			c.obs.Ready = ok
			c.mu.Unlock()
			if changed {
				c.log.Info("readiness changed", "container", c.spec.Name, "ready", ok)
				c.notify()
			}
			return true
		}, "readiness")
	}
	if p := c.spec.LivenessProbe; p != nil {
		c.loop(ctx, p, func(ok bool) bool {
			if !ok {
				c.log.Info("liveness probe failed; restarting container", "container", c.spec.Name)
				c.signal(c.grace)
			}
			return ok
		}, "liveness")
	}
}

// loop probes on p's schedule; verdict receives each settled result (after the
// success or failure threshold) and returns whether to keep probing. loop
// returns true when it stopped because verdict said so, false when ctx ended.
func (c *container) loop(ctx context.Context, p *corev1.Probe, verdict func(ok bool) bool, kind string) bool {
	t := timingOf(p)
	select {
	case <-ctx.Done():
		return false
	case <-time.After(t.initialDelay):
	}
	okRun, failRun := 0, 0
	tick := time.NewTicker(t.period)
	defer tick.Stop()
	for {
		err := runProbe(ctx, p, &c.spec, c.podIP)
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if okRun == t.success && !verdict(true) {
				return true
			}
		} else {
			okRun, failRun = 0, failRun+1
			c.log.Debug("probe failed", "kind", kind, "container", c.spec.Name, "err", err)
			if failRun == t.failure && !verdict(false) {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// signal sends SIGTERM to the running process group and SIGKILL after grace.
func (c *container) signal(grace time.Duration) {
	c.mu.Lock()
	p := c.proc
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = killGroup(p.Pid, syscall.SIGTERM)
	go func() {
		timer := time.NewTimer(grace)
		defer timer.Stop()
		for {
			select {
			case <-timer.C:
				c.mu.Lock()
				same := c.proc == p
				c.mu.Unlock()
				if same {
					c.log.Info("grace period over; killing", "container", c.spec.Name, "pid", p.Pid)
					_ = killGroup(p.Pid, syscall.SIGKILL)
				}
				return
			case <-time.After(100 * time.Millisecond):
				c.mu.Lock()
				gone := c.proc != p
				c.mu.Unlock()
				if gone {
					return
				}
			}
		}
	}()
}

// stop ends the container for good: SIGTERM, SIGKILL after grace, no restart.
// It returns when the process is gone.
func (c *container) stop(grace time.Duration) {
	c.mu.Lock()
	if !c.stopping {
		c.stopping = true
		close(c.stopCh)
	}
	c.mu.Unlock()
	c.signal(grace)
	<-c.done
}
