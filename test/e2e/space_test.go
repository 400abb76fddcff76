package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/rollout"
)

// endpointsWatch polls a Service's ready endpoints every 100ms and remembers
// the fewest seen once it had want of them.
type endpointsWatch struct {
	mu       sync.Mutex
	full     bool
	minReady int
	polls    int
	*poller
}

func watchEndpoints(ns, service string, want int) *endpointsWatch {
	w := &endpointsWatch{}
	w.poller = startPolling(100*time.Millisecond, func() {
		var slices discoveryv1.EndpointSliceList
		if err := k8s.List(context.Background(), &slices, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil {
			return
		}
		ready := 0
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready++
				}
			}
		}
		w.mu.Lock()
		w.polls++
		if ready >= want && !w.full {
			w.full, w.minReady = true, ready
		}
		if w.full {
			w.minReady = min(w.minReady, ready)
		}
		w.mu.Unlock()
	})
	return w
}

func (w *endpointsWatch) finish() (polls, minReady int) {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.polls, w.minReady
}

func startClients(t *testing.T, ns, service string) *loadgen.Load {
	t.Helper()
	l, err := loadgen.StartLoad(context.Background(), loadgen.LoadConfig{Client: k8s, Namespace: ns, Service: service, Concurrency: 4, Rate: 30})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// answers counts the OK answers of s, whatever their vector size.
func answers(s loadgen.Stats) int {
	n := 0
	for _, d := range s.Dims {
		n += d.Count
	}
	return n
}

func dimsOf(s loadgen.Stats) string {
	var parts []string
	for _, d := range slices.Sorted(maps.Keys(s.Dims)) {
		parts = append(parts, fmt.Sprintf("%d dims: %d answers (%s to %s)", d, s.Dims[d].Count, s.Dims[d].First.Format("15:04:05.000"), s.Dims[d].Last.Format("15:04:05.000")))
	}
	return strings.Join(parts, "; ")
}

// The embedding-space guard on real pods, with clients that follow the shared
// Service's ready EndpointSlices throughout and record every answer's vector
// size: (a) an undeclared model change (hash-384 to hash-256) is rolled back
// and no client gets a 256-dimension vector; (b) a change that keeps the space
// is Compatible with a cosine of 1 and promoted; (c) a declared change (space
// v2) is previewed on docs-canary while clients get only 384 dimensions, and
// after the promote they get only 256: no request sent after the first one
// answered in v2 is answered in v1, and the preview's pods become the service
// without a restart. Through the rollback (a), the canary and promotion (b)
// and the cutover (c), every client answer is a 200, and ready pods never
// drop below spec.replicas (sampled every 200ms).
func TestEmbeddingSpaceGuard(t *testing.T) {
	ns := namespace(t, "e2e-space")
	const replicas = 2
	base := svcSpec{Name: "docs", Namespace: ns, Replicas: replicas, Model: "hash-384", Space: "v1"}
	apply(t, base)
	waitHealthy(t, ns, "docs", 90*time.Second)
	first := getSvc(t, ns, "docs").Status.StableRevision
	capa := watchCapacity(ns, "docs")
	capaDone := false
	defer func() {
		if !capaDone {
			capa.finish()
		}
	}()

	// (a) Undeclared: the model changes, the space is said to stay.
	load := startClients(t, ns, "docs")
	undeclared := base
	undeclared.Model = "hash-256"
	patched := time.Now()
	apply(t, undeclared)
	var s *ragv1.RAGService
	eventually(t, 90*time.Second, 200*time.Millisecond, "rollback EmbeddingSpaceChanged", func() (bool, string) {
		s = getSvc(t, ns, "docs")
		rb := s.Status.Rollback
		return rb != nil && rb.Reason == rollout.ReasonEmbeddingSpaceChanged, fmt.Sprintf("phase %s rollback %+v", s.Status.Phase, rb)
	})
	toRollback := time.Since(patched)
	if !strings.Contains(s.Status.Rollback.Message, "dimensions 384 -> 256") || s.Status.StableRevision != first {
		t.Fatalf("rollback %+v, stable %s (was %s)", s.Status.Rollback, s.Status.StableRevision, first)
	}
	rolledBackRev := s.Status.Rollback.Revision
	eventually(t, 60*time.Second, 500*time.Millisecond, "the canary's pods gone, docs not selecting its revision", func() (bool, string) {
		n := revisionPods(t, ns, "docs", rolledBackRev)
		sel := selectedRevision(t, ns, "docs")
		return n == 0 && (sel == "" || sel == first), fmt.Sprintf("%d pods of the rolled-back revision %s; docs selects revision %q", n, rolledBackRev, sel)
	})
	// The clients go on after the rollback: as many answers as 2 s of their 30
	// a second.
	rolledBack := answers(load.Snapshot())
	eventually(t, 60*time.Second, 200*time.Millisecond, "60 answers after the rollback", func() (bool, string) {
		now := load.Snapshot()
		return answers(now) >= rolledBack+60, dimsOf(now)
	})
	a := load.Stop()
	t.Logf("(a) undeclared hash-384 -> hash-256: rolled back %s after the patch: %s; clients: %s", toRollback.Round(100*time.Millisecond), s.Status.Rollback.Message, dimsOf(a))
	if a.Dims[256].Count != 0 || a.Dims[384].Count < 50 {
		t.Fatalf("clients got %s: want only 384-dimension answers", dimsOf(a))
	}
	allOK(t, "(a) the rollback", a)

	// (b) The same space: concurrency only.
	load = startClients(t, ns, "docs")
	compatible := base
	compatible.MaxInFlight = 16
	apply(t, compatible)
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "120s"); code != 0 {
		t.Fatalf("kubectl rag status --watch after the compatible change: exit %d\n%s", code, tail(out, 30))
	}
	s = getSvc(t, ns, "docs")
	es := s.Status.EmbeddingSpace
	if es == nil || es.Verdict != ragv1.SpaceCompatible || es.MinCosine != "1.0000" || s.Status.StableRevision == first {
		t.Fatalf("after the compatible change: space %+v, stable %s", es, s.Status.StableRevision)
	}
	second := s.Status.StableRevision
	b := load.Stop()
	t.Logf("(b) maxInFlight 8 -> 16: %s, min cosine %s, promoted; clients: %s", es.Verdict, es.MinCosine, dimsOf(b))
	if b.Dims[256].Count != 0 {
		t.Fatalf("clients got %s", dimsOf(b))
	}
	allOK(t, "(b) the canary and its promotion", b)

	// (c) Declared: hash-256 in space v2, a cutover.
	load = startClients(t, ns, "docs")
	epw := watchEndpoints(ns, "docs", replicas)
	declared := compatible
	declared.Model, declared.Space = "hash-256", "v2"
	apply(t, declared)
	eventually(t, 90*time.Second, 200*time.Millisecond, "the preview awaiting the cutover", func() (bool, string) {
		s = getSvc(t, ns, "docs")
		c := apimeta.FindStatusCondition(s.Status.Conditions, ragv1.ConditionReconciling)
		return s.Status.Phase == ragv1.PhasePaused && c != nil && c.Reason == rollout.ReasonAwaitingCutover, fmt.Sprintf("phase %s reconciling %+v", s.Status.Phase, c)
	})
	preview, err := loadgen.StartLoad(context.Background(), loadgen.LoadConfig{Client: k8s, Namespace: ns, Service: "docs-canary", Concurrency: 2, Rate: 10})
	if err != nil {
		t.Fatal(err)
	}
	// As many answers as 3 s of its 10 a second.
	eventually(t, 60*time.Second, 200*time.Millisecond, "30 answers of the preview", func() (bool, string) {
		now := preview.Snapshot()
		return answers(now) >= 30, dimsOf(now)
	})
	pv := preview.Stop()
	if pv.Dims[256].Count == 0 || pv.Dims[384].Count != 0 {
		t.Fatalf("the preview docs-canary answered %s: want 256 dimensions only", dimsOf(pv))
	}
	previewRev := getSvc(t, ns, "docs").Status.CanaryRevision
	previewPods := endpointPods(t, ns, "docs-canary")
	allPods, err := instancePods(ns, "docs")
	if err != nil {
		t.Fatal(err)
	}
	restartsBefore := restarts(allPods)
	// Exit 3: in progress, waiting for a person.
	if code, out := exitCode("rag", "status", "docs", "-n", ns); code != 3 || !strings.Contains(out, "re-index against docs-canary, then: kubectl rag promote docs") {
		t.Errorf("kubectl rag status (exit %d) does not say what the cutover waits for:\n%s", code, out)
	}
	before := load.Snapshot()
	if before.Dims[256].Count != 0 {
		t.Fatalf("clients of docs got 256-dimension answers during the preview: %s", dimsOf(before))
	}
	promoted := time.Now()
	mustKubectl(t, "", "rag", "promote", "docs", "-n", ns)
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "120s"); code != 0 {
		t.Fatalf("kubectl rag status --watch after the cutover's promote: exit %d\n%s", code, tail(out, 30))
	}
	toCutover := time.Since(promoted)
	// The preview's pods are the service now: docs serves them (and the ones
	// its Deployment grew by to spec.replicas), none was recreated or restarted.
	var served map[types.UID]string
	eventually(t, 30*time.Second, 200*time.Millisecond, "docs serving the preview's pods", func() (bool, string) {
		served = endpointPods(t, ns, "docs")
		missing := 0
		for uid := range previewPods {
			if _, ok := served[uid]; !ok {
				missing++
			}
		}
		return missing == 0 && len(served) == replicas, fmt.Sprintf("docs serves %s; the preview's pods: %s", podNames(served), podNames(previewPods))
	})
	after, err := instancePods(ns, "docs")
	if err != nil {
		t.Fatal(err)
	}
	restartsAfter := restarts(after)
	for uid, name := range previewPods {
		if n := restartsAfter[uid]; n != restartsBefore[uid] {
			t.Errorf("preview pod %s restarted at the cutover's promote: %d restarts, %d before", name, n, restartsBefore[uid])
		}
	}
	t.Logf("(c) the preview (revision %s) had %d ready pods (%s); after the promote docs serves %d pods (%s), the preview's among them, none restarted",
		previewRev, len(previewPods), podNames(previewPods), len(served), podNames(served))
	// The clients go on after the cutover: as many answers as 3 s of their 30
	// a second, so an old-space answer still served would show.
	cutOver := answers(load.Snapshot())
	eventually(t, 60*time.Second, 200*time.Millisecond, "90 answers after the cutover", func() (bool, string) {
		now := load.Snapshot()
		return answers(now) >= cutOver+90, dimsOf(now)
	})
	c := load.Stop()
	polls, minReady := epw.finish()
	capaDone = true
	cpolls, minTotal, _, worst := capa.finish()
	s = getSvc(t, ns, "docs")
	t.Logf("(c) declared space v2 with hash-256: promote -> stable on v2 in %s; preview answered %s; clients: %s; endpoints behind docs: %d polls, fewest ready %d",
		toCutover.Round(100*time.Millisecond), dimsOf(pv), dimsOf(c), polls, minReady)
	if s.Status.EmbeddingSpace == nil || s.Status.EmbeddingSpace.Name != "v2" || s.Status.StableRevision == second {
		t.Fatalf("after the cutover: space %+v stable %s", s.Status.EmbeddingSpace, s.Status.StableRevision)
	}
	d384, d256 := c.Dims[384], c.Dims[256]
	if d256.Count == 0 || d256.First.Before(promoted) {
		t.Fatalf("clients got 256 dimensions before the promote (first at %s, promote at %s)", d256.First.Format("15:04:05.000"), promoted.Format("15:04:05.000"))
	}
	// No client sees both spaces: once a request was routed to the new space,
	// none is routed to the old one (sending times; answers in flight at the
	// switch may finish in either order).
	t.Logf("(c) the switch: last request answered in 384 dimensions sent at %s (answered %s), first answered in 256 sent at %s (answered %s)",
		d384.LastSent.Format("15:04:05.000"), d384.Last.Format("15:04:05.000"), d256.FirstSent.Format("15:04:05.000"), d256.First.Format("15:04:05.000"))
	if !d384.LastSent.Before(d256.FirstSent) {
		t.Errorf("a request sent %s after the first one answered in 256 dimensions was answered in 384: clients of docs saw both spaces", d384.LastSent.Sub(d256.FirstSent))
	}
	if overlap := d384.Last.Sub(d256.First); overlap > 5*time.Second {
		t.Errorf("clients got 384 dimensions %s after the first 256 one: both spaces were served", overlap)
	}
	allOK(t, "(c) the cutover", c)
	if minReady < replicas {
		t.Errorf("ready endpoints behind docs fell to %d during the cutover, below spec.replicas %d", minReady, replicas)
	}
	t.Logf("capacity through (a), (b) and (c): %d polls every 200ms, fewest ready pods %d (spec.replicas %d); worst: %s", cpolls, minTotal, replicas, worst)
	if minTotal < replicas {
		t.Errorf("ready pods fell to %d, below spec.replicas %d: %s", minTotal, replicas, worst)
	}
	space, dims := modelsOf(t, ns, "docs")
	if space != "v2" || dims != 256 {
		t.Errorf("GET /v1/models of a docs pod says space %q, %d dimensions; want v2, 256", space, dims)
	}
}

