package nodeagent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// Config is what the agent needs to know.
type Config struct {
	NodeName string
	Binary   string // the embedserver binary every runnable container runs
	PodCIDR  string // local addresses handed to pods
	// PodNetNS is the network namespace (in /run/netns) the pods run in, where
	// PodCIDR is local; "" runs them in the agent's own.
	PodNetNS string
	HostIP   string // the node's address
	StateDir string // per-pod logs and pid files
	Labels   map[string]string
	CPU      string // capacity shown on the node
	Memory   string
	MaxPods  int
}

// Agent is the local node agent.
type Agent struct {
	cfg    Config
	client kubernetes.Interface
	log    *slog.Logger
	ips    *IPAllocator
	pods   corelisters.PodLister

	mu      sync.Mutex
	workers map[string]*podWorker // by namespace/name
}

// New returns an agent; Run starts it.
func New(cfg Config, client kubernetes.Interface, log *slog.Logger) (*Agent, error) {
	ips, err := NewIPAllocator(cfg.PodCIDR)
	if err != nil {
		return nil, err
	}
	return &Agent{cfg: cfg, client: client, log: log, ips: ips, workers: map[string]*podWorker{}}, nil
}

// Run registers the node, heartbeats it and runs its pods until ctx ends; then
// it stops every process it started.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(a.client, 30*time.Second,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.cfg.NodeName).String()
		}))
	inf := factory.Core().V1().Pods()
	a.pods = inf.Lister()
	_, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.sync(obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.sync(obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				a.gone(pod)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("pod informer: %w", err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	a.log.Info("node agent running", "node", a.cfg.NodeName, "binary", a.cfg.Binary, "podCIDR", a.cfg.PodCIDR)

	go a.heartbeat(ctx)
	<-ctx.Done()
	factory.Shutdown()
	a.shutdown()
	return nil
}

func key(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }

// sync makes the processes match the pod: start a new one, stop a deleted one.
func (a *Agent) sync(pod *corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := key(pod)
	w := a.workers[k]
	if w != nil && w.uid != pod.UID { // same name, new pod
		go a.finish(w, 0, false)
		delete(a.workers, k)
		w = nil
	}
	if pod.DeletionTimestamp != nil {
		if w == nil {
			go a.deleteNow(pod)
			return
		}
		go a.finish(w, graceOf(pod), true)
		return
	}
	if w != nil {
		if w.waitsOnConfig() && time.Since(w.startTime) >= configRetry {
			// As the kubelet does, a container waiting for a Secret or
			// ConfigMap that did not exist yet is tried again: the worker,
			// which runs nothing, is replaced (same address).
			go w.terminate(0, false)
			a.workers[k] = a.startPod(pod, w.podIP)
			a.retryConfigLater(a.workers[k])
		}
		return
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return // finished before this agent started; nothing to run again
	}
	var ip netip.Addr
	if old, err := netip.ParseAddr(pod.Status.PodIP); err == nil && a.ips.Claim(string(pod.UID), old) {
		ip = old
	} else if ip, err = a.ips.Allocate(string(pod.UID)); err != nil {
		a.log.Error("no address for pod", "pod", k, "err", err)
		return
	}
	a.workers[k] = a.startPod(pod, ip.String())
	a.retryConfigLater(a.workers[k])
}

// configRetry is how soon a pod whose container waits on a missing Secret or
// ConfigMap is tried again (the kubelet retries with a backoff of its own).
const configRetry = 2 * time.Second

// retryConfigLater syncs the pod again after configRetry when its worker
// waits on configuration, so a Secret created after the pod (by another
// controller, as the operator's budget Secret can be) is picked up.
func (a *Agent) retryConfigLater(w *podWorker) {
	if !w.waitsOnConfig() {
		return
	}
	time.AfterFunc(configRetry, func() {
		if pod, err := a.pods.Pods(w.ns).Get(w.name); err == nil && pod.UID == w.uid {
			a.sync(pod)
		}
	})
}

// finish stops a worker and forgets it, releasing its address last (so the
// address is never shared by two live processes).
func (a *Agent) finish(w *podWorker, grace time.Duration, deleteObject bool) {
	w.terminate(grace, deleteObject)
	a.ips.Release(string(w.uid))
	a.mu.Lock()
	if a.workers[w.ns+"/"+w.name] == w {
		delete(a.workers, w.ns+"/"+w.name)
	}
	a.mu.Unlock()
}

// gone handles a pod object that disappeared (force-deleted): kill at once.
func (a *Agent) gone(pod *corev1.Pod) {
	a.mu.Lock()
	w := a.workers[key(pod)]
	a.mu.Unlock()
	if w != nil && w.uid == pod.UID {
		go a.finish(w, 0, false)
	}
}

func (a *Agent) deleteNow(pod *corev1.Pod) {
	err := a.client.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		a.log.Error("pod delete failed", "pod", key(pod), "err", err)
	}
}

// shutdown stops every process the agent started; pods stay in the API.
func (a *Agent) shutdown() {
	a.mu.Lock()
	ws := make([]*podWorker, 0, len(a.workers))
	for _, w := range a.workers {
		ws = append(ws, w)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() { defer wg.Done(); w.terminate(min(5*time.Second, graceOfWorker(w)), false) }()
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.setNodeReady(ctx, false, "AgentStopped", "the local node agent stopped")
	a.log.Info("node agent stopped", "pods", len(ws))
}

func graceOfWorker(w *podWorker) time.Duration {
	if len(w.containers) > 0 {
		return w.containers[0].grace
	}
	return 0
}

// registerNode creates the Node (or takes over an existing one), marks it Ready
// and removes the not-ready taints the API server adds to a new node: nothing
// else removes them here, because the node lifecycle controller is off.
func (a *Agent) registerNode(ctx context.Context) error {
	labels := map[string]string{
		"kubernetes.io/hostname": a.cfg.NodeName,
		"kubernetes.io/os":       "linux",
		"kubernetes.io/arch":     runtime.GOARCH,
	}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName, Labels: labels}}
	if _, err := a.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", a.cfg.NodeName, err)
	}
	if err := a.setNodeReady(ctx, true, "KubeletReady", "local node agent is posting ready status"); err != nil {
		return err
	}
	return a.removeNotReadyTaints(ctx)
}

