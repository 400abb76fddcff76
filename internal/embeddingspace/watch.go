package embeddingspace

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// The space watch: between rollouts the operator probes one ready stable pod
// and compares its answer with the fingerprint recorded when the revision
// became stable. An upstream the operator does not own (provider openai) can
// change under a running service — another model behind the same URL, a
// moved model alias, a new truncation setting — with no spec change, so no
// canary runs; this is where it shows. These functions are the watch's pure
// part: the controller probes and stores what they return.

// DefaultWatchInterval applies when spec.rollout.spaceCheck.watchInterval is
// unset (an object that skipped CRD defaulting).
const DefaultWatchInterval = 10 * time.Minute

// WatchInterval is spec.rollout.spaceCheck.watchInterval; 0 when the watch is
// off (also when the space check is).
func WatchInterval(spec v1alpha1.SpaceCheckSpec) time.Duration {
	if spec.Enabled != nil && !*spec.Enabled {
		return 0
	}
	if spec.WatchInterval == nil {
		return DefaultWatchInterval
	}
	return max(0, spec.WatchInterval.Duration)
}

// NeedsRecord says why the fingerprint must be recorded (again) from stable
// now, "" when the one in w stands: there is none; stable serves another
// declared space than it was recorded for (a cutover was promoted); the probe
// set changed (it cannot be compared with answers to other texts); or an
// accept-space token not handled yet asks for it.
func NeedsRecord(w *v1alpha1.SpaceWatchStatus, space, probeSet, acceptToken string) string {
	switch {
	case w == nil || w.Fingerprint == nil:
		return "no fingerprint of stable's space yet"
	case w.Fingerprint.Space != space:
		return fmt.Sprintf("stable now serves space %s (was %s)", quoted(space), quoted(w.Fingerprint.Space))
	case w.Fingerprint.ProbeSet != probeSet:
		return "the probe set changed"
	case acceptToken != "" && acceptToken != w.AcceptedToken:
		return fmt.Sprintf("the space stable serves now was accepted (rag.ragops.io/accept-space %q)", acceptToken)
	}
	return ""
}

// Record is the watch status after recording fp from stable revision rev
// serving space: a fresh start, Compatible by definition, any drift over.
// acceptToken, when set, is recorded as handled.
func Record(w *v1alpha1.SpaceWatchStatus, fp Fingerprint, rev, space, why, acceptToken string, now time.Time) *v1alpha1.SpaceWatchStatus {
	t := metav1.NewTime(now.Truncate(time.Second))
	next := &v1alpha1.SpaceWatchStatus{
		Fingerprint: &v1alpha1.SpaceFingerprint{
			Revision: rev, Space: space, Time: t, ProbeSet: fp.ProbeSet,
			Dimensions: int32(fp.Dimensions), Probes: int32(len(fp.Norms)), Data: fp.Encode(),
		},
		Verdict: v1alpha1.SpaceCompatible,
		Since:   &t,
		Message: fmt.Sprintf("fingerprint recorded from revision %s (%d probes, %d dimensions): %s", rev, len(fp.Norms), fp.Dimensions, why),
	}
	if w != nil {
		next.AcceptedToken = w.AcceptedToken
	}
	if acceptToken != "" {
		next.AcceptedToken = acceptToken
	}
	return next
}

// WatchResult names what one watch found, for metrics and logs.
type WatchResult string

// Results of a watch.
const (
	WatchSame    WatchResult = "same"
	WatchDrifted WatchResult = "drifted"
	WatchFailed  WatchResult = "failed"
)

// Observe folds one watch into the status: vecs are stable's answer to
// probes (nil with probeErr when the pod could not be probed). The status
// changes only when the verdict does, so an idle service costs no write:
// Compatible → Changed starts a drift (DriftedSince), Changed → Compatible
// ends it; a failed probe is Pending and leaves a drift standing (only an
// answer in the recorded space ends it). w must hold a fingerprint.
func Observe(w *v1alpha1.SpaceWatchStatus, probes []string, vecs [][]float32, probeErr error, spec v1alpha1.SpaceCheckSpec, now time.Time) (*v1alpha1.SpaceWatchStatus, WatchResult) {
	next := w.DeepCopy()
	t := metav1.NewTime(now.Truncate(time.Second))
	verdict, result := v1alpha1.SpacePending, WatchFailed
	var msg, minCos, overlap string
	if probeErr != nil {
		msg = fmt.Sprintf("could not probe stable: %v", probeErr)
	} else {
		fp, err := DecodeFingerprint(w.Fingerprint.Data)
		var c Comparison
		if err == nil {
			c, err = fp.Compare(probes, vecs)
		}
		if err != nil {
			msg = fmt.Sprintf("could not compare with the fingerprint: %v", err)
		} else {
			minCosine, minOverlap, _ := Thresholds(spec)
			ok, m := c.Judge(minCosine, minOverlap)
			verdict, result = v1alpha1.SpaceChanged, WatchDrifted
			if ok {
				verdict, result = v1alpha1.SpaceCompatible, WatchSame
			}
			msg, minCos, overlap = m, Format(c.MinCosine), Format(c.NeighborOverlap)
		}
	}
	if next.Verdict == verdict {
		return next, result
	}
	next.Verdict, next.Since, next.Message = verdict, &t, msg
	if verdict != v1alpha1.SpacePending {
		next.MinCosine, next.NeighborOverlap = minCos, overlap
	}
	switch verdict {
	case v1alpha1.SpaceChanged:
		if next.DriftedSince == nil {
			next.DriftedSince = &t
		}
	case v1alpha1.SpaceCompatible:
		next.DriftedSince = nil
	}
	return next, result
}

// Drifted says whether a drift stands: a watch found stable in another space
// than its fingerprint and none has found it back since.
func Drifted(w *v1alpha1.SpaceWatchStatus) bool {
	return w != nil && w.DriftedSince != nil
}

// DriftMessage is the SpaceDrifted condition's message.
func DriftMessage(w *v1alpha1.SpaceWatchStatus, onDrift v1alpha1.DriftAction) string {
	fp := w.Fingerprint
	msg := fmt.Sprintf("stable answers the probes in another vector space than the one recorded from revision %s at %s, with no change of spec (has the upstream changed its model?)",
		fp.Revision, fp.Time.UTC().Format(time.RFC3339))
	if w.Verdict == v1alpha1.SpaceChanged {
		msg += ": " + w.Message
	} else {
		msg += fmt.Sprintf(" (since %s; the last watch %s)", w.DriftedSince.UTC().Format(time.RFC3339), w.Message)
	}
	if onDrift == v1alpha1.DriftStopTraffic {
		msg += "; onDrift StopTraffic: the shared Service selects no pod"
	}
	return msg + "; restore the upstream, or accept its space with the rag.ragops.io/accept-space annotation, or declare a new spec.embedding.space and re-index"
}

func quoted(s string) string {
	if s == "" {
		return `""`
	}
	return s
}
