package embeddingspace

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/ragops/rag-operator/internal/builtinmodel"
)

func TestParseProbes(t *testing.T) {
	list := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("probe %d", i)
		}
		return out
	}
	many := func(n int) string { return strings.Join(list(n), "\n") }
	tests := []struct {
		name    string
		content string
		want    []string
		err     string
	}{
		{name: "one per line, trimmed", content: "  first text \n\tsecond\ttext\t\nthird\n", want: []string{"first text", "second\ttext", "third"}},
		{name: "comments and empty lines skipped", content: "# golden queries\n\nalpha\n   # indented comment\n\n\nbeta", want: []string{"alpha", "beta"}},
		{name: "CRLF and a byte order mark", content: "\uFEFFalpha\r\nbeta\r\n", want: []string{"alpha", "beta"}},
		{name: "a # inside a text", content: "issue #12\nC# and F#\n", want: []string{"issue #12", "C# and F#"}},
		{name: "non-ASCII", content: "Grüße aus Köln\n東京の天気\n👍\n", want: []string{"Grüße aus Köln", "東京の天気", "👍"}},
		{name: "as many as allowed", content: many(MaxProbes), want: list(MaxProbes)},
		{name: "a probe as long as allowed", content: "a\n" + strings.Repeat("é", MaxProbeBytes/2), want: []string{"a", strings.Repeat("é", MaxProbeBytes/2)}},
		{name: "empty", content: "", err: "no probes: every line is empty or a # comment"},
		{name: "only comments", content: "# a\n\n#b\n", err: "no probes: every line is empty or a # comment"},
		{name: "one probe", content: "# header\nlonely\n", err: "1 probes: at least 2 are needed"},
		{name: "too many", content: many(MaxProbes + 1), err: "more than 1024 probes (line 1025 is probe 1025)"},
		{name: "a line too long", content: "ok\nok2\n" + strings.Repeat("x", MaxProbeBytes+1), err: "line 3: 131073 bytes, at most 131072 are allowed per probe"},
		{name: "invalid UTF-8", content: "ok\nbad \xff byte\n", err: "line 2: invalid UTF-8"},
		{name: "control character", content: "ok\nbell\a\n", err: "line 2: control character U+0007"},
		{name: "repeated", content: "alpha\nbeta\n  alpha  \n", err: "line 3 repeats line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProbes(tt.content)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseProbesTotalBytes(t *testing.T) {
	var b strings.Builder
	for i := 0; b.Len() <= MaxProbeSet; i++ {
		fmt.Fprintf(&b, "%04d %s\n", i, strings.Repeat("w", 8000))
	}
	_, err := ParseProbes(b.String())
	if want := "line 131: the probes pass 1048576 bytes in all"; err == nil || err.Error() != want {
		t.Fatalf("err %v, want %q", err, want)
	}
}

// scripts names the writing systems a text uses, emoji and digits included.
func scripts(text string) []string {
	tables := []struct {
		name string
		t    *unicode.RangeTable
	}{
		{"Latin", unicode.Latin}, {"Cyrillic", unicode.Cyrillic}, {"Greek", unicode.Greek},
		{"Han", unicode.Han}, {"Hiragana", unicode.Hiragana}, {"Katakana", unicode.Katakana}, {"Hangul", unicode.Hangul},
		{"Arabic", unicode.Arabic}, {"Hebrew", unicode.Hebrew}, {"Devanagari", unicode.Devanagari}, {"Thai", unicode.Thai},
		{"Cherokee", unicode.Cherokee}, {"Symbol", unicode.So}, {"Math", unicode.Sm}, {"Digit", unicode.Nd},
	}
	var out []string
	for _, tb := range tables {
		if strings.IndexFunc(text, func(r rune) bool { return unicode.Is(tb.t, r) }) >= 0 {
			out = append(out, tb.name)
		}
	}
	return out
}

func TestBuiltinProbes(t *testing.T) {
	probes := BuiltinProbes()
	if len(probes) < 64 {
		t.Fatalf("%d built-in probes, want at least 64", len(probes))
	}
	// ParseProbes built them, so they are distinct, valid and within the
	// per-probe bounds; check the parse did not drop lines it should keep.
	if again, err := ParseProbes(strings.Join(probes, "\n")); err != nil || !slices.Equal(again, probes) {
		t.Fatalf("the built-in probes do not parse back to themselves: %v", err)
	}
	probes[0] = "changed"
	if BuiltinProbes()[0] == "changed" {
		t.Fatal("BuiltinProbes shares its slice with callers")
	}
	probes = BuiltinProbes()

	seen := map[string]int{}
	var ascii, short, long, paragraphs int
	for _, p := range probes {
		for _, s := range scripts(p) {
			seen[s]++
		}
		n := utf8.RuneCountInString(p)
		switch {
		case n <= 12:
			short++
		case n >= 400:
			paragraphs++
		case n >= 150:
			long++
		}
		if strings.IndexFunc(p, func(r rune) bool { return r >= utf8.RuneSelf }) < 0 {
			ascii++
		}
	}
	for _, s := range []string{"Latin", "Cyrillic", "Greek", "Han", "Hiragana", "Hangul", "Arabic", "Hebrew", "Devanagari", "Thai", "Symbol", "Digit"} {
		if seen[s] == 0 {
			t.Errorf("no probe in %s", s)
		}
	}
	if ascii < 20 || len(probes)-ascii < 20 {
		t.Errorf("%d ASCII-only probes and %d with other characters: want at least 20 of each", ascii, len(probes)-ascii)
	}
	if short < 5 || long < 5 || paragraphs < 3 {
		t.Errorf("%d probes of at most 12 characters, %d of 150 or more, %d paragraphs of 400 or more: want at least 5, 5 and 3", short, long, paragraphs)
	}
	for _, want := range []string{"https://", "SELECT ", "func ", "@", "€", "3.14159"} {
		if !slices.ContainsFunc(probes, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("no probe contains %q", want)
		}
	}
	// All probes travel in one request: it must fit the embedding server's
	// default limits of 2048 inputs and 4 MiB (internal/embedserver).
	body, _ := json.Marshal(map[string]any{"input": probes, "encoding_format": "float"})
	if len(probes) > 2048 || len(body) > 4<<20 {
		t.Errorf("%d probes in %d bytes: over the server's default limits", len(probes), len(body))
	}
	t.Logf("%d probes, %d bytes as one request; scripts %v", len(probes), len(body), seen)
}

// embedAll embeds texts with a builtin model, as the embedding server does.
func embedAll(m builtinmodel.Model, texts []string) [][]float32 {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = make([]float32, m.Dims)
		m.EmbedText(out[i], t)
	}
	return out
}

