package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fleet"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/rollout"
)

// The fleet gate: a canary the operator itself causes (a new default
// embedding-server image) starts on at most MaxFleetCanaries services at
// once; internal/fleet decides, from every service's status in the cache,
// and this file feeds it and acts on it. Its hook in a pass is small on
// purpose: gateFleet may replace the revision the planner is given by the
// one already running (so nothing starts), and holdForFleet makes the
// plan's standing say why.

// fleetRecheck is how often a service held back by the fleet looks again
// even if nobody wakes it (the wake-up after a canary ends is the fast path).
const fleetRecheck = time.Minute

// reservationTTL bounds how long an admitted service counts as running
// before the cache shows its canary: a pass that was admitted and then
// failed before starting the canary does not hold its slot for good.
const reservationTTL = 2 * time.Minute

// templateOnlyImage stands for the default image in the spec hash: the hash
// says what the spec alone makes of the pod template.
const templateOnlyImage = "ragops.invalid/default-embedserver"

var (
	fleetWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ragops_fleet_waiting_services",
		Help: "RAGServices whose operator-caused revision (a new default embedding-server image) waits for the fleet rollout, as the fleet gate last counted them.",
	})
	fleetCanaries = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ragops_fleet_canaries",
		Help: "Operator-caused canaries running (or admitted) across the fleet; at most --max-fleet-canaries.",
	})
	fleetFailures = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ragops_fleet_rollbacks",
		Help: "RAGServices that rolled back the current default image's operator-caused canary.",
	})
	fleetStopped = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "ragops_fleet_rollout_stopped",
		Help: "1 when the fleet rollout of the current default image stopped after --fleet-failure-limit rollbacks, else 0.",
	})
)

func init() {
	metrics.Registry.MustRegister(fleetWaiting, fleetCanaries, fleetFailures, fleetStopped)
}

// fleetGate is the reconciler's in-process part of the fleet rollout: the
// services it admitted whose canary the cache does not show yet, a memo of
// each service's revisions, and the wake-up channel.
type fleetGate struct {
	mu       sync.Mutex
	reserved map[string]time.Time // namespace/name -> when admitted
	memo     map[types.UID]fleetMemo
	wake     chan event.GenericEvent // slots to take: passes due now
	tell     chan event.GenericEvent // news to show: passes behind all others
	once     sync.Once
	// stopped is the image whose stopped fleet rollout the waiting services
	// were woken to report; "" while none is stopped. queued is the image
	// whose queue they were woken to report.
	stopped, queued string
}

// fleetMemo is a service's desired revision and spec hash for one generation
// and default image: Build and hash once, not on every decision of another.
type fleetMemo struct {
	generation      int64
	image           string
	desired, hashed string
}

func (g *fleetGate) init() {
	g.once.Do(func() {
		g.reserved = map[string]time.Time{}
		g.memo = map[types.UID]fleetMemo{}
		g.wake = make(chan event.GenericEvent, 1024)
		g.tell = make(chan event.GenericEvent, 1024)
	})
}

// fleetPass is what the fleet gate made of one pass.
type fleetPass struct {
	// held is the decision that held the service back; nil when nothing did.
	held  *fleet.Decision
	image string
	// ranCanary is the operator-caused canary running when the pass began.
	ranCanary string
}

func (r *RAGServiceReconciler) limits() fleet.Limits {
	return fleet.Limits{MaxCanaries: r.MaxFleetCanaries, FailureLimit: r.FleetFailureLimit}
}

// fleetSource wakes the services the gate names: those given a slot at
// once, those told of a queue or a stop at low priority, as the initial
// passes after a start are, so that a thousand of them never come before a
// user's own change.
func (r *RAGServiceReconciler) fleetSource(told bool) source.Source {
	r.fleet.init()
	if !told {
		return source.Channel(r.fleet.wake, &handler.EnqueueRequestForObject{})
	}
	low := handler.TypedFuncs[client.Object, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(e.Object)}
			if pq, ok := q.(priorityqueue.PriorityQueue[reconcile.Request]); ok {
				pq.AddWithOpts(priorityqueue.AddOpts{Priority: ptr.To(handler.LowPriority)}, req)
				return
			}
			q.Add(req)
		},
	}
	return source.Channel(r.fleet.tell, low)
}

// specHash is the revision the spec makes with the default image left out.
func specHash(svc *ragv1.RAGService) string {
	tpl, err := podtemplate.Build(svc, templateOnlyImage)
	if err != nil {
		return ""
	}
	rev, err := podtemplate.Revision(tpl)
	if err != nil {
		return ""
	}
	return rev
}

