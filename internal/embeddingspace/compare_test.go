package embeddingspace

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// clustered returns n unit vectors of d dimensions around n/4 random centres,
// so that each vector has clear nearest neighbours as real embeddings do.
func clustered(seed uint64, n, d int) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	centres := make([][]float64, max(n/4, 1))
	for c := range centres {
		centres[c] = make([]float64, d)
		for j := range centres[c] {
			centres[c][j] = r.NormFloat64()
		}
	}
	out := make([][]float32, n)
	for i := range out {
		v := make([]float64, d)
		for j := range v {
			v[j] = centres[i%len(centres)][j] + 0.4*r.NormFloat64()
		}
		out[i] = unit(v)
	}
	return out
}

func unit(v []float64) []float32 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	out := make([]float32, len(v))
	for j, x := range v {
		out[j] = float32(x / math.Sqrt(s))
	}
	return out
}

func clone(vs [][]float32) [][]float32 {
	out := make([][]float32, len(vs))
	for i, v := range vs {
		out[i] = slices.Clone(v)
	}
	return out
}

// with returns a copy of vs with f applied to each vector (and its index).
func with(vs [][]float32, f func(i int, v []float32) []float32) [][]float32 {
	out := clone(vs)
	for i := range out {
		out[i] = f(i, out[i])
	}
	return out
}

// at changes only probe p.
func at(p int, f func(v []float32) []float32) func(int, []float32) []float32 {
	return func(i int, v []float32) []float32 {
		if i == p {
			return f(v)
		}
		return v
	}
}

func scale(s float32) func(int, []float32) []float32 {
	return func(_ int, v []float32) []float32 {
		for j := range v {
			v[j] *= s
		}
		return v
	}
}

func noise(seed uint64, amp float64) func(int, []float32) []float32 {
	r := rand.New(rand.NewPCG(seed, 2))
	return func(_ int, v []float32) []float32 {
		for j := range v {
			v[j] += float32(amp * r.NormFloat64())
		}
		return v
	}
}

// rotation is a random orthogonal d x d matrix (Gram-Schmidt of a Gaussian one).
func rotation(seed uint64, d int) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 3))
	q := make([][]float64, d)
	for i := range q {
		q[i] = make([]float64, d)
		for j := range q[i] {
			q[i][j] = r.NormFloat64()
		}
		for k := 0; k < i; k++ {
			var p float64
			for j := range q[i] {
				p += q[i][j] * q[k][j]
			}
			for j := range q[i] {
				q[i][j] -= p * q[k][j]
			}
		}
		var s float64
		for _, x := range q[i] {
			s += x * x
		}
		for j := range q[i] {
			q[i][j] /= math.Sqrt(s)
		}
	}
	return q
}

func rotate(q [][]float64) func(int, []float32) []float32 {
	return func(_ int, v []float32) []float32 {
		out := make([]float32, len(v))
		for i := range q {
			var s float64
			for j, x := range v {
				s += q[i][j] * float64(x)
			}
			out[i] = float32(s)
		}
		return out
	}
}

func nan(v []float32) []float32     { v[3] = float32(math.NaN()); return v }
func inf(v []float32) []float32     { v[0] = float32(math.Inf(-1)); return v }
func zero(v []float32) []float32    { clear(v); return v }
func empty([]float32) []float32     { return []float32{} }
func shorter(v []float32) []float32 { return v[:len(v)-1] }
func negate(v []float32) []float32 {
	for j := range v {
		v[j] = -v[j]
	}
	return v
}

