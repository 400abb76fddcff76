package controllers

import (
	"context"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/embeddingspace"
	"github.com/ragops/rag-operator/internal/observe"
	"github.com/ragops/rag-operator/internal/rollout"
)

// Reasons of the space watch's events.
const (
	ReasonSpaceFingerprintRecorded = "SpaceFingerprintRecorded"
	ReasonSpaceWatchFailed         = "SpaceWatchFailed"
)

// spaceWatchRetry is how soon a fingerprint that could not be recorded (no
// answer from stable) is tried again, when the interval is longer.
const spaceWatchRetry = 30 * time.Second

var (
	spaceWatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragops_space_watch_total",
		Help: "Space watches of a service's stable track, by result: same (the recorded space), drifted (another space), failed (no answer to compare), recorded (a fingerprint recorded).",
	}, []string{"namespace", "name", "result"})
	spaceDrifted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ragops_space_drifted",
		Help: "1 while the space watch finds stable answering in another vector space than its fingerprint (condition SpaceDrifted), else 0.",
	}, []string{"namespace", "name"})
	spaceProbeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragops_space_probe_requests_total",
		Help: "Requests of the embedding-space probe set the operator sent to a track's pods (the canary check, and the space watch of stable), by result: an HTTP status code, or failed.",
	}, []string{"namespace", "name", "track", "result"})
	spaceWatchLast = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ragops_space_watch_last_time_seconds",
		Help: "Unix time of the last space watch of a service (status is written only when its verdict changes).",
	}, []string{"namespace", "name"})
)

func init() {
	metrics.Registry.MustRegister(spaceWatches, spaceDrifted, spaceProbeRequests, spaceWatchLast)
}

// watchSchedule is when each service's next space watch is due. It lives in
// memory: status is written only when a verdict changes (an idle service
// costs no write), and a restarted operator simply watches at once.
type watchSchedule struct {
	mu   sync.Mutex
	next map[types.NamespacedName]time.Time
	// failed: the last attempt to record a fingerprint got no answer; the
	// next waits for its time (a fingerprint otherwise goes at once).
	failed map[types.NamespacedName]bool
}

// due says whether key's watch is due at now, and else how long until it
// is. A service seen for the first time (a new service, or every service
// after the operator restarted) is first watched at a point within one
// interval chosen by its name, so a restart does not probe every service at
// once.
func (w *watchSchedule) due(key types.NamespacedName, now time.Time, interval time.Duration) (bool, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.next[key]
	if !ok {
		if w.next == nil {
			w.next, w.failed = map[types.NamespacedName]time.Time{}, map[types.NamespacedName]bool{}
		}
		h := fnv.New64a()
		h.Write([]byte(key.String()))
		at = now.Add(time.Duration(h.Sum64() % uint64(interval)))
		w.next[key] = at
	}
	if !now.Before(at) {
		return true, 0
	}
	return false, at.Sub(now)
}

// set schedules the next watch; failedRecord says the pass failed to record
// a fingerprint.
func (w *watchSchedule) set(key types.NamespacedName, at time.Time, failedRecord bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next == nil {
		w.next, w.failed = map[types.NamespacedName]time.Time{}, map[types.NamespacedName]bool{}
	}
	w.next[key] = at
	if failedRecord {
		w.failed[key] = true
	} else {
		delete(w.failed, key)
	}
}

func (w *watchSchedule) recordFailed(key types.NamespacedName) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failed[key]
}

func (w *watchSchedule) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.next, key)
	delete(w.failed, key)
}

