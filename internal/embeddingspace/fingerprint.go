package embeddingspace

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
)

// A Fingerprint is a compact record of a server's space: enough to tell later,
// with the thresholds of the canary check, whether a server still embeds the
// same probes into the same space, without keeping every vector. Per probe it
// keeps the vector's length, its K nearest other probes, and the vector
// projected to ProjectionDims dimensions by a fixed random ±1 matrix (a
// Johnson-Lindenstrauss projection: cosines between two vectors are kept
// within a few hundredths, so a same-space answer projects to cosine 1 and a
// changed one well below minCosine). For the built-in set it encodes to about
// 3.5 KB of base64.
type Fingerprint struct {
	// ProbeSet identifies the probe texts (ProbeSetID): a fingerprint says
	// nothing about answers to other texts.
	ProbeSet   string
	Dimensions int
	K          int
	// Norms are the vectors' lengths; Refused[i] marks a probe the server
	// refused (nil vector), which has no other data.
	Norms     []float32
	Refused   []bool
	Neighbors [][]uint16 // probe i's K nearest other probes, nearest first
	// Projections are the projected vectors, scaled to unit length and
	// quantised to int8 (an error of about 1e-5 in a cosine).
	Projections [][]int8
}

// ProjectionDims is the size of a fingerprint's projected vectors.
const ProjectionDims = 16

// fingerprintVersion is the first byte of an encoded fingerprint.
const fingerprintVersion = 1

