package embeddingspace

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fakeupstream"
)

func TestWatchInterval(t *testing.T) {
	off := false
	for _, c := range []struct {
		spec v1alpha1.SpaceCheckSpec
		want time.Duration
	}{
		{v1alpha1.SpaceCheckSpec{}, 10 * time.Minute},
		{v1alpha1.SpaceCheckSpec{WatchInterval: &metav1.Duration{Duration: 30 * time.Second}}, 30 * time.Second},
		{v1alpha1.SpaceCheckSpec{WatchInterval: &metav1.Duration{}}, 0},
		{v1alpha1.SpaceCheckSpec{Enabled: &off, WatchInterval: &metav1.Duration{Duration: time.Minute}}, 0},
	} {
		if got := WatchInterval(c.spec); got != c.want {
			t.Errorf("WatchInterval(%+v) = %v, want %v", c.spec, got, c.want)
		}
	}
}

func TestNeedsRecord(t *testing.T) {
	fp := &v1alpha1.SpaceFingerprint{Revision: "a", Space: "docs-v1", ProbeSet: "p1"}
	w := &v1alpha1.SpaceWatchStatus{Fingerprint: fp, AcceptedToken: "t1"}
	for _, c := range []struct {
		name, space, probeSet, token string
		w                            *v1alpha1.SpaceWatchStatus
		want                         string // prefix; "" for none
	}{
		{"no status", "docs-v1", "p1", "", nil, "no fingerprint of stable's space yet"},
		{"no fingerprint", "docs-v1", "p1", "", &v1alpha1.SpaceWatchStatus{}, "no fingerprint"},
		{"the same", "docs-v1", "p1", "", w, ""},
		{"a handled token", "docs-v1", "p1", "t1", w, ""},
		{"a cutover was promoted", "docs-v2", "p1", "", w, "stable now serves space docs-v2 (was docs-v1)"},
		{"another probe set", "docs-v1", "p2", "", w, "the probe set changed"},
		{"a new accept token", "docs-v1", "p1", "t2", w, `the space stable serves now was accepted (rag.ragops.io/accept-space "t2")`},
	} {
		got := NeedsRecord(c.w, c.space, c.probeSet, c.token)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestWatchSequence runs the watch over a life: recorded, the same, the
// upstream swapped (drift), a failed probe (the drift stands), the upstream
// back (drift over), and checks the status changes only with the verdict.
func TestWatchSequence(t *testing.T) {
	probes := WithLongProbes(BuiltinProbes())
	h384 := mustModel(t, "hash-384")
	vecs := func(sp fakeupstream.Space) [][]float32 { return spaceVectors(t, h384, sp, probes) }
	spec := v1alpha1.SpaceCheckSpec{}
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)
	fp, err := NewFingerprint(probes, vecs(fakeupstream.Space{}), DefaultK)
	if err != nil {
		t.Fatal(err)
	}
	w := Record(nil, fp, "a", "", "no fingerprint of stable's space yet", "", t0)
	if w.Verdict != v1alpha1.SpaceCompatible || Drifted(w) || w.Fingerprint.Probes != int32(len(probes)) || w.Fingerprint.Dimensions != 384 {
		t.Fatalf("recorded: %+v", w)
	}

	steps := []struct {
		name    string
		vecs    [][]float32
		err     error
		result  WatchResult
		verdict v1alpha1.SpaceVerdict
		drifted bool
		changed bool // the status differs from the step before
	}{
		{"the same upstream", vecs(fakeupstream.Space{}), nil, WatchSame, v1alpha1.SpaceCompatible, false, false},
		{"again the same: no change, no write", vecs(fakeupstream.Space{}), nil, WatchSame, v1alpha1.SpaceCompatible, false, false},
		{"another model behind the URL", vecs(fakeupstream.Space{Seed: 7}), nil, WatchDrifted, v1alpha1.SpaceChanged, true, true},
		{"still the other model: no write", vecs(fakeupstream.Space{Seed: 7}), nil, WatchDrifted, v1alpha1.SpaceChanged, true, false},
		{"the pod does not answer: the drift stands", nil, errors.New("probe http://pod: HTTP 502"), WatchFailed, v1alpha1.SpacePending, true, true},
		{"a shorter window now: drifted again", vecs(fakeupstream.Space{Window: 2048}), nil, WatchDrifted, v1alpha1.SpaceChanged, true, true},
		{"the upstream is back", vecs(fakeupstream.Space{}), nil, WatchSame, v1alpha1.SpaceCompatible, false, true},
	}
	var driftedSince *metav1.Time
	for i, st := range steps {
		now := t0.Add(time.Duration(i+1) * time.Minute)
		next, result := Observe(w, probes, st.vecs, st.err, spec, now)
		if result != st.result || next.Verdict != st.verdict || Drifted(next) != st.drifted {
			t.Fatalf("%s: result %s, verdict %s, drifted %v; want %s, %s, %v: %s", st.name, result, next.Verdict, Drifted(next), st.result, st.verdict, st.drifted, next.Message)
		}
		if changed := !equalWatch(w, next); changed != st.changed {
			t.Fatalf("%s: status changed %v, want %v", st.name, changed, st.changed)
		}
		if st.drifted && driftedSince == nil {
			driftedSince = next.DriftedSince
		}
		if st.drifted && !next.DriftedSince.Equal(driftedSince) {
			t.Fatalf("%s: drifted since %v, want the first drift's %v", st.name, next.DriftedSince, driftedSince)
		}
		if next.Fingerprint != w.Fingerprint && *next.Fingerprint != *w.Fingerprint {
			t.Fatalf("%s: the fingerprint changed", st.name)
		}
		t.Logf("%s: %s", st.name, next.Message)
		if st.drifted {
			msg := DriftMessage(next, v1alpha1.DriftStopTraffic)
			if !strings.Contains(msg, "another vector space than the one recorded from revision a") || !strings.Contains(msg, "the shared Service selects no pod") {
				t.Fatalf("%s: drift message %q", st.name, msg)
			}
		}
		w = next
	}

	// Accepting the drifted space records it again and ends the drift.
	fp2, _ := NewFingerprint(probes, vecs(fakeupstream.Space{Seed: 7}), DefaultK)
	w = Record(w, fp2, "a", "", "accepted", "tok", t0.Add(time.Hour))
	if Drifted(w) || w.AcceptedToken != "tok" || w.Verdict != v1alpha1.SpaceCompatible {
		t.Fatalf("after accepting: %+v", w)
	}
	if _, r := Observe(w, probes, vecs(fakeupstream.Space{Seed: 7}), nil, spec, t0.Add(2*time.Hour)); r != WatchSame {
		t.Fatalf("the accepted space: %s", r)
	}
}

func equalWatch(a, b *v1alpha1.SpaceWatchStatus) bool {
	return a.Verdict == b.Verdict && a.Message == b.Message && a.MinCosine == b.MinCosine && a.NeighborOverlap == b.NeighborOverlap &&
		a.Since.Equal(b.Since) && a.DriftedSince.Equal(b.DriftedSince)
}
