// Package embeddingspace decides whether two servers embed into the same vector
// space: it compares the vectors a stable and a canary server gave for the same
// probe texts. A RAG index only works with queries embedded in the space it was
// built in, and a space change answers 200 like any other, so this comparison is
// the only place it shows. Pure: no client, no clock.
package embeddingspace

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// MinProbes is the fewest probes a comparison takes: neighbour overlap needs
// each probe to have at least one other probe.
const MinProbes = 2

// Comparison is what Compare measured. Probe numbers are indexes into the probe
// list, from 0.
type Comparison struct {
	Probes int // probes each side answered
	// K is the number of nearest neighbours compared per probe: the k asked
	// for, clamped to one less than the probes valid on both sides.
	K int

	// StableDimensions and CanaryDimensions are the length of most of each
	// side's vectors (the first such length on a tie); a vector of another
	// length is a Problem.
	StableDimensions int
	CanaryDimensions int

	// MinCosine and MeanCosine are over the probes whose cosine(canary, stable)
	// is defined; NaN when none is (for instance when the dimensions differ).
	MinCosine  float64
	MeanCosine float64
	WorstProbe int // the probe with MinCosine; -1 when none

	// LengthRatio is (length of canary vector) / (length of stable vector) at
	// LengthProbe, the probe with a defined cosine where that ratio is farthest
	// from 1 (NaN and -1 when none). Cosine ignores length, but an index that
	// scores by inner product does not: a server that stops normalising its
	// vectors changes every score.
	LengthRatio float64
	LengthProbe int

	// NeighborOverlap is the mean over probes of |N_stable(i) ∩ N_canary(i)| / K,
	// where N(i) are probe i's K nearest other probes by cosine within one
	// side's vectors. Only probes valid on both sides take part. It is computed
	// even when the dimensions differ, since it compares each space with
	// itself; it then tells how alike the two spaces rank neighbours, which
	// helps plan a re-index, but never makes them compatible. NaN when fewer
	// than MinProbes probes are valid on both sides.
	NeighborOverlap float64

	// Problems are the vectors that cannot be compared: empty, zero, NaN or
	// infinite components, or a length unlike the rest of their side's. Each
	// names its probe and side. Any Problem makes the spaces Changed.
	Problems []string

	// Refused counts the probes neither side embedded: a nil vector is a
	// text the server refused (a long probe past its input window), and
	// two servers that both refuse it agree. A nil on one side only is a
	// Problem.
	Refused int
}

// DimensionsDiffer reports whether the two sides answered vectors of different
// lengths, which leaves no cosine computable.
func (c Comparison) DimensionsDiffer() bool { return c.StableDimensions != c.CanaryDimensions }

// Compare measures how alike the canary's vectors are to stable's: cosine per
// probe, vector length, and neighbour overlap with k neighbours per probe.
// stable[i] and canary[i] must be the two sides' vectors for probe i; nil
// for a probe that side's server refused. It errors
// only when the inputs are not two answers to one probe set (different probe
// counts, fewer than MinProbes probes) or k < 1; whatever is wrong inside an
// answer is a finding of the Comparison, which Judge never passes. Sums
// accumulate in float64.
func Compare(stable, canary [][]float32, k int) (Comparison, error) {
	switch {
	case len(stable) != len(canary):
		return Comparison{}, fmt.Errorf("probe counts differ: stable answered %d vectors, canary %d", len(stable), len(canary))
	case len(stable) < MinProbes:
		return Comparison{}, fmt.Errorf("%d probes: at least %d are needed", len(stable), MinProbes)
	case k < 1:
		return Comparison{}, fmt.Errorf("k %d: must be at least 1", k)
	}
	s, c := newSide("stable", stable), newSide("canary", canary)
	cmpn := Comparison{
		Probes:           len(stable),
		StableDimensions: s.dims,
		CanaryDimensions: c.dims,
		MinCosine:        math.NaN(),
		MeanCosine:       math.NaN(),
		WorstProbe:       -1,
		LengthRatio:      math.NaN(),
		LengthProbe:      -1,
		NeighborOverlap:  math.NaN(),
	}
	var both []int // probes valid on both sides
	for i := range stable {
		if stable[i] == nil && canary[i] == nil {
			cmpn.Refused++
			continue // a text neither side takes (longer than both windows)
		}
		for _, sd := range []*side{s, c} {
			if sd.problem[i] != "" {
				cmpn.Problems = append(cmpn.Problems, fmt.Sprintf("probe %d: %s vector %s", i, sd.name, sd.problem[i]))
			}
		}
		if s.problem[i] == "" && c.problem[i] == "" {
			both = append(both, i)
		}
	}

	if !cmpn.DimensionsDiffer() && len(both) > 0 {
		var sum float64
		for _, i := range both {
			cos := cosine(stable[i], canary[i], s.sq[i], c.sq[i])
			sum += cos
			if cmpn.WorstProbe < 0 || cos < cmpn.MinCosine {
				cmpn.MinCosine, cmpn.WorstProbe = cos, i
			}
			if r := math.Sqrt(c.sq[i] / s.sq[i]); cmpn.LengthProbe < 0 || math.Abs(r-1) > math.Abs(cmpn.LengthRatio-1) {
				cmpn.LengthRatio, cmpn.LengthProbe = r, i
			}
		}
		cmpn.MeanCosine = sum / float64(len(both))
	}

	if len(both) >= MinProbes {
		cmpn.K = min(k, len(both)-1)
		ns, nc := s.neighbors(both, cmpn.K), c.neighbors(both, cmpn.K)
		var sum float64
		for j := range both {
			sum += float64(intersect(ns[j], nc[j])) / float64(cmpn.K)
		}
		cmpn.NeighborOverlap = sum / float64(len(both))
	}
	return cmpn, nil
}

