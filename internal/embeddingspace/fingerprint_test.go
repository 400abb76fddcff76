package embeddingspace

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/fakeupstream"
)

func spaceVectors(t *testing.T, m builtinmodel.Model, sp fakeupstream.Space, probes []string) [][]float32 {
	t.Helper()
	out := make([][]float32, len(probes))
	for i, p := range probes {
		v := make([]float32, m.Dims)
		if err := sp.EmbedText(m, v, p); err != nil {
			continue // refused: nil, as the probe client returns it
		}
		out[i] = v
	}
	return out
}

// TestFingerprintSpaces records stable's fingerprint from an upstream and
// compares it, after an encode and decode as status keeps it, with the same
// upstream restarted and with each way an upstream changes its space. The
// canary check (two full answers) judges the same pairs, so the table says
// what each of them catches.
func TestFingerprintSpaces(t *testing.T) {
	probes := WithLongProbes(BuiltinProbes())
	h384, h256 := mustModel(t, "hash-384"), mustModel(t, "hash-256")
	base := fakeupstream.Space{}
	stable := spaceVectors(t, h384, base, probes)
	fp, err := NewFingerprint(probes, stable, DefaultK)
	if err != nil {
		t.Fatal(err)
	}
	enc := fp.Encode()
	t.Logf("fingerprint of %d probes: %d bytes of base64", len(probes), len(enc))
	if len(enc) > 6000 {
		t.Errorf("fingerprint of %d bytes: too large for status", len(enc))
	}
	fp, err = DecodeFingerprint(enc)
	if err != nil {
		t.Fatal(err)
	}
	if fp.Encode() != enc {
		t.Fatal("the fingerprint does not encode back to itself")
	}

	tests := []struct {
		name   string
		model  builtinmodel.Model
		space  fakeupstream.Space
		same   bool
		reason string // the start of the watch's message when it is not the same
	}{
		{"the same upstream, restarted", h384, fakeupstream.Space{}, true, ""},
		{"another model of the same dimension", h384, fakeupstream.Space{Seed: 42}, false, "min cosine "},
		{"another seed of that model", h384, fakeupstream.Space{Seed: 43}, false, "min cosine "},
		{"vectors no longer normalised (x0.5)", h384, fakeupstream.Space{Scale: 0.5}, false, "vector length x0.5000"},
		{"vectors scaled x1.1", h384, fakeupstream.Space{Scale: 1.1}, false, "vector length x1.1000"},
		{"a tokenizer that folds case", h384, fakeupstream.Space{FoldCase: true}, false, "min cosine "},
		{"another dimension", h256, fakeupstream.Space{}, false, "dimensions 384 -> 256"},
		{"refusing inputs past 4,096 words", h384, fakeupstream.Space{Window: 4096, Refuse: true}, false, "probe 84: current vector is missing"},
	}
	for _, w := range []int{512, 1024, 2048, 4096, 8192} {
		tests = append(tests, struct {
			name   string
			model  builtinmodel.Model
			space  fakeupstream.Space
			same   bool
			reason string
		}{fmt.Sprintf("a shorter input window of %d tokens", w), h384, fakeupstream.Space{Window: w}, false, "min cosine "})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := spaceVectors(t, tt.model, tt.space, probes)
			c, err := fp.Compare(probes, cur)
			if err != nil {
				t.Fatal(err)
			}
			same, msg := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap)
			canary, _ := Compare(stable, cur, DefaultK)
			canaryOK, canaryMsg := canary.Judge(DefaultMinCosine, DefaultMinNeighborOverlap)
			t.Logf("watch: same %v: %s", same, msg)
			t.Logf("canary check: compatible %v: %s", canaryOK, canaryMsg)
			if same != tt.same || (!same && !strings.HasPrefix(msg, tt.reason)) {
				t.Fatalf("watch: same %v: %s\nwant %v: %s...", same, msg, tt.same, tt.reason)
			}
			if canaryOK != tt.same {
				t.Fatalf("canary check: compatible %v, want %v: %s", canaryOK, tt.same, canaryMsg)
			}
		})
	}
}

func TestFingerprintRefusedProbes(t *testing.T) {
	probes := WithLongProbes(BuiltinProbes())
	h384 := mustModel(t, "hash-384")
	refusing := fakeupstream.Space{Window: 3000, Refuse: true}
	fp, err := NewFingerprint(probes, spaceVectors(t, h384, refusing, probes), DefaultK)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ = DecodeFingerprint(fp.Encode())
	c, _ := fp.Compare(probes, spaceVectors(t, h384, refusing, probes))
	if ok, msg := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap); !ok || c.Refused != 2 {
		t.Fatalf("the same refusing upstream: same %v, %d refused: %s", ok, c.Refused, msg)
	}
	// The upstream now truncates (auto-truncate at 3,000): the long probes
	// it refused before now get vectors, which the fingerprint cannot
	// compare; that is a change.
	c, _ = fp.Compare(probes, spaceVectors(t, h384, fakeupstream.Space{Window: 3000}, probes))
	if ok, msg := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap); ok || !strings.Contains(msg, "refused when recorded, embedded now") {
		t.Fatalf("refused before, embedded now: same %v: %s", ok, msg)
	}
}

func TestFingerprintErrors(t *testing.T) {
	probes := WithLongProbes(BuiltinProbes())
	h384 := mustModel(t, "hash-384")
	vecs := spaceVectors(t, h384, fakeupstream.Space{}, probes)
	if _, err := NewFingerprint(probes[1:], vecs, 5); err == nil || err.Error() != fmt.Sprintf("%d probes but %d vectors", len(probes)-1, len(vecs)) {
		t.Errorf("mismatched counts: %v", err)
	}
	bad := clone(vecs)
	bad[3] = zero(bad[3])
	if _, err := NewFingerprint(probes, bad, 5); err == nil || err.Error() != "probe 3: vector is zero" {
		t.Errorf("a zero vector: %v", err)
	}
	fp, err := NewFingerprint(probes, vecs, 5)
	if err != nil {
		t.Fatal(err)
	}
	other := append([]string{"another text"}, probes[1:]...)
	if _, err := fp.Compare(other, vecs); err == nil || !strings.Contains(err.Error(), "not the one the fingerprint was recorded with") {
		t.Errorf("another probe set: %v", err)
	}
	enc := fp.Encode()
	for _, s := range []string{"", "not base64!", enc[:len(enc)/2], "AA=="} {
		if _, err := DecodeFingerprint(s); err == nil {
			t.Errorf("DecodeFingerprint(%.20q...) decoded", s)
		}
	}
}
