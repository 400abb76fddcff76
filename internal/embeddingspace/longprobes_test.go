package embeddingspace

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/fakeupstream"
)

var testNow = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

func defaultSpec() v1alpha1.SpaceCheckSpec { return v1alpha1.SpaceCheckSpec{} }

// truncatingServer embeds like the built-in model but only the first window
// tokens (words) of each input, as a model server with a max input length and
// auto-truncation does.
func truncatingServer(m builtinmodel.Model, window int) func([]string) [][]float32 {
	return func(texts []string) [][]float32 {
		cut := make([]string, len(texts))
		for i, t := range texts {
			cut[i], _ = fakeupstream.FirstTokens(t, window)
		}
		return embedAll(m, cut)
	}
}

func TestLongProbes(t *testing.T) {
	long := LongProbes()
	if len(long) != len(LongProbeWords) {
		t.Fatalf("%d long probes, want %d", len(long), len(LongProbeWords))
	}
	total := 0
	for i, l := range long {
		if n := len(strings.Fields(l)); n != LongProbeWords[i] {
			t.Errorf("long probe %d has %d words, want %d", i, n, LongProbeWords[i])
		}
		if !utf8.ValidString(l) || len(l) > MaxProbeBytes {
			t.Errorf("long probe %d: %d bytes (at most %d), valid UTF-8 %v", i, len(l), MaxProbeBytes, utf8.ValidString(l))
		}
		if !IsLongProbe(l) || IsLongProbe(l[:len(l)-1]) {
			t.Errorf("IsLongProbe misjudges long probe %d", i)
		}
		total += len(l)
	}
	// Deterministic: the same texts from a second generation.
	again := longProbe(vocabulary(builtin), LongProbeWords[2], 3)
	if again != long[2] {
		t.Fatal("long probes are not deterministic")
	}
	// A user's set parses with them (the bounds leave room for them).
	set := WithLongProbes(BuiltinProbes())
	if _, err := ParseProbes(strings.Join(set, "\n")); err != nil {
		t.Fatalf("the built-in probes with the long probes do not parse: %v", err)
	}
	if got := WithLongProbes(set); len(got) != len(set) {
		t.Fatalf("WithLongProbes repeated long probes: %d texts, want %d", len(got), len(set))
	}
	t.Logf("%d long probes, %d bytes in all", len(long), total)
}

// TestLongProbesCatchTruncation: a server that truncates its input at the
// usual windows embeds the built-in set (and a user's set with the long
// probes added) into what the check calls another space; the same server
// without truncation passes.
func TestLongProbesCatchTruncation(t *testing.T) {
	h384 := mustModel(t, "hash-384")
	user, err := ParseProbes("what is our refund policy\nhow do I reset my password\nshipping times to Canada\nthe invoice was charged twice\n")
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string][]string{
		"built-in": WithLongProbes(BuiltinProbes()),
		"a user's": WithLongProbes(user),
	}
	for name, probes := range sets {
		stable := embedAll(h384, probes)
		t.Run(name+"/same space", func(t *testing.T) {
			st := Check(stable, truncatingServer(h384, 1<<20)(probes), defaultSpec(), "r", testNow)
			if st.Verdict != "Compatible" {
				t.Fatalf("verdict %s: %s", st.Verdict, st.Message)
			}
		})
		for _, window := range []int{512, 1024, 2048, 4096, 8192} {
			t.Run(fmt.Sprintf("%s/window %d", name, window), func(t *testing.T) {
				st := Check(stable, truncatingServer(h384, window)(probes), defaultSpec(), "r", testNow)
				t.Log(st.Message)
				if st.Verdict != "Changed" || !strings.HasPrefix(st.Message, "min cosine ") {
					t.Fatalf("verdict %s: %s", st.Verdict, st.Message)
				}
			})
		}
	}
}

// TestLongProbesTruncationSweep finds every window the built-in set catches:
// all below the longest probe but its last words.
func TestLongProbesTruncationSweep(t *testing.T) {
	h384 := mustModel(t, "hash-384")
	probes := WithLongProbes(BuiltinProbes())
	stable := embedAll(h384, probes)
	longest := LongProbeWords[len(LongProbeWords)-1]
	missed := 0
	for window := 1; window < longest; window = window*21/20 + 1 {
		c, err := Compare(stable, truncatingServer(h384, window)(probes), 5)
		if err != nil {
			t.Fatal(err)
		}
		if ok, _ := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap); ok {
			t.Errorf("a window of %d tokens passed: min cosine %s", window, Format(c.MinCosine))
			missed++
		}
	}
	// Past the longest probe nothing is cut: the check cannot see it.
	c, _ := Compare(stable, truncatingServer(h384, longest)(probes), 5)
	if ok, _ := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap); !ok {
		t.Fatalf("a window as long as the longest probe failed")
	}
}

// TestRefusedLongProbes: a server that refuses texts past its window (the
// probe client then sends the set without them: nil vectors) agrees with
// another that refuses them too, and differs from one that embeds them.
func TestRefusedLongProbes(t *testing.T) {
	h384 := mustModel(t, "hash-384")
	probes := WithLongProbes(BuiltinProbes())
	refused := func(vecs [][]float32, longerThan int) [][]float32 {
		out := clone(vecs)
		for i, p := range probes {
			if len(strings.Fields(p)) > longerThan {
				out[i] = nil
			}
		}
		return out
	}
	full := embedAll(h384, probes)
	c, err := Compare(refused(full, 6000), refused(full, 6000), 5)
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap); !ok || c.Refused != 1 || !strings.HasSuffix(msg, "(1 refused by both sides as too long)") {
		t.Fatalf("both refusing the longest probe: compatible %v, refused %d: %s", ok, c.Refused, msg)
	}
	c, _ = Compare(full, refused(full, 3000), 5)
	ok, msg := c.Judge(DefaultMinCosine, DefaultMinNeighborOverlap)
	t.Log(msg)
	if ok || !strings.Contains(msg, "canary vector is missing: the server refused the text") {
		t.Fatalf("a canary that refuses what stable embeds: compatible %v: %s", ok, msg)
	}
}
