package embeddingspace

import (
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Defaults of spec.rollout.spaceCheck when an object skipped CRD defaulting.
const (
	DefaultMinCosine          = 0.999
	DefaultMinNeighborOverlap = 0.9
	DefaultK                  = 5
)

// Thresholds are spec.rollout.spaceCheck's numbers, parsed; an empty or
// unparsable value (the CRD refuses both) takes its default.
func Thresholds(spec v1alpha1.SpaceCheckSpec) (minCosine, minNeighborOverlap float64, k int) {
	minCosine = decimal(spec.MinCosine, DefaultMinCosine)
	minNeighborOverlap = decimal(spec.MinNeighborOverlap, DefaultMinNeighborOverlap)
	k = DefaultK
	if spec.K > 0 {
		k = int(spec.K)
	}
	return minCosine, minNeighborOverlap, k
}

func decimal(s string, def float64) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1 {
		return def
	}
	return f
}

// Check compares the two tracks' answers to the probes under spec and returns
// the record of the check as status.embeddingSpace keeps it: Compatible or
// Changed with the numbers. Inputs that are not two answers to one probe set
// make it Changed too, with the reason: a check never passes by accident.
func Check(stable, canary [][]float32, spec v1alpha1.SpaceCheckSpec, revision string, now time.Time) v1alpha1.EmbeddingSpaceStatus {
	minCos, minOverlap, k := Thresholds(spec)
	t := metav1.NewTime(now)
	st := v1alpha1.EmbeddingSpaceStatus{Revision: revision, Time: &t, Verdict: v1alpha1.SpaceChanged}
	c, err := Compare(stable, canary, k)
	if err != nil {
		st.Message = err.Error()
		return st
	}
	ok, msg := c.Judge(minCos, minOverlap)
	if ok {
		st.Verdict = v1alpha1.SpaceCompatible
	}
	st.Message = msg
	st.MinCosine, st.MeanCosine, st.NeighborOverlap = Format(c.MinCosine), Format(c.MeanCosine), Format(c.NeighborOverlap)
	st.StableDimensions, st.CanaryDimensions, st.Probes = int32(c.StableDimensions), int32(c.CanaryDimensions), int32(c.Probes)
	return st
}

// Failed is the record of a probe attempt that got no answer to compare: the
// verdict stays Pending and the attempt is retried.
func Failed(err error, revision string, now time.Time) v1alpha1.EmbeddingSpaceStatus {
	t := metav1.NewTime(now)
	return v1alpha1.EmbeddingSpaceStatus{Revision: revision, Time: &t, Verdict: v1alpha1.SpacePending, Message: err.Error()}
}
