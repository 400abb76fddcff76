package kubectlrag

import (
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/util/duration"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/embeddingspace"
)

// renderSpaceWatch says what the space watch last found: the fingerprint it
// compares with, the verdict and since when, and what to do about a drift.
func renderSpaceWatch(w io.Writer, svc *ragv1.RAGService, now time.Time) {
	interval := embeddingspace.WatchInterval(svc.Spec.Rollout.SpaceCheck)
	sw := svc.Status.SpaceWatch
	if interval == 0 || sw == nil || sw.Fingerprint == nil {
		return // off, or nothing recorded yet
	}
	fp := sw.Fingerprint
	verdict := string(sw.Verdict)
	switch {
	case embeddingspace.Drifted(sw):
		verdict = fmt.Sprintf("DRIFTED for %s", age(*sw.DriftedSince, now))
	case sw.Verdict == ragv1.SpaceCompatible:
		verdict = "same space"
	}
	since := ""
	if sw.Since != nil {
		since = fmt.Sprintf(" (verdict %s since %s ago)", sw.Verdict, age(*sw.Since, now))
	}
	fmt.Fprintf(w, "Space watch: every %s, %s%s; fingerprint of revision %s recorded %s ago (%d probes, %d dimensions)\n",
		duration.HumanDuration(interval), verdict, since, fp.Revision, age(fp.Time, now), fp.Probes, fp.Dimensions)
	if sw.Message != "" {
		fmt.Fprintf(w, "             %s\n", oneLine(sw.Message))
	}
	if !embeddingspace.Drifted(sw) {
		return
	}
	if svc.Spec.Rollout.SpaceCheck.OnDrift == ragv1.DriftStopTraffic {
		fmt.Fprintf(w, "             onDrift StopTraffic: Service %s selects no pod\n", svc.Name)
	}
	fmt.Fprintf(w, "             restore the upstream (the next watch clears this), or keep its new space: kubectl rag accept-space %s\n", svc.Name)
}