func TestCompareAndJudge(t *testing.T) {
	base := clustered(1, 64, 32)
	perm := rand.New(rand.NewPCG(9, 9)).Perm(len(base))
	permuted := with(base, func(i int, _ []float32) []float32 { return slices.Clone(base[perm[i]]) })
	other := clustered(2, 64, 24)
	small := clustered(3, 4, 32)
	// Probe 1 and 2 are the same vector, so both are exactly as near to probe 0.
	ties := [][]float32{{1, 0, 0}, {1, 1, 0}, {1, 1, 0}, {0, 0, 1}}

	tests := []struct {
		name           string
		stable, canary [][]float32
		k              int
		compatible     bool
		message        string // exact, or a prefix when it ends in "..."
		overlap        float64
	}{
		{name: "identical", stable: base, canary: clone(base), k: 5, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 5) over 64 probes"},
		{name: "noise at 1e-6 keeps the space", stable: base, canary: with(base, noise(4, 1e-6)), k: 5, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 5) over 64 probes"},
		{name: "noise at 1e-1 does not", stable: base, canary: with(base, noise(4, 1e-1)), k: 5, overlap: -1,
			message: "min cosine 0.8229 < 0.999 (probe 13), mean 0.8878; vector length x1.3515 (probe 26), beyond 1 ± 0.0447 that min cosine 0.999 allows; neighbour overlap 0.7281 < 0.9 (k 5) over 64 probes"},
		{name: "sign flip of every vector", stable: base, canary: with(base, func(_ int, v []float32) []float32 { return negate(v) }), k: 5, overlap: 1,
			message: "min cosine -1.0000 < 0.999 (probe 0), mean -1.0000 over 64 probes"},
		{name: "sign flip of one probe", stable: base, canary: with(base, at(17, negate)), k: 5, overlap: -1,
			message: "min cosine -1.0000 < 0.999 (probe 17), mean 0.9688 over 64 probes"},
		{name: "scaled by 2: cosine 1 but inner products double", stable: base, canary: with(base, scale(2)), k: 5, overlap: 1,
			message: "vector length x2.0000 (probe 0), beyond 1 ± 0.0447 that min cosine 0.999 allows over 64 probes"},
		{name: "scaled by 1.01: within the length tolerance", stable: base, canary: with(base, scale(1.01)), k: 5, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, ..."},
		{name: "other dimensions", stable: base, canary: other, k: 5, overlap: -1,
			message: "dimensions 32 -> 24 (neighbour overlap 0.6188 within each space, k 5) over 64 probes"},
		{name: "permuted probes", stable: base, canary: permuted, k: 5, overlap: -1,
			message: "min cosine -0.3809 < 0.999 (probe 50), mean -0.0019; neighbour overlap 0.0906 < 0.9 (k 5) over 64 probes"},
		{name: "rotated space: neighbours identical, cosines low", stable: base, canary: with(base, rotate(rotation(5, 32))), k: 5, overlap: 1,
			message: "min cosine -0.4352 < 0.999 (probe 47), mean -0.0387 over 64 probes"},
		{name: "NaN in a canary vector", stable: base, canary: with(base, at(3, nan)), k: 5, overlap: 1,
			message: "probe 3: canary vector has a NaN or infinite component over 64 probes"},
		{name: "infinity in a stable vector", stable: with(base, at(60, inf)), canary: base, k: 5, overlap: 1,
			message: "probe 60: stable vector has a NaN or infinite component over 64 probes"},
		{name: "zero vector", stable: base, canary: with(base, at(7, zero)), k: 5, overlap: 1,
			message: "probe 7: canary vector is zero over 64 probes"},
		{name: "empty vector", stable: base, canary: with(base, at(0, empty)), k: 5, overlap: 1,
			message: "probe 0: canary vector is empty over 64 probes"},
		{name: "one vector shorter than the rest", stable: base, canary: with(base, at(2, shorter)), k: 5, overlap: 1,
			message: "probe 2: canary vector has 31 dimensions, the others 32 over 64 probes"},
		{name: "every canary vector zero", stable: base, canary: with(base, func(_ int, v []float32) []float32 { return zero(v) }), k: 5, overlap: -2,
			message: "probe 0: canary vector is zero; probe 1: canary vector is zero; probe 2: canary vector is zero; and 61 more over 64 probes"},
		{name: "fewer probes than k", stable: small, canary: clone(small), k: 5, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 3) over 4 probes"},
		{name: "k 1", stable: base, canary: clone(base), k: 1, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 1) over 64 probes"},
		{name: "ties broken alike on both sides", stable: ties, canary: clone(ties), k: 1, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 1) over 4 probes"},
		{name: "two probes", stable: base[:2], canary: clone(base[:2]), k: 5, compatible: true, overlap: 1,
			message: "min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 1) over 2 probes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compare(tt.stable, tt.canary, tt.k)
			if err != nil {
				t.Fatal(err)
			}
			ok, msg := c.Judge(0.999, 0.9)
			if ok != tt.compatible {
				t.Errorf("compatible %v, want %v: %s", ok, tt.compatible, msg)
			}
			if prefix, cut := strings.CutSuffix(tt.message, "..."); cut && !strings.HasPrefix(msg, prefix) || !cut && msg != tt.message {
				t.Errorf("message\n %q\nwant\n %q", msg, tt.message)
			}
			switch {
			case tt.overlap == -2 && !math.IsNaN(c.NeighborOverlap):
				t.Errorf("neighbour overlap %v, want NaN", c.NeighborOverlap)
			case tt.overlap >= 0 && math.Abs(c.NeighborOverlap-tt.overlap) > 1e-12:
				t.Errorf("neighbour overlap %v, want %v", c.NeighborOverlap, tt.overlap)
			}
			// However the canary changed, the verdict is the same the second time.
			c2, _ := Compare(tt.stable, tt.canary, tt.k)
			if ok2, msg2 := c2.Judge(0.999, 0.9); ok2 != ok || msg2 != msg {
				t.Errorf("second run differs: %v %q", ok2, msg2)
			}
		})
	}
}

