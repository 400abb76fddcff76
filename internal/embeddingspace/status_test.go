package embeddingspace

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

func TestThresholds(t *testing.T) {
	for _, c := range []struct {
		spec      v1alpha1.SpaceCheckSpec
		cos, over float64
		k         int
	}{
		{v1alpha1.SpaceCheckSpec{}, DefaultMinCosine, DefaultMinNeighborOverlap, DefaultK},
		{v1alpha1.SpaceCheckSpec{MinCosine: "0.95", MinNeighborOverlap: "0.5", K: 3}, 0.95, 0.5, 3},
		{v1alpha1.SpaceCheckSpec{MinCosine: "1", MinNeighborOverlap: "0"}, 1, 0, DefaultK},
		{v1alpha1.SpaceCheckSpec{MinCosine: "high", MinNeighborOverlap: "1.5", K: -1}, DefaultMinCosine, DefaultMinNeighborOverlap, DefaultK},
	} {
		cos, over, k := Thresholds(c.spec)
		if cos != c.cos || over != c.over || k != c.k {
			t.Errorf("Thresholds(%+v) = %v %v %v, want %v %v %v", c.spec, cos, over, k, c.cos, c.over, c.k)
		}
	}
}

func TestCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	vecs := func(n, dims int, flip bool) [][]float32 {
		out := make([][]float32, n)
		for i := range out {
			v := make([]float32, dims)
			v[i%dims] = 1
			v[(i+1)%dims] = float32(i+1) / 10
			if flip {
				for j := range v {
					v[j] = -v[j]
				}
			}
			out[i] = v
		}
		return out
	}
	same := Check(vecs(8, 16, false), vecs(8, 16, false), v1alpha1.SpaceCheckSpec{}, "b", now)
	if same.Verdict != v1alpha1.SpaceCompatible || same.MinCosine != "1.0000" || same.Probes != 8 || same.StableDimensions != 16 || same.Revision != "b" || !same.Time.Time.Equal(now) {
		t.Errorf("identical answers: %+v", same)
	}
	flipped := Check(vecs(8, 16, false), vecs(8, 16, true), v1alpha1.SpaceCheckSpec{}, "b", now)
	if flipped.Verdict != v1alpha1.SpaceChanged || flipped.MinCosine != "-1.0000" || !strings.Contains(flipped.Message, "min cosine") {
		t.Errorf("sign flip: %+v", flipped)
	}
	dims := Check(vecs(8, 16, false), vecs(8, 12, false), v1alpha1.SpaceCheckSpec{}, "b", now)
	if dims.Verdict != v1alpha1.SpaceChanged || dims.CanaryDimensions != 12 || !strings.Contains(dims.Message, "dimensions 16 -> 12") {
		t.Errorf("other dimensions: %+v", dims)
	}
	short := Check(vecs(8, 16, false), vecs(7, 16, false), v1alpha1.SpaceCheckSpec{}, "b", now)
	if short.Verdict != v1alpha1.SpaceChanged || !strings.Contains(short.Message, "probe counts differ") {
		t.Errorf("mismatched answers must never pass: %+v", short)
	}
	f := Failed(errors.New("probe http://10.0.0.7:8080: HTTP 503 (draining)"), "b", now)
	if f.Verdict != v1alpha1.SpacePending || f.Message != "probe http://10.0.0.7:8080: HTTP 503 (draining)" {
		t.Errorf("failed attempt: %+v", f)
	}
}
