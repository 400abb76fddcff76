package embeddingspace

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// maxProblemsShown bounds how many Problems a verdict message lists.
const maxProblemsShown = 3

// LengthTolerance is how far from 1 the ratio of a canary vector's length to
// stable's may be under minCosine: sqrt(2 * (1 - minCosine)), the relative
// distance between two vectors of equal length at the angle minCosine allows
// (0.0447 at 0.999). A change of length then moves an inner-product score no
// more than the allowed change of angle moves a cosine score.
func LengthTolerance(minCosine float64) float64 {
	return math.Sqrt(2 * (1 - min(1, max(-1, minCosine))))
}

// Judge says whether the canary embeds into stable's space: every probe's
// vector comparable on both sides, the same dimensions, min cosine at least
// minCosine, every vector length within LengthTolerance(minCosine) of
// stable's, and neighbour overlap at least minNeighborOverlap. The message
// carries the numbers. A value that cannot be computed (NaN) never passes, and
// neither do thresholds out of range (minCosine outside [-1, 1],
// minNeighborOverlap outside [0, 1], NaN).
func (c Comparison) Judge(minCosine, minNeighborOverlap float64) (compatible bool, message string) {
	switch {
	case !(minCosine >= -1 && minCosine <= 1):
		return false, fmt.Sprintf("minCosine %v: must be in [-1, 1]", minCosine)
	case !(minNeighborOverlap >= 0 && minNeighborOverlap <= 1):
		return false, fmt.Sprintf("minNeighborOverlap %v: must be in [0, 1]", minNeighborOverlap)
	case c.Probes < MinProbes:
		return false, fmt.Sprintf("%d probes compared: at least %d are needed", c.Probes, MinProbes)
	}
	over := fmt.Sprintf(" over %d probes", c.Probes)
	if c.Refused > 0 {
		over += fmt.Sprintf(" (%d refused by both sides as too long)", c.Refused)
	}
	var failed []string
	if c.DimensionsDiffer() {
		d := fmt.Sprintf("dimensions %d -> %d", c.StableDimensions, c.CanaryDimensions)
		if !math.IsNaN(c.NeighborOverlap) {
			d += fmt.Sprintf(" (neighbour overlap %s within each space, k %d)", Format(c.NeighborOverlap), c.K)
		}
		failed = append(failed, d)
	}
	if n := len(c.Problems); n > 0 {
		shown := c.Problems[:min(n, maxProblemsShown)]
		p := strings.Join(shown, "; ")
		if n > len(shown) {
			p += fmt.Sprintf("; and %d more", n-len(shown))
		}
		failed = append(failed, p)
	}
	if !c.DimensionsDiffer() {
		// A value that is NaN here is explained by the Problems, if any;
		// otherwise it fails on its own.
		switch {
		case math.IsNaN(c.MinCosine):
			if len(c.Problems) == 0 {
				failed = append(failed, "no cosine computable")
			}
		case !(c.MinCosine >= minCosine):
			failed = append(failed, fmt.Sprintf("min cosine %s < %s (probe %d), mean %s",
				formatAgainst(c.MinCosine, minCosine), formatLimit(minCosine), c.WorstProbe, Format(c.MeanCosine)))
		}
		if tol := LengthTolerance(minCosine); !math.IsNaN(c.MinCosine) && !(math.Abs(c.LengthRatio-1) <= tol) {
			failed = append(failed, fmt.Sprintf("vector length x%s (probe %d), beyond 1 ± %s that min cosine %s allows",
				Format(c.LengthRatio), c.LengthProbe, Format(tol), formatLimit(minCosine)))
		}
		switch {
		case math.IsNaN(c.NeighborOverlap):
			if len(c.Problems) == 0 {
				failed = append(failed, "no neighbour overlap computable")
			}
		case !(c.NeighborOverlap >= minNeighborOverlap):
			failed = append(failed, fmt.Sprintf("neighbour overlap %s < %s (k %d)",
				formatAgainst(c.NeighborOverlap, minNeighborOverlap), formatLimit(minNeighborOverlap), c.K))
		}
	}
	if len(failed) > 0 {
		return false, strings.Join(failed, "; ") + over
	}
	// Nothing failed, so every probe was comparable on both sides and every
	// value is a number.
	return true, fmt.Sprintf("min cosine %s >= %s, mean %s, neighbour overlap %s >= %s (k %d)%s",
		formatAgainst(c.MinCosine, minCosine), formatLimit(minCosine), Format(c.MeanCosine),
		formatAgainst(c.NeighborOverlap, minNeighborOverlap), formatLimit(minNeighborOverlap), c.K, over)
}

// Format renders a measured value as status stores it: a decimal with 4
// places ("0.9999"), "" when the value was not computable (NaN).
func Format(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	s := strconv.FormatFloat(v, 'f', 4, 64)
	if s == "-0.0000" {
		return "0.0000"
	}
	return s
}

// formatAgainst renders v with 4 places, or with as many more as it takes for
// the text to fall on the same side of limit as v does: 0.99895 against 0.999
// reads "0.99895", not a "0.9990" that looks like a pass.
func formatAgainst(v, limit float64) string {
	for places := 4; places <= 10; places++ {
		s := strconv.FormatFloat(v, 'f', places, 64)
		if r, _ := strconv.ParseFloat(s, 64); (r >= limit) == (v >= limit) {
			return s
		}
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// formatLimit renders a threshold as short as it reads in the spec ("0.999").
func formatLimit(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