// side is one server's answer with what Compare needs of it.
type side struct {
	name    string
	vecs    [][]float32
	dims    int
	sq      []float64 // squared length of each vector
	problem []string  // why vector i cannot be compared; "" when it can
}

func newSide(name string, vecs [][]float32) *side {
	s := &side{name: name, vecs: vecs, dims: modeLen(vecs), sq: make([]float64, len(vecs)), problem: make([]string, len(vecs))}
	for i, v := range vecs {
		s.sq[i] = dot(v, v)
		switch {
		case v == nil:
			s.problem[i] = "is missing: the server refused the text (longer than its input window?) while the other side embedded it"
		case len(v) == 0:
			s.problem[i] = "is empty"
		case len(v) != s.dims:
			s.problem[i] = fmt.Sprintf("has %d dimensions, the others %d", len(v), s.dims)
		case !finite(v):
			s.problem[i] = "has a NaN or infinite component"
		case s.sq[i] == 0:
			s.problem[i] = "is zero"
		}
	}
	return s
}

// modeLen is the most common vector length, the earliest seen on a tie.
func modeLen(vecs [][]float32) int {
	count := map[int]int{}
	best := -1
	for _, v := range vecs {
		if v == nil {
			continue
		}
		count[len(v)]++
		if best < 0 || count[len(v)] > count[best] {
			best = len(v)
		}
	}
	return best
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// dot is the inner product in float64; a and b have the same length. Four
// sums run side by side, which lets the CPU overlap the additions: the
// neighbour search does probes² of these.
func dot(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// cosine of a and b, given their squared lengths. One square root of the
// product makes the cosine of a vector with itself exactly 1; the clamp keeps
// rounding from leaving [-1, 1].
func cosine(a, b []float32, sqA, sqB float64) float64 {
	return max(-1, min(1, dot(a, b)/math.Sqrt(sqA*sqB)))
}

// neighbors returns, for each probe in idx (all valid on this side), the
// positions in idx of its k nearest other probes by cosine, ties broken by the
// lower index so both sides break them alike.
func (s *side) neighbors(idx []int, k int) [][]int {
	m := len(idx)
	sim := make([]float64, m*m)
	for a := range m {
		for b := a + 1; b < m; b++ {
			i, j := idx[a], idx[b]
			c := cosine(s.vecs[i], s.vecs[j], s.sq[i], s.sq[j])
			sim[a*m+b], sim[b*m+a] = c, c
		}
	}
	out := make([][]int, m)
	cand := make([]int, 0, m-1)
	for a := range m {
		cand = cand[:0]
		for b := range m {
			if b != a {
				cand = append(cand, b)
			}
		}
		row := sim[a*m : (a+1)*m]
		slices.SortFunc(cand, func(x, y int) int {
			if c := cmp.Compare(row[y], row[x]); c != 0 {
				return c
			}
			return cmp.Compare(x, y)
		})
		out[a] = slices.Clone(cand[:k])
	}
	return out
}

// intersect counts the elements two small sets share.
func intersect(a, b []int) int {
	n := 0
	for _, x := range a {
		if slices.Contains(b, x) {
			n++
		}
	}
	return n
}