// The cases above where the exact numbers are the point.
func TestCompareNumbers(t *testing.T) {
	base := clustered(1, 64, 32)

	t.Run("rotation keeps neighbours and loses cosines", func(t *testing.T) {
		c, _ := Compare(base, with(base, rotate(rotation(5, 32))), 5)
		if c.NeighborOverlap != 1 {
			t.Errorf("neighbour overlap %v, want 1", c.NeighborOverlap)
		}
		if c.MinCosine > 0.9 || c.MeanCosine > 0.5 {
			t.Errorf("min cosine %v mean %v: a random rotation should leave cosines far from 1", c.MinCosine, c.MeanCosine)
		}
		if math.Abs(c.LengthRatio-1) > 1e-6 {
			t.Errorf("length ratio %v: a rotation keeps lengths", c.LengthRatio)
		}
	})
	t.Run("permutation keeps the vectors and loses both", func(t *testing.T) {
		perm := rand.New(rand.NewPCG(9, 9)).Perm(len(base))
		c, _ := Compare(base, with(base, func(i int, _ []float32) []float32 { return slices.Clone(base[perm[i]]) }), 5)
		if c.MinCosine > 0.5 || c.NeighborOverlap > 0.5 {
			t.Errorf("min cosine %v, overlap %v: shuffled probes must not look alike", c.MinCosine, c.NeighborOverlap)
		}
	})
	t.Run("other dimensions: no cosine, no length, overlap within each space", func(t *testing.T) {
		c, _ := Compare(base, clustered(2, 64, 24), 5)
		if !math.IsNaN(c.MinCosine) || !math.IsNaN(c.MeanCosine) || c.WorstProbe != -1 || !math.IsNaN(c.LengthRatio) {
			t.Errorf("cosine values %v %v %d %v, want NaN", c.MinCosine, c.MeanCosine, c.WorstProbe, c.LengthRatio)
		}
		if c.StableDimensions != 32 || c.CanaryDimensions != 24 || math.IsNaN(c.NeighborOverlap) {
			t.Errorf("%+v", c)
		}
	})
	t.Run("a NaN probe leaves the others measured", func(t *testing.T) {
		c, _ := Compare(base, with(base, at(3, nan)), 5)
		if c.MinCosine != 1 || c.K != 5 || len(c.Problems) != 1 {
			t.Errorf("%+v", c)
		}
	})
	t.Run("sign flip of one probe", func(t *testing.T) {
		c, _ := Compare(base, with(base, at(17, negate)), 5)
		if c.WorstProbe != 17 || c.MinCosine != -1 || math.Abs(c.MeanCosine-62.0/64) > 1e-6 {
			t.Errorf("%+v", c)
		}
		// Probe 17's neighbours change (it is now far from its cluster), and
		// so do the lists it was in.
		if c.NeighborOverlap >= 1 || c.NeighborOverlap < 0.8 {
			t.Errorf("neighbour overlap %v", c.NeighborOverlap)
		}
	})
	t.Run("clamped k", func(t *testing.T) {
		c, _ := Compare(base[:3], clone(base[:3]), 32)
		if c.K != 2 {
			t.Errorf("k %d, want 2", c.K)
		}
		// Two valid probes of three: k clamps to what is valid on both sides.
		c, _ = Compare(base[:3], with(base[:3], at(0, zero)), 32)
		if c.K != 1 || c.NeighborOverlap != 1 {
			t.Errorf("k %d overlap %v, want 1 and 1", c.K, c.NeighborOverlap)
		}
	})
}

func TestNeighborsBreakTiesByIndex(t *testing.T) {
	// Probes 1 and 2 are equally near probe 0 (cosine 0.71) and probe 3
	// (0.5), and to each other (0.5); probe 3 is orthogonal to probe 0.
	s := newSide("stable", [][]float32{{1, 0, 0}, {1, 1, 0}, {1, 0, 1}, {0, 1, 1}})
	got := s.neighbors([]int{0, 1, 2, 3}, 2)
	want := [][]int{{1, 2}, {0, 2}, {0, 1}, {1, 2}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("neighbours of %d: %v, want %v", i, got[i], want[i])
		}
	}
	if got := s.neighbors([]int{0, 1, 2, 3}, 1)[0]; !slices.Equal(got, []int{1}) {
		t.Errorf("k 1 neighbour of 0: %v, want the lower index of the tie, [1]", got)
	}
}