func mustModel(t *testing.T, name string) builtinmodel.Model {
	t.Helper()
	m, err := builtinmodel.Parse(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestBuiltinModelSpaces compares real vectors of the built-in probes: the
// builtin model hash-384 against itself and against the ways a server change
// can move it to another space.
func TestBuiltinModelSpaces(t *testing.T) {
	probes := BuiltinProbes()
	h384, h256 := mustModel(t, "hash-384"), mustModel(t, "hash-256")
	stable := embedAll(h384, probes)
	n := len(probes)

	// Each variant is one way a new image or configuration changes the space.
	mapTexts := func(f func(string) string) [][]float32 {
		texts := make([]string, n)
		for i, p := range probes {
			texts[i] = f(p)
		}
		return embedAll(h384, texts)
	}
	firstWords := func(k int) func(string) string {
		return func(s string) string {
			if f := strings.Fields(s); len(f) > k {
				return strings.Join(f[:k], " ")
			}
			return s
		}
	}
	asciiOnly := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= utf8.RuneSelf {
				return -1
			}
			return r
		}, s)
	}
	l1 := func(_ int, v []float32) []float32 {
		var s float64
		for _, x := range v {
			s += math.Abs(float64(x))
		}
		for j := range v {
			v[j] = float32(float64(v[j]) / s)
		}
		return v
	}

	tests := []struct {
		name       string
		canary     [][]float32
		compatible bool
		message    string // prefix
	}{
		{"the same model", embedAll(h384, probes), true,
			fmt.Sprintf("min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 5) over %d probes", n)},
		{"the same model with float noise at 1e-6", with(stable, noise(7, 1e-6)), true, "min cosine 1.0000 >= 0.999"},
		{"hash-256", embedAll(h256, probes), false, "dimensions 384 -> 256"},
		{"hash-384 truncated to 256 dimensions", with(stable, func(_ int, v []float32) []float32 { return v[:256] }), false, "dimensions 384 -> 256"},
		{"inputs truncated to 16 words", mapTexts(firstWords(16)), false, "min cosine "},
		{"a tokenizer that drops non-ASCII", mapTexts(asciiOnly), false, "min cosine "},
		{"upper-cased before embedding (ß becomes ss)", mapTexts(strings.ToUpper), false, "min cosine "},
		{"L1 instead of L2 normalisation", with(stable, l1), false, "vector length x0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compare(stable, tt.canary, 5)
			if err != nil {
				t.Fatal(err)
			}
			ok, msg := c.Judge(0.999, 0.9)
			t.Log(msg)
			if ok != tt.compatible || !strings.HasPrefix(msg, tt.message) {
				t.Fatalf("compatible %v: %s\nwant %v: %s...", ok, msg, tt.compatible, tt.message)
			}
		})
	}
}