// watchSpace is the space watch's step. Between rollouts (a stable revision,
// no canary) and every spec.rollout.spaceCheck.watchInterval, it sends the
// probe set in one request to one ready stable pod and compares the answer
// with the fingerprint in status.spaceWatch, recording the fingerprint first
// when there is none (or it is stale: NeedsRecord). A failed probe is a
// failed watch, never a drift. The Services follow in reconcileTracks
// (trafficSelection), the conditions in summarize (spaceDrift).
func (r *RAGServiceReconciler) watchSpace(ctx context.Context, s *scope) (ctrl.Result, error) {
	svc := s.obj
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	interval := embeddingspace.WatchInterval(svc.Spec.Rollout.SpaceCheck)
	if interval == 0 {
		// Off: nothing is watched, so nothing stands drifted.
		svc.Status.SpaceWatch = nil
		r.watches.forget(key)
		spaceDrifted.DeletePartialMatch(prometheus.Labels{"namespace": svc.Namespace, "name": svc.Name})
		return ctrl.Result{}, nil
	}
	defer func() {
		spaceDrifted.WithLabelValues(svc.Namespace, svc.Name).Set(boolGauge(embeddingspace.Drifted(svc.Status.SpaceWatch)))
	}()
	st := svc.Status.RolloutStatus
	if st.StableRevision == "" || st.CanaryRevision != "" || s.stable == nil {
		// During a rollout the canary check compares the tracks; the watch
		// resumes once it is over (the rollout's passes bring it back).
		return ctrl.Result{}, nil
	}
	ready := observe.ReadyPods(s.stablePods, st.StableRevision)
	url := r.apiURL(ready)
	if url == "" {
		return ctrl.Result{}, nil // a pod becoming ready triggers a pass
	}
	probes := s.probes
	if probes == nil {
		var problem *rollout.Problem
		var err error
		if probes, problem, err = r.loadProbes(ctx, svc); err != nil || problem != nil {
			// Told where the probes are read for the canary check; a
			// service without probes is not watched.
			return ctrl.Result{}, err
		}
	}
	set := embeddingspace.WithLongProbes(probes)
	space := svc.Spec.Embedding.Space
	if es := st.EmbeddingSpace; es != nil {
		space = es.Name
	}
	accept := svc.Annotations[ragv1.AnnotationAcceptSpace]
	why := embeddingspace.NeedsRecord(svc.Status.SpaceWatch, space, embeddingspace.ProbeSetID(set), accept)
	// A fingerprint to record goes at once (a person's accept-space, a
	// cutover just promoted), unless the last attempt got no answer.
	if due, wait := r.watches.due(key, s.now, interval); !due && (why == "" || r.watches.recordFailed(key)) {
		return ctrl.Result{RequeueAfter: wait}, nil
	}

	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	vecs, statuses, probeErr := r.probe().EmbedProbes(pctx, url, "", set, embeddingspace.IsLongProbe)
	cancel()
	countSpaceProbes(svc, ragv1.TrackStable, statuses)
	spaceWatchLast.WithLabelValues(svc.Namespace, svc.Name).Set(float64(s.now.Unix()))
	log := ctrl.LoggerFrom(ctx)

	if why != "" {
		fp, err := recordable(set, vecs, probeErr, svc)
		if err != nil {
			spaceWatches.WithLabelValues(svc.Namespace, svc.Name, string(embeddingspace.WatchFailed)).Inc()
			log.Info("Could not record the fingerprint of stable's space", "reason", why, "error", err.Error())
			r.watches.set(key, s.now.Add(min(interval, spaceWatchRetry)), true)
			return ctrl.Result{RequeueAfter: min(interval, spaceWatchRetry)}, nil
		}
		svc.Status.SpaceWatch = embeddingspace.Record(svc.Status.SpaceWatch, fp, st.StableRevision, space, why, accept, s.now)
		spaceWatches.WithLabelValues(svc.Namespace, svc.Name, "recorded").Inc()
		log.Info("Recorded the fingerprint of stable's space", "revision", st.StableRevision, "reason", why)
		r.record(svc, []rollout.Event{{Type: rollout.EventNormal, Reason: ReasonSpaceFingerprintRecorded, Message: svc.Status.SpaceWatch.Message}})
		r.watches.set(key, s.now.Add(interval), false)
		return ctrl.Result{RequeueAfter: interval}, nil
	}

	before := svc.Status.SpaceWatch.Verdict
	next, result := embeddingspace.Observe(svc.Status.SpaceWatch, set, vecs, probeErr, svc.Spec.Rollout.SpaceCheck, s.now)
	svc.Status.SpaceWatch = next
	spaceWatches.WithLabelValues(svc.Namespace, svc.Name, string(result)).Inc()
	if next.Verdict != before {
		log.Info("Space watch", "result", result, "verdict", next.Verdict, "message", next.Message)
		if result == embeddingspace.WatchFailed {
			r.record(svc, []rollout.Event{{Type: rollout.EventWarning, Reason: ReasonSpaceWatchFailed, Message: next.Message}})
		}
	}
	r.watches.set(key, s.now.Add(interval), false)
	return ctrl.Result{RequeueAfter: interval}, nil
}