// selectedRevision is the revision a Service's selector picks ("" for all).
func selectedRevision(t *testing.T, ns, name string) string {
	t.Helper()
	var svc corev1.Service
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
		t.Fatalf("get Service %s: %v", name, err)
	}
	return svc.Spec.Selector[ragv1.LabelRevision]
}

// restarts are the container restarts of each pod.
func restarts(pods []corev1.Pod) map[types.UID]int32 {
	out := map[types.UID]int32{}
	for _, p := range pods {
		for _, c := range p.Status.ContainerStatuses {
			out[p.UID] += c.RestartCount
		}
	}
	return out
}

// allOK fails the test unless every request of the load was answered 200:
// for a client a 503 (draining or not) or a refused connection is an error.
func allOK(t *testing.T, phase string, s loadgen.Stats) {
	t.Helper()
	n, ok := s.Total(""), s.Count("", loadgen.OutcomeOK)
	t.Logf("%s: %d requests through docs' endpoints, %d answered 200, %d otherwise; codes by track %v", phase, n, ok, n-ok, s.Codes)
	if n != ok {
		for _, f := range s.Failures {
			t.Logf("  %s %s %s (%s): %s", f.Time.Format("15:04:05.000"), f.Outcome, f.Pod, f.Track, f.Detail)
		}
		t.Errorf("%s: %d of %d client requests were not answered 200", phase, n-ok, n)
	}
}

// modelsOf asks a ready pod of service what it serves.
func modelsOf(t *testing.T, ns, service string) (space string, dims int) {
	t.Helper()
	var eps discoveryv1.EndpointSliceList
	if err := k8s.List(context.Background(), &eps, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: service}); err != nil || len(eps.Items) == 0 || len(eps.Items[0].Endpoints) == 0 {
		t.Fatalf("no endpoint of %s: %v", service, err)
	}
	resp, err := http.Get("http://" + eps.Items[0].Endpoints[0].Addresses[0] + ":8080/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var list struct {
		Data []struct {
			Ragops struct {
				Space      string `json:"space"`
				Dimensions int    `json:"dimensions"`
			} `json:"ragops"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Data) == 0 {
		t.Fatalf("GET /v1/models: %v: %s", err, body)
	}
	return list.Data[0].Ragops.Space, list.Data[0].Ragops.Dimensions
}