func (a *Agent) removeNotReadyTaints(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		kept := n.Spec.Taints[:0]
		for _, t := range n.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady && t.Key != corev1.TaintNodeUnreachable {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(n.Spec.Taints) {
			return nil
		}
		n.Spec.Taints = kept
		_, err = a.client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func (a *Agent) setNodeReady(ctx context.Context, ready bool, reason, msg string) error {
	now := metav1.Now()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get node: %w", err)
		}
		n.Status = a.nodeStatus(n.Status, ready, reason, msg, now)
		if _, err := a.client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node status: %w", err)
		}
		return nil
	})
}

func (a *Agent) nodeStatus(old corev1.NodeStatus, ready bool, reason, msg string, now metav1.Time) corev1.NodeStatus {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(a.cfg.CPU),
		corev1.ResourceMemory: resource.MustParse(a.cfg.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(a.cfg.MaxPods), resource.DecimalSI),
	}
	readyStatus := corev1.ConditionFalse
	if ready {
		readyStatus = corev1.ConditionTrue
	}
	conds := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
		{Type: corev1.NodeReady, Status: readyStatus, Reason: reason, Message: msg},
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		for _, o := range old.Conditions {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Phase:       corev1.NodeRunning,
		Conditions:  conds,
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: a.cfg.HostIP},
			{Type: corev1.NodeHostName, Address: a.cfg.NodeName},
		},
		NodeInfo: corev1.NodeSystemInfo{
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
			KubeletVersion:          "ragops-nodeagent",
			ContainerRuntimeVersion: "local-process://",
		},
	}
}

// heartbeat renews the node's Lease every 10 s and its Ready condition every
// 40 s, the way kubelet does, and keeps the not-ready taints off.
func (a *Agent) heartbeat(ctx context.Context) {
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	n := 0
	for {
		if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("lease renewal failed", "err", err)
		}
		if n%4 == 0 && n > 0 {
			if err := a.setNodeReady(ctx, true, "KubeletReady", "local node agent is posting ready status"); err != nil && ctx.Err() == nil {
				a.log.Error("node status update failed", "err", err)
			}
			if err := a.removeNotReadyTaints(ctx); err != nil && ctx.Err() == nil {
				a.log.Error("taint removal failed", "err", err)
			}
		}
		n++
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, nerr := a.client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if nerr != nil {
			return fmt.Errorf("get node: %w", nerr)
		}
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: a.cfg.NodeName, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
			},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &a.cfg.NodeName, LeaseDurationSeconds: ptr.To[int32](40), RenewTime: &now},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return fmt.Errorf("get lease: %w", err)
	}
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}