// recordable is the fingerprint of stable's answer, or why there is none.
func recordable(probes []string, vecs [][]float32, probeErr error, svc *ragv1.RAGService) (embeddingspace.Fingerprint, error) {
	if probeErr != nil {
		return embeddingspace.Fingerprint{}, probeErr
	}
	_, _, k := embeddingspace.Thresholds(svc.Spec.Rollout.SpaceCheck)
	return embeddingspace.NewFingerprint(probes, vecs, k)
}

// spaceDrift is the drift the summary shows (condition SpaceDrifted, Stalled,
// Degraded); nil when none stands.
func spaceDrift(svc *ragv1.RAGService) *rollout.Problem {
	w := svc.Status.SpaceWatch
	if embeddingspace.WatchInterval(svc.Spec.Rollout.SpaceCheck) == 0 || !embeddingspace.Drifted(w) {
		return nil
	}
	return &rollout.Problem{Reason: rollout.ReasonUpstreamSpaceChanged, Message: embeddingspace.DriftMessage(w, svc.Spec.Rollout.SpaceCheck.OnDrift)}
}

// selectNone makes the shared Service select no pod (servicesFor): its
// selector gains labelTraffic=trafficStopped, which no pod carries.
const selectNone rollout.Selection = "None"

// The label (and value) a StopTraffic selector adds.
const (
	labelTraffic   = "rag.ragops.io/traffic"
	trafficStopped = "stopped-space-drifted"
)

// trafficSelection is what the shared Service selects: the planner's choice,
// or no pod while a drift stands under onDrift StopTraffic (for teams that
// prefer no answer to an answer from another space).
func trafficSelection(svc *ragv1.RAGService, planned rollout.Selection) rollout.Selection {
	if svc.Spec.Rollout.SpaceCheck.OnDrift == ragv1.DriftStopTraffic && spaceDrift(svc) != nil {
		return selectNone
	}
	return planned
}

// countSpaceProbes counts the space probes' requests (canary check and watch)
// in ragops_space_probe_requests_total, by HTTP status ("failed" without
// one). Analysis probe traffic has its own counter.
func countSpaceProbes(svc *ragv1.RAGService, track string, statuses []int) {
	for _, code := range statuses {
		result := "failed"
		if code != 0 {
			result = strconv.Itoa(code)
		}
		spaceProbeRequests.WithLabelValues(svc.Namespace, svc.Name, track, result).Inc()
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// forgetSpaceWatch drops a deleted service's schedule and series.
func (r *RAGServiceReconciler) forgetSpaceWatch(ns, name string) {
	r.watches.forget(types.NamespacedName{Namespace: ns, Name: name})
	labels := prometheus.Labels{"namespace": ns, "name": name}
	spaceWatches.DeletePartialMatch(labels)
	spaceDrifted.DeletePartialMatch(labels)
	spaceProbeRequests.DeletePartialMatch(labels)
	spaceWatchLast.DeletePartialMatch(labels)
}