// factsOf are a service's facts for fleet.Classify; desired and hash are
// its revision with the default image and its spec hash.
func (r *RAGServiceReconciler) factsOf(svc *ragv1.RAGService, desired, hash string) fleet.Facts {
	st := svc.Status
	f := fleet.Facts{
		Key:                client.ObjectKeyFromObject(svc).String(),
		Image:              r.EmbedServerImage,
		Generation:         svc.Generation,
		ObservedGeneration: st.ObservedGeneration,
		SpecHash:           hash,
		DesiredRevision:    desired,
		Stable:             st.StableRevision,
		Canary:             st.CanaryRevision,
		CanaryStrategy:     svc.Spec.Rollout.Strategy != ragv1.StrategyRollingUpdate,
		Paused:             svc.Spec.Rollout.Paused,
		Record:             st.FleetRollout,
	}
	if st.Rollback != nil {
		f.RolledBack = st.Rollback.Revision
	}
	return f
}

// memberOf classifies another service from its cached spec and status.
func (r *RAGServiceReconciler) memberOf(svc *ragv1.RAGService) fleet.Member {
	m, ok := r.fleet.memo[svc.UID]
	if !ok || m.generation != svc.Generation || m.image != r.EmbedServerImage {
		m = fleetMemo{generation: svc.Generation, image: r.EmbedServerImage, hashed: specHash(svc)}
		if tpl, err := podtemplate.Build(svc, r.EmbedServerImage); err == nil {
			m.desired, _ = podtemplate.Revision(tpl)
		}
		r.fleet.memo[svc.UID] = m
	}
	c := fleet.Classify(r.factsOf(svc, m.desired, m.hashed))
	return fleet.Member{Key: client.ObjectKeyFromObject(svc).String(), Role: c.Role, Failed: c.Failed}
}

// consultFleet decides for key (whose own class is self) from every service
// in the cache, under the gate's lock, and reserves a slot when it admits.
// Services that fit in the free slots are woken.
func (r *RAGServiceReconciler) consultFleet(ctx context.Context, key string, self *fleet.Member) (fleet.Decision, error) {
	g := &r.fleet
	g.init()
	g.mu.Lock()
	defer g.mu.Unlock()
	list := &ragv1.RAGServiceList{}
	// Read only, under the lock: no copy of every service on every pass.
	if err := r.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return fleet.Decision{}, fmt.Errorf("listing RAGServices for the fleet rollout: %w", err)
	}
	now := r.now()
	seen := make(map[types.UID]bool, len(list.Items))
	members := make([]fleet.Member, 0, len(list.Items)+1)
	objs := make(map[string]*ragv1.RAGService, len(list.Items))
	for i := range list.Items {
		svc := &list.Items[i]
		if !svc.DeletionTimestamp.IsZero() {
			// Going away: its passes stop before the gate, so it would
			// hold its place at the head of the queue for good.
			continue
		}
		seen[svc.UID] = true
		k := client.ObjectKeyFromObject(svc).String()
		objs[k] = svc
		m := r.memberOf(svc)
		if self != nil && k == key {
			m = *self // this pass's own reading is fresher than the cache's
		}
		if at, ok := g.reserved[k]; ok {
			if m.Role != fleet.RolePending || now.Sub(at) > reservationTTL {
				delete(g.reserved, k) // its canary shows, or it never started
			} else {
				m.Reserved = true
			}
		}
		members = append(members, m)
	}
	for uid := range g.memo {
		if !seen[uid] {
			delete(g.memo, uid)
		}
	}
	for k := range g.reserved {
		if objs[k] == nil {
			delete(g.reserved, k)
		}
	}
	d := fleet.Decide(members, key, r.limits())
	if d.Admit {
		g.reserved[key] = now
	}
	// The services woken to take the free slots hold them from now: one
	// whose passes fail before they reach the gate holds its slot until the
	// reservation expires, not the whole queue behind it.
	for _, k := range d.Next {
		if _, ok := g.reserved[k]; !ok {
			g.reserved[k] = now
		}
	}
	fleetWaiting.Set(float64(d.Waiting))
	fleetCanaries.Set(float64(d.Running))
	fleetFailures.Set(float64(d.Failures))
	fleetStopped.Set(boolGauge(d.Stopped))
	var tell []string
	switch {
	case d.Stopped && g.stopped != r.EmbedServerImage:
		// Newly stopped: every waiting service says so soon, not at its
		// next recheck.
		g.stopped = r.EmbedServerImage
		tell = d.Queue
		ctrl.LoggerFrom(ctx).Info("Fleet rollout stopped", "image", r.EmbedServerImage, "rollbacks", d.Failures, "limit", d.FailureLimit, "waiting", d.Waiting)
	case !d.Stopped:
		g.stopped = ""
		if len(d.Queue) > 0 && g.queued != r.EmbedServerImage {
			// The first queue of this image: every waiting service says so,
			// not only those whose first pass after a manager start came.
			g.queued = r.EmbedServerImage
			tell = d.Queue
		}
	}
	send := func(ch chan event.GenericEvent, keys []string) {
		for _, k := range keys {
			if k == key {
				continue
			}
			select {
			case ch <- event.GenericEvent{Object: objs[k]}:
			default: // full: the recheck finds it
			}
		}
	}
	send(g.wake, d.Next)
	send(g.tell, tell)
	return d, nil
}