func TestCompareErrors(t *testing.T) {
	base := clustered(1, 8, 4)
	tests := []struct {
		name           string
		stable, canary [][]float32
		k              int
		want           string
	}{
		{"probe counts differ", base, base[:7], 5, "probe counts differ: stable answered 8 vectors, canary 7"},
		{"one probe", base[:1], base[:1], 5, "1 probes: at least 2 are needed"},
		{"no probes", nil, [][]float32{}, 5, "0 probes: at least 2 are needed"},
		{"k 0", base, base, 0, "k 0: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compare(tt.stable, tt.canary, tt.k)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestJudgeThresholds(t *testing.T) {
	base := clustered(1, 64, 32)
	same, _ := Compare(base, clone(base), 5)
	// Probe 9 at cosine 0.99895 exactly: rotate it within the plane of two axes.
	near := clone(base)
	near[9] = unit([]float64{1, 0})
	nearC := clone(near)
	nearC[9] = unit([]float64{0.99895, math.Sqrt(1 - 0.99895*0.99895)})
	for i := range near {
		if i != 9 {
			near[i], nearC[i] = near[i][:2], nearC[i][:2]
		}
	}
	justBelow, _ := Compare(near, nearC, 5)

	tests := []struct {
		name         string
		c            Comparison
		cos, overlap float64
		compatible   bool
		message      string
	}{
		{"a cosine at the limit passes", same, 1, 1, true,
			"min cosine 1.0000 >= 1, mean 1.0000, neighbour overlap 1.0000 >= 1 (k 5) over 64 probes"},
		{"thresholds of 0 pass anything comparable", same, 0, 0, true,
			"min cosine 1.0000 >= 0, mean 1.0000, neighbour overlap 1.0000 >= 0 (k 5) over 64 probes"},
		{"a value that rounds to the limit shows its digits", justBelow, 0.999, 0, false,
			"min cosine 0.99895 < 0.999 (probe 9), mean 1.0000 over 64 probes"},
		{"NaN minCosine", same, math.NaN(), 0.9, false, "minCosine NaN: must be in [-1, 1]"},
		{"minCosine above 1", same, 1.5, 0.9, false, "minCosine 1.5: must be in [-1, 1]"},
		{"NaN minNeighborOverlap", same, 0.999, math.NaN(), false, "minNeighborOverlap NaN: must be in [0, 1]"},
		{"negative minNeighborOverlap", same, 0.999, -0.1, false, "minNeighborOverlap -0.1: must be in [0, 1]"},
		{"a Comparison that Compare did not make", Comparison{}, 0.999, 0.9, false, "0 probes compared: at least 2 are needed"},
		{"NaN values never pass", Comparison{Probes: 64, K: 5, StableDimensions: 8, CanaryDimensions: 8,
			MinCosine: math.NaN(), MeanCosine: math.NaN(), LengthRatio: math.NaN(), NeighborOverlap: math.NaN()}, 0.999, 0.9, false,
			"no cosine computable; no neighbour overlap computable over 64 probes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, msg := tt.c.Judge(tt.cos, tt.overlap)
			if ok != tt.compatible {
				t.Errorf("compatible %v, want %v: %s", ok, tt.compatible, msg)
			}
			if tt.message != "..." && msg != tt.message {
				t.Errorf("message\n %q\nwant\n %q", msg, tt.message)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		v    float64
		want string
	}{
		{1, "1.0000"},
		{0.99995, "1.0000"},
		{0.41, "0.4100"},
		{0.9999, "0.9999"},
		{-1, "-1.0000"},
		{-0.00001, "0.0000"},
		{math.NaN(), ""},
	}
	for _, tt := range tests {
		if got := Format(tt.v); got != tt.want {
			t.Errorf("Format(%v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestFormatAgainst(t *testing.T) {
	tests := []struct {
		v, limit float64
		want     string
	}{
		{0.41, 0.999, "0.4100"},
		{0.99895, 0.999, "0.99895"},
		{0.999, 0.999, "0.9990"},
		{0.99999, 0.999, "1.0000"},
		{0.8999999999999, 0.9, "0.8999999999999"},
	}
	for _, tt := range tests {
		if got := formatAgainst(tt.v, tt.limit); got != tt.want {
			t.Errorf("formatAgainst(%v, %v) = %q, want %q", tt.v, tt.limit, got, tt.want)
		}
	}
}

func TestLengthTolerance(t *testing.T) {
	for _, tt := range []struct{ minCos, want float64 }{{1, 0}, {0.999, 0.0447}, {0.9999, 0.0141}, {0, 1.4142}, {-1, 2}, {-3, 2}} {
		if got := LengthTolerance(tt.minCos); math.Abs(got-tt.want) > 5e-5 {
			t.Errorf("LengthTolerance(%v) = %v, want %v", tt.minCos, got, tt.want)
		}
	}
}
