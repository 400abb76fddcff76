package e2e

// Helpers for the layout of one Deployment per revision (`<svc>-<revision>`):
// which revision is stable and which is the canary lives in the RAGService's
// status only, so a pod's track is its revision's role there.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// revisionDeployment is the name of the Deployment that runs one revision.
func revisionDeployment(service, revision string) string { return service + "-" + revision }

// podReady says whether the pod is Ready and not being deleted.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// instancePods lists the pods of the RAGService name (every revision).
func instancePods(ns, name string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	err := k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: name})
	return pods.Items, err
}

// revisionPods counts the pods of one revision of the RAGService name.
func revisionPods(t *testing.T, ns, name, revision string) int {
	t.Helper()
	var pods corev1.PodList
	if err := k8s.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: name, ragv1.LabelRevision: revision}); err != nil {
		t.Fatalf("listing pods of revision %s: %v", revision, err)
	}
	return len(pods.Items)
}

// endpointPods are the pods (UID -> name) behind the ready endpoints of a
// Service, read from its EndpointSlices as a client without kube-proxy does.
func endpointPods(t *testing.T, ns, service string) map[types.UID]string {
	t.Helper()
	var eps discoveryv1.EndpointSliceList
	if err := k8s.List(context.Background(), &eps, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
		t.Fatalf("listing EndpointSlices of %s: %v", service, err)
	}
	out := map[types.UID]string{}
	for _, s := range eps.Items {
		for _, e := range s.Endpoints {
			if (e.Conditions.Ready == nil || *e.Conditions.Ready) && e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				out[e.TargetRef.UID] = e.TargetRef.Name
			}
		}
	}
	return out
}

// sameUIDs says whether two pod sets have the same UIDs.
func sameUIDs(a, b map[types.UID]string) bool {
	if len(a) != len(b) {
		return false
	}
	for uid := range a {
		if _, ok := b[uid]; !ok {
			return false
		}
	}
	return true
}

func podNames(m map[types.UID]string) string {
	return strings.Join(slices.Sorted(maps.Values(m)), " ")
}

// capacity polls the service's pods (and its status, for which revision is
// stable) every 200ms, at least twice per the 0.5 s the targets ask, and
// remembers the fewest ready ones seen (Ready condition true and not being
// deleted), in total and of the stable revision, and every pod it saw.
type capacity struct {
	mu                  sync.Mutex
	polls               int
	minTotal, minStable int
	worst               string
	seen                map[types.UID]seenPod
	*poller
}

// seenPod is a pod the capacity watch saw, and when it first did.
type seenPod struct {
	name, revision string
	first          time.Time
}

func watchCapacity(ns, name string) *capacity {
	c := &capacity{minTotal: 1 << 30, minStable: 1 << 30, seen: map[types.UID]seenPod{}}
	c.poller = startPolling(200*time.Millisecond, func() {
		var s ragv1.RAGService
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return
		}
		pods, err := instancePods(ns, name)
		if err != nil {
			return
		}
		now := time.Now()
		total, stable := 0, 0
		var desc []string
		c.mu.Lock()
		for i := range pods {
			p := &pods[i]
			rev := p.Labels[ragv1.LabelRevision]
			if _, ok := c.seen[p.UID]; !ok {
				c.seen[p.UID] = seenPod{name: p.Name, revision: rev, first: now}
			}
			ready := podReady(p)
			if ready {
				total++
				if rev == s.Status.StableRevision {
					stable++
				}
			}
			desc = append(desc, fmt.Sprintf("%s(rev=%s ready=%v)", p.Name, rev, ready))
		}
		c.polls++
		if total < c.minTotal || stable < c.minStable {
			c.worst = fmt.Sprintf("%s: total %d stable %d (stable revision %s, canary %q): %s", now.Format("15:04:05.000"), total, stable,
				s.Status.StableRevision, s.Status.CanaryRevision, strings.Join(desc, " "))
		}
		c.minTotal = min(c.minTotal, total)
		c.minStable = min(c.minStable, stable)
		c.mu.Unlock()
	})
	return c
}

// createdSince names the pods first seen after since that are not in known.
func (c *capacity) createdSince(since time.Time, known map[types.UID]string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for uid, p := range c.seen {
		if _, ok := known[uid]; !ok && p.first.After(since) {
			out = append(out, p.name+"(rev "+p.revision+")")
		}
	}
	slices.Sort(out)
	return out
}

func (c *capacity) finish() (polls, minTotal, minStable int, worst string) {
	c.halt()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.polls, c.minTotal, c.minStable, c.worst
}

// trackOf is the role of the pod's revision in status: stable, canary or
// "none" (a revision on its way out).
func trackOf(p corev1.Pod, s ragv1.RAGServiceStatus) string {
	switch p.Labels[ragv1.LabelRevision] {
	case s.StableRevision:
		return ragv1.TrackStable
	case s.CanaryRevision:
		return ragv1.TrackCanary
	}
	return "none"
}

// podUIDs are the UIDs (-> name) of the pods listed.
func podUIDs(pods []corev1.Pod) map[types.UID]string {
	out := map[types.UID]string{}
	for _, p := range pods {
		out[p.UID] = p.Name
	}
	return out
}

// poller runs a function at a fixed interval until halted.
type poller struct{ stop, done chan struct{} }

func startPolling(every time.Duration, poll func()) *poller {
	p := &poller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				poll()
			}
		}
	}()
	return p
}

// halt stops the polling and waits for a poll under way to end.
func (p *poller) halt() {
	close(p.stop)
	<-p.done
}