// gateFleet is the fleet's hook before the planner: it classifies the
// service (recording status.fleetRollout), and when its new revision is the
// operator's doing and the fleet has no room for it (or stopped), gives the
// planner the revision that runs instead, so nothing starts. A user's own
// change, a first revision, a spec that cannot be built pass as they are.
func (r *RAGServiceReconciler) gateFleet(ctx context.Context, s *scope, in *rollout.Input) fleetPass {
	st := &s.obj.Status
	var fp fleetPass
	if st.FleetRollout != nil && st.CanaryRevision != "" && st.CanaryRevision == st.FleetRollout.Revision {
		fp.ranCanary = st.CanaryRevision
	}
	hash := ""
	if s.specProblem == nil {
		hash = specHash(s.obj)
	}
	c := fleet.Classify(r.factsOf(s.obj, s.desiredRevision, hash))
	if rec := c.Record; rec == (ragv1.FleetRolloutStatus{}) {
		st.FleetRollout = nil
	} else {
		st.FleetRollout = &rec
	}
	if c.UserChange {
		ctrl.LoggerFrom(ctx).V(1).Info("The spec changed: its revision is the user's, not queued behind the fleet rollout", "revision", s.desiredRevision)
	}
	key := client.ObjectKeyFromObject(s.obj).String()
	if c.Role != fleet.RolePending {
		if heldByFleet(s.conditions) {
			// It leaves the queue (pinned by its user, say): count again, so
			// the metrics do not keep it waiting.
			if _, err := r.consultFleet(ctx, key, &fleet.Member{Key: key, Role: c.Role, Failed: c.Failed}); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "Counting the fleet rollout")
			}
		}
		return fp
	}
	d, err := r.consultFleet(ctx, key, &fleet.Member{Key: key, Role: c.Role, Failed: c.Failed})
	if err != nil {
		// Without the fleet's count nothing operator-caused starts.
		s.fail(err)
		d = fleet.Decision{}
	}
	if d.Admit {
		ctrl.LoggerFrom(ctx).Info("Fleet rollout: starting an operator-caused canary", "revision", s.desiredRevision, "image", r.EmbedServerImage, "running", d.Running)
		return fp
	}
	// What runs stays: the canary in flight (a user's, or none) or stable.
	in.DesiredRevision = in.Memory.CanaryRevision
	if in.DesiredRevision == "" {
		in.DesiredRevision = in.Memory.StableRevision
	}
	fp.held, fp.image = &d, r.EmbedServerImage
	ctrl.LoggerFrom(ctx).V(1).Info("Waiting for the fleet rollout", "image", r.EmbedServerImage, "position", d.Position, "waiting", d.Waiting,
		"running", d.Running, "rollbacks", d.Failures, "stopped", d.Stopped)
	return fp
}

// heldByFleet says whether the conditions a pass found say the fleet held
// the service back.
func heldByFleet(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Status == metav1.ConditionTrue && (c.Reason == fleet.ReasonWaiting || c.Reason == fleet.ReasonStopped) {
			return true
		}
	}
	return false
}

// hold is the fleet's hook after the planner: a service held back with
// nothing else going on says why (Reconciling, and Ready False, with reason
// WaitingForFleetRollout; Stalled and Ready False with FleetRolloutStopped),
// and looks again later. A rollout of the service's own (a user's canary)
// keeps its own words.
func (fp fleetPass) hold(plan *rollout.Plan) {
	if fp.held == nil {
		return
	}
	if plan.RequeueAfter == 0 || plan.RequeueAfter > fleetRecheck {
		plan.RequeueAfter = fleetRecheck
	}
	if plan.State != rollout.StateSteady {
		return
	}
	reason, msg := fp.held.Message(fp.image)
	plan.Standing = rollout.Problem{Reason: reason, Message: msg}
	plan.State = rollout.StateProgressing
	if fp.held.Stopped {
		plan.State = rollout.StateHeld
	}
}

// wakeFleetAfter wakes the next waiting services once a pass ended an
// operator-caused canary (promoted, rolled back, replaced by the user's
// change) and recorded it: its slot is free. The service counts as this
// pass left it, not as the cache may still show it.
func (r *RAGServiceReconciler) wakeFleetAfter(ctx context.Context, s *scope, fp fleetPass) {
	if !s.decided || fp.ranCanary == "" || s.obj.Status.CanaryRevision == fp.ranCanary {
		return
	}
	key := client.ObjectKeyFromObject(s.obj).String()
	hash := ""
	if rec := s.obj.Status.FleetRollout; rec != nil {
		hash = rec.SpecHash
	}
	c := fleet.Classify(r.factsOf(s.obj, s.desiredRevision, hash))
	if _, err := r.consultFleet(ctx, key, &fleet.Member{Key: key, Role: c.Role, Failed: c.Failed}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Waking the services waiting for the fleet rollout")
	}
}
