package embeddingspace

import (
	"slices"
	"strings"
	"unicode"
)

// LongProbeWords are the lengths, in words, of the generated long probes that
// every probe set carries. A model server that truncates its input (a
// max_input_length or auto-truncate setting, a model with a shorter window)
// changes only the vectors of inputs longer than its window, and those are the
// chunks an indexer sends: the short probes cannot see it. Each length sits a
// quarter above one of the usual windows of 512, 1,024, 2,048, 4,096 and 8,192
// tokens counted as words (the built-in model's tokens); an English word is
// about 1.3 tokens of a BPE tokenizer, so in real tokens each probe lies
// further past its window. Truncation anywhere below the longest probe drops a
// part of some probe that moves its vector well past minCosine: the text's
// vocabulary drifts along its length, so the part cut off carries words the
// part kept does not.
var LongProbeWords = []int{640, 1280, 2560, 5120, 10240}

// longProbeWindow is how many neighbouring words of the vocabulary a stretch
// of a long probe draws from.
const longProbeWindow = 24

// long are the generated long probes, made once from the built-in probes'
// vocabulary: deterministic, so every operator sends the same texts.
var long = func() []string {
	vocab := vocabulary(builtin)
	out := make([]string, len(LongProbeWords))
	for i, n := range LongProbeWords {
		out[i] = longProbe(vocab, n, uint64(i+1))
	}
	return out
}()

// LongProbes returns the generated long probes, shortest first.
func LongProbes() []string { return append([]string(nil), long...) }

// IsLongProbe reports whether text is one of the generated long probes.
func IsLongProbe(text string) bool { return slices.Contains(long, text) }

// WithLongProbes is the probe set a space check sends: probes (the built-in
// set or a user's) followed by the long probes, so a user's set is checked for
// truncation the same way. A long probe already in probes is not repeated.
func WithLongProbes(probes []string) []string {
	out := append([]string(nil), probes...)
	for _, l := range long {
		if !slices.Contains(probes, l) {
			out = append(out, l)
		}
	}
	return out
}

// vocabulary is the distinct words of at least three letters, all ASCII, in
// texts, lower-cased, in order of first use.
func vocabulary(texts []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range texts {
		for _, w := range strings.FieldsFunc(strings.ToLower(t), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if len(w) >= 3 && isASCII(w) && !seen[w] {
				seen[w] = true
				out = append(out, w)
			}
		}
	}
	return out
}

// longProbe writes n words of sentences from vocab. Word i draws from a
// window of the (seed-shuffled) vocabulary that moves from its start to its
// end over the text, so every stretch of the text has words of its own.
func longProbe(vocab []string, n int, seed uint64) string {
	rng := splitmix(seed)
	v := append([]string(nil), vocab...)
	for i := len(v) - 1; i > 0; i-- { // Fisher-Yates
		j := int(rng() % uint64(i+1))
		v[i], v[j] = v[j], v[i]
	}
	var b strings.Builder
	b.Grow(n * 9)
	sentence := 0
	for i := range n {
		at := i*(len(v)-longProbeWindow)/n + int(rng()%longProbeWindow)
		w := v[at]
		if sentence == 0 {
			w = strings.ToUpper(w[:1]) + w[1:]
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
		sentence++
		if sentence >= 8+int(rng()%9) || i == n-1 {
			b.WriteByte('.')
			sentence = 0
		}
	}
	return b.String()
}

// splitmix is a small deterministic generator (splitmix64).
func splitmix(seed uint64) func() uint64 {
	x := seed
	return func() uint64 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] > unicode.MaxASCII {
			return false
		}
	}
	return true
}