// ProbeSetID is a short hash of the probe texts in order.
func ProbeSetID(probes []string) string {
	h := sha256.New()
	for _, p := range probes {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// NewFingerprint records the space of one server's answer to probes: vecs[i]
// is the vector of probes[i], nil when the server refused it. It errors on
// an answer the canary check would call broken (no two comparable vectors,
// mixed lengths, NaN, zero).
func NewFingerprint(probes []string, vecs [][]float32, k int) (Fingerprint, error) {
	switch {
	case len(probes) != len(vecs):
		return Fingerprint{}, fmt.Errorf("%d probes but %d vectors", len(probes), len(vecs))
	case len(probes) > math.MaxUint16:
		return Fingerprint{}, fmt.Errorf("%d probes: a fingerprint takes at most %d", len(probes), math.MaxUint16)
	case k < 1:
		return Fingerprint{}, fmt.Errorf("k %d: must be at least 1", k)
	}
	s := newSide("stable", vecs)
	var valid []int
	for i, v := range vecs {
		switch {
		case v == nil:
		case s.problem[i] != "":
			return Fingerprint{}, fmt.Errorf("probe %d: vector %s", i, s.problem[i])
		default:
			valid = append(valid, i)
		}
	}
	if len(valid) < MinProbes {
		return Fingerprint{}, fmt.Errorf("%d probes answered: at least %d are needed", len(valid), MinProbes)
	}
	k = min(k, len(valid)-1)
	f := Fingerprint{
		ProbeSet: ProbeSetID(probes), Dimensions: s.dims, K: k,
		Norms: make([]float32, len(vecs)), Refused: make([]bool, len(vecs)),
		Neighbors: make([][]uint16, len(vecs)), Projections: make([][]int8, len(vecs)),
	}
	proj := projection(s.dims)
	nb := s.neighbors(valid, k)
	for i, v := range vecs {
		if v == nil {
			f.Refused[i] = true
		}
	}
	for j, i := range valid {
		f.Norms[i] = float32(math.Sqrt(s.sq[i]))
		f.Neighbors[i] = make([]uint16, k)
		for n, pos := range nb[j] {
			f.Neighbors[i][n] = uint16(valid[pos])
		}
		f.Projections[i] = quantise(proj.apply(vecs[i]))
	}
	return f, nil
}

// Compare measures an answer to the same probes against the fingerprint, as
// Compare measures a canary against stable: the fingerprint's side is
// "stable", the answer's "canary" (in Problems, "recorded" and "current").
// Cosines are between projected vectors. It errors when the answer is not to
// the fingerprint's probe set.
func (f Fingerprint) Compare(probes []string, vecs [][]float32) (Comparison, error) {
	switch {
	case ProbeSetID(probes) != f.ProbeSet:
		return Comparison{}, errors.New("the probe set is not the one the fingerprint was recorded with")
	case len(vecs) != len(f.Norms):
		return Comparison{}, fmt.Errorf("%d vectors for a fingerprint of %d probes", len(vecs), len(f.Norms))
	}
	cur := newSide("current", vecs)
	c := Comparison{
		Probes: len(vecs), StableDimensions: f.Dimensions, CanaryDimensions: cur.dims,
		MinCosine: math.NaN(), MeanCosine: math.NaN(), WorstProbe: -1,
		LengthRatio: math.NaN(), LengthProbe: -1, NeighborOverlap: math.NaN(),
	}
	var both []int
	for i, v := range vecs {
		switch {
		case f.Refused[i] && v == nil:
			c.Refused++
			continue
		case f.Refused[i]:
			c.Problems = append(c.Problems, fmt.Sprintf("probe %d: refused when recorded, embedded now", i))
			continue
		case cur.problem[i] != "":
			c.Problems = append(c.Problems, fmt.Sprintf("probe %d: current vector %s", i, cur.problem[i]))
			continue
		}
		both = append(both, i)
	}
	if !c.DimensionsDiffer() && len(both) > 0 {
		proj := projection(f.Dimensions)
		var sum float64
		for _, i := range both {
			p := proj.apply(vecs[i])
			rec := dequantise(f.Projections[i])
			cos := cosine(rec, p, dot(rec, rec), dot(p, p))
			sum += cos
			if c.WorstProbe < 0 || cos < c.MinCosine {
				c.MinCosine, c.WorstProbe = cos, i
			}
			if r := math.Sqrt(cur.sq[i]) / float64(f.Norms[i]); c.LengthProbe < 0 || math.Abs(r-1) > math.Abs(c.LengthRatio-1) {
				c.LengthRatio, c.LengthProbe = r, i
			}
		}
		c.MeanCosine = sum / float64(len(both))
	}
	if len(both) >= MinProbes && len(both) == len(vecs)-c.Refused {
		// Neighbours among the same probes as recorded (a probe set with a
		// Problem has none to compare; the Problem decides).
		c.K = min(f.K, len(both)-1)
		nc := cur.neighbors(both, c.K)
		var sum float64
		for j, i := range both {
			rec := make([]int, 0, c.K)
			for _, n := range f.Neighbors[i][:c.K] {
				rec = append(rec, int(n))
			}
			now := make([]int, len(nc[j]))
			for n, pos := range nc[j] {
				now[n] = both[pos]
			}
			sum += float64(intersect(rec, now)) / float64(c.K)
		}
		c.NeighborOverlap = sum / float64(len(both))
	}
	return c, nil
}

// Encode renders the fingerprint as status keeps it: base64 of a versioned
// binary record.
func (f Fingerprint) Encode() string {
	n := len(f.Norms)
	buf := make([]byte, 0, 8+len(f.ProbeSet)+n*(5+2*f.K+ProjectionDims))
	buf = append(buf, fingerprintVersion, byte(len(f.ProbeSet)))
	buf = append(buf, f.ProbeSet...)
	buf = binary.LittleEndian.AppendUint32(buf, uint32(f.Dimensions))
	buf = append(buf, byte(f.K))
	buf = binary.LittleEndian.AppendUint16(buf, uint16(n))
	for i := range n {
		if f.Refused[i] {
			buf = append(buf, 1)
			continue
		}
		buf = append(buf, 0)
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(f.Norms[i]))
		for _, nb := range f.Neighbors[i] {
			buf = binary.LittleEndian.AppendUint16(buf, nb)
		}
		for _, x := range f.Projections[i] {
			buf = append(buf, byte(x))
		}
	}
	return base64.StdEncoding.EncodeToString(buf)
}

// DecodeFingerprint reads what Encode wrote; anything else is an error.
func DecodeFingerprint(s string) (Fingerprint, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return Fingerprint{}, fmt.Errorf("fingerprint: %w", err)
	}
	short := errors.New("fingerprint: cut short")
	if len(raw) < 2 || raw[0] != fingerprintVersion {
		return Fingerprint{}, errors.New("fingerprint: unknown version")
	}
	idLen := int(raw[1])
	raw = raw[2:]
	if len(raw) < idLen+7 {
		return Fingerprint{}, short
	}
	f := Fingerprint{ProbeSet: string(raw[:idLen])}
	raw = raw[idLen:]
	f.Dimensions = int(binary.LittleEndian.Uint32(raw))
	f.K = int(raw[4])
	n := int(binary.LittleEndian.Uint16(raw[5:]))
	raw = raw[7:]
	f.Norms, f.Refused = make([]float32, n), make([]bool, n)
	f.Neighbors, f.Projections = make([][]uint16, n), make([][]int8, n)
	per := 4 + 2*f.K + ProjectionDims
	for i := range n {
		if len(raw) < 1 {
			return Fingerprint{}, short
		}
		refused := raw[0] == 1
		raw = raw[1:]
		if refused {
			f.Refused[i] = true
			continue
		}
		if len(raw) < per {
			return Fingerprint{}, short
		}
		f.Norms[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw))
		f.Neighbors[i] = make([]uint16, f.K)
		for j := range f.K {
			f.Neighbors[i][j] = binary.LittleEndian.Uint16(raw[4+2*j:])
			if int(f.Neighbors[i][j]) >= n {
				return Fingerprint{}, fmt.Errorf("fingerprint: probe %d has neighbour %d of %d probes", i, f.Neighbors[i][j], n)
			}
		}
		f.Projections[i] = make([]int8, ProjectionDims)
		for j := range ProjectionDims {
			f.Projections[i][j] = int8(raw[4+2*f.K+j])
		}
		raw = raw[per:]
	}
	if len(raw) != 0 {
		return Fingerprint{}, errors.New("fingerprint: trailing bytes")
	}
	return f, nil
}

// projector is a ProjectionDims x dims matrix of ±1, the same for every
// fingerprint of that dimension.
type projector struct{ signs [][]float32 }

func projection(dims int) projector {
	rng := splitmix(0x5eed_f1a9 ^ uint64(dims))
	p := projector{signs: make([][]float32, ProjectionDims)}
	for r := range p.signs {
		p.signs[r] = make([]float32, dims)
		for c := 0; c < dims; c += 64 {
			bits := rng()
			for b := 0; b < 64 && c+b < dims; b++ {
				p.signs[r][c+b] = 1
				if bits>>b&1 == 1 {
					p.signs[r][c+b] = -1
				}
			}
		}
	}
	return p
}

func (p projector) apply(v []float32) []float32 {
	out := make([]float32, ProjectionDims)
	for r, row := range p.signs {
		out[r] = float32(dot(row[:len(v)], v))
	}
	return out
}

// quantise scales v to unit length and maps each component to int8.
func quantise(v []float32) []int8 {
	n := math.Sqrt(dot(v, v))
	out := make([]int8, len(v))
	if n == 0 {
		return out
	}
	for i, x := range v {
		out[i] = int8(max(-127, min(127, math.Round(float64(x)/n*127))))
	}
	return out
}

func dequantise(q []int8) []float32 {
	out := make([]float32, len(q))
	for i, x := range q {
		out[i] = float32(x) / 127
	}
	return out
}
