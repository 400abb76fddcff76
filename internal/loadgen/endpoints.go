package loadgen

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// TrackUnknown is the track of an endpoint whose pod's revision is neither
// stable nor canary in its RAGService's status (nor was either while
// followed), or that names no pod.
const TrackUnknown = "unknown"

// Target is where one request goes: an embeddings URL and, for an endpoint of
// a Service, its pod and that pod's track.
type Target struct {
	URL, Pod, Track string
}

// Targets hands out the next target; false when there is none right now.
type Targets interface {
	Next() (Target, bool)
}

// Endpoints are the ready endpoints of a Service, resolved from its
// EndpointSlices the way a client without kube-proxy must, and kept current:
// a pod that becomes ready gets its share, one that goes stops getting any.
// Requests go round-robin over them.
type Endpoints struct {
	client             client.Reader
	namespace, service string

	targets atomic.Pointer[[]Target]
	next    atomic.Uint64

	// What resolve remembers (only it touches them): pod -> its labels'
	// instance and revision (they never change), and instance/revision -> the
	// last role the RAGService's status gave that revision, so a revision keeps
	// its track after it left the status (the previous stable while it drains,
	// a rolled-back canary).
	pods  map[string]podRevision
	roles map[string]string

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// FollowEndpoints resolves the Service's ready endpoints once (an error then
// is returned) and again every refresh until ctx ends or Stop is called; a
// failed refresh keeps the last good list.
func FollowEndpoints(ctx context.Context, c client.Reader, namespace, service string, refresh time.Duration) (*Endpoints, error) {
	if refresh <= 0 {
		refresh = time.Second
	}
	e := &Endpoints{client: c, namespace: namespace, service: service, pods: map[string]podRevision{}, roles: map[string]string{}, done: make(chan struct{})}
	if err := e.resolve(ctx); err != nil {
		return nil, err
	}
	ctx, e.cancel = context.WithCancel(ctx)
	go func() {
		defer close(e.done)
		t := time.NewTicker(refresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = e.resolve(ctx)
			}
		}
	}()
	return e, nil
}

// Stop stops following; Current keeps the last list.
func (e *Endpoints) Stop() {
	e.once.Do(func() {
		e.cancel()
		<-e.done
	})
}

// Current is the list of ready endpoints now.
func (e *Endpoints) Current() []Target { return *e.targets.Load() }

// Next is the next ready endpoint, round-robin.
func (e *Endpoints) Next() (Target, bool) {
	ts := e.Current()
	if len(ts) == 0 {
		return Target{}, false
	}
	return ts[e.next.Add(1)%uint64(len(ts))], true
}

// Deleting says whether pod is being deleted or already gone: a refused or
// reset connection to it is the end of its drain, not a failure of a live pod.
func (e *Endpoints) Deleting(pod string) bool {
	if pod == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p corev1.Pod
	err := e.client.Get(ctx, client.ObjectKey{Namespace: e.namespace, Name: pod}, &p)
	if apierrors.IsNotFound(err) {
		return true
	}
	return err == nil && p.DeletionTimestamp != nil
}

// resolve lists the Service's EndpointSlices and keeps the ready endpoints of
// its port named http (or its only port), with the track of each one's pod.
func (e *Endpoints) resolve(ctx context.Context) error {
	statuses := map[string]*ragv1.RAGServiceStatus{} // read at most once per resolve
	var slices discoveryv1.EndpointSliceList
	if err := e.client.List(ctx, &slices, client.InNamespace(e.namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: e.service}); err != nil {
		return fmt.Errorf("listing EndpointSlices of Service %s/%s: %w", e.namespace, e.service, err)
	}
	var ts []Target
	for _, s := range slices.Items {
		port := int32(0)
		for _, p := range s.Ports {
			if p.Port != nil && (port == 0 || (p.Name != nil && *p.Name == "http")) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			// Ready nil means ready (the API's rule); terminating endpoints are not ready.
			if (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) || len(ep.Addresses) == 0 {
				continue
			}
			t := Target{URL: fmt.Sprintf("http://%s/v1/embeddings", net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(port)))), Track: TrackUnknown}
			if ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" {
				t.Pod = ep.TargetRef.Name
				t.Track = e.trackOf(ctx, t.Pod, statuses)
			}
			ts = append(ts, t)
		}
	}
	e.targets.Store(&ts)
	return nil
}

// podRevision is what a pod's labels say about it.
type podRevision struct {
	instance, revision, track string
}

// trackOf is the role of the pod's revision in its RAGService's status now
// (stable or canary): a promotion hands a revision's pods from the canary to
// stable without recreating them, so the role is read again at every resolve.
// A revision that left the status keeps the last role seen; a pod of the
// layout before one Deployment per revision, or a service whose status cannot
// be read, falls back to its rag.ragops.io/track label.
func (e *Endpoints) trackOf(ctx context.Context, pod string, statuses map[string]*ragv1.RAGServiceStatus) string {
	pr, ok := e.pods[pod]
	if !ok {
		var p corev1.Pod
		if err := e.client.Get(ctx, client.ObjectKey{Namespace: e.namespace, Name: pod}, &p); err != nil {
			return TrackUnknown // asked again on the next refresh
		}
		pr = podRevision{instance: p.Labels[ragv1.LabelInstance], revision: p.Labels[ragv1.LabelRevision], track: p.Labels[ragv1.LabelTrack]}
		e.pods[pod] = pr
	}
	if pr.instance != "" && pr.revision != "" {
		st, read := statuses[pr.instance]
		if !read {
			var s ragv1.RAGService
			if err := e.client.Get(ctx, client.ObjectKey{Namespace: e.namespace, Name: pr.instance}, &s); err == nil {
				st = &s.Status
			}
			statuses[pr.instance] = st
		}
		key := pr.instance + "/" + pr.revision
		if st != nil {
			switch pr.revision {
			case st.StableRevision:
				e.roles[key] = ragv1.TrackStable
			case st.CanaryRevision:
				e.roles[key] = ragv1.TrackCanary
			}
		}
		if role, ok := e.roles[key]; ok {
			return role
		}
	}
	if pr.track != "" {
		return pr.track
	}
	return TrackUnknown
}
