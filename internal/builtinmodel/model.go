// Package builtinmodel is the embedding server's network-free model hash-<dims>:
// signed feature hashing of word unigrams, word bigrams and character trigrams,
// L2-normalised. It is deterministic, so tests and demos need no upstream, and
// texts sharing words and spellings score a higher cosine similarity.
package builtinmodel

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragops/rag-operator/internal/provider"
)

// Bounds on the model's dimensions.
const (
	MinDims = 2
	MaxDims = 8192
)

// Feature weights: whole words carry the meaning, bigrams the order, trigrams
// make spelling variants ("embedding", "embeddings") land close.
const (
	wUnigram = 1.0
	wBigram  = 0.7
	wTrigram = 0.35
)

// Model is hash-<Dims>.
type Model struct{ Dims int }

// Parse reads a model name "hash-<dims>".
func Parse(name string) (Model, error) {
	rest, ok := strings.CutPrefix(name, "hash-")
	if !ok {
		return Model{}, fmt.Errorf("builtin model %q: want hash-<dims>", name)
	}
	d, err := strconv.Atoi(rest)
	if err != nil || d < MinDims || d > MaxDims {
		return Model{}, fmt.Errorf("builtin model %q: dims must be an integer in [%d,%d]", name, MinDims, MaxDims)
	}
	return Model{Dims: d}, nil
}

// Name is the model's name.
func (m Model) Name() string { return "hash-" + strconv.Itoa(m.Dims) }

// FNV-1a, inlined so hashing a feature never allocates.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashStr(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

func hashByte(h uint64, b byte) uint64 {
	h ^= uint64(b)
	return h * fnvPrime
}

func hashUint(h uint64, v uint64) uint64 {
	for i := 0; i < 8; i++ {
		h = hashByte(h, byte(v>>(8*i)))
	}
	return h
}

// mix spreads FNV's low bits (splitmix64 finaliser) before taking index and sign.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

func (m Model) add(v []float32, h uint64, w float32) {
	h = mix(h)
	idx := (h >> 1) % uint64(m.Dims)
	if h&1 == 1 {
		v[idx] -= w
	} else {
		v[idx] += w
	}
}

// words splits lower-cased text into runs of letters and digits.
func words(text string, dst []string) []string {
	start := -1
	for i, r := range text {
		isWord := r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9') ||
			r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
		switch {
		case isWord && start < 0:
			start = i
		case !isWord && start >= 0:
			dst = append(dst, text[start:i])
			start = -1
		}
	}
	if start >= 0 {
		dst = append(dst, text[start:])
	}
	return dst
}

// EmbedText writes the unit vector of text into v (len m.Dims) and returns the
// number of words, which the server reports as tokens.
func (m Model) EmbedText(v []float32, text string) int {
	clear(v)
	text = strings.ToLower(text)
	var buf [64]string
	ws := words(text, buf[:0])
	for i, w := range ws {
		m.add(v, hashStr(hashByte(fnvOffset, 'u'), w), wUnigram)
		if i > 0 {
			h := hashStr(hashByte(fnvOffset, 'b'), ws[i-1])
			m.add(v, hashStr(hashByte(h, ' '), w), wBigram)
		}
		// Trigrams of "<w>" with boundary marks, so prefixes and suffixes count.
		m.trigrams(v, w)
	}
	if !normalize(v) {
		m.fallback(v, text)
	}
	return len(ws)
}

func (m Model) trigrams(v []float32, w string) {
	if !isASCII(w) {
		rs := []rune("<" + w + ">")
		for i := 0; i+3 <= len(rs); i++ {
			m.add(v, hashStr(hashByte(fnvOffset, 't'), string(rs[i:i+3])), wTrigram)
		}
		return
	}
	n := len(w) + 2
	at := func(i int) byte {
		switch i {
		case 0:
			return '<'
		case n - 1:
			return '>'
		}
		return w[i-1]
	}
	for i := 0; i+3 <= n; i++ {
		h := hashByte(fnvOffset, 't')
		h = hashByte(hashByte(hashByte(h, at(i)), at(i+1)), at(i+2))
		m.add(v, h, wTrigram)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// EmbedTokens writes the unit vector of a token-id sequence: ids are words.
func (m Model) EmbedTokens(v []float32, ids []int) int {
	clear(v)
	for i, id := range ids {
		m.add(v, hashUint(hashByte(fnvOffset, 'U'), uint64(id)), wUnigram)
		if i > 0 {
			m.add(v, hashUint(hashUint(hashByte(fnvOffset, 'B'), uint64(ids[i-1])), uint64(id)), wBigram)
		}
	}
	if !normalize(v) {
		m.fallback(v, "")
	}
	return len(ids)
}

// fallback gives featureless input (punctuation only) a deterministic unit vector.
func (m Model) fallback(v []float32, text string) {
	m.add(v, hashStr(hashByte(fnvOffset, 'f'), text), 1)
	normalize(v)
}

// normalize scales v to unit length; false when v is zero.
func normalize(v []float32) bool {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if sum == 0 {
		return false
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range v {
		v[i] *= inv
	}
	return true
}

// Provider serves a Model to the embedding server. Observer, when set, is told
// the size of each call (every request is one model call here).
type Provider struct {
	Model    Model
	Observer provider.Observer
}

// Dimensions is the model's own vector size (provider.Dimensioner).
func (p Provider) Dimensions() int { return p.Model.Dims }

// Embed computes every input. A smaller `dimensions` hashes into that many
// buckets (hash-<dimensions>), so short vectors keep all features instead of
// losing those that a truncation would drop. It checks ctx between inputs so a
// huge batch still stops at the request deadline.
func (p Provider) Embed(ctx context.Context, req provider.Request) (provider.Response, error) {
	dims := p.Model.Dims
	if req.Dimensions > 0 {
		if req.Dimensions > dims {
			return provider.Response{}, provider.BadRequest("dimensions", "dimensions must be at most %d for model %s", dims, p.Model.Name())
		}
		dims = req.Dimensions
	}
	if p.Observer != nil {
		p.Observer.Batch(len(req.Inputs))
	}
	m := Model{Dims: dims}
	out := make([][]float32, len(req.Inputs))
	backing := make([]float32, dims*len(req.Inputs))
	tokens := 0
	for i, in := range req.Inputs {
		if i%16 == 0 {
			if err := ctx.Err(); err != nil {
				return provider.Response{}, fmt.Errorf("builtin model: %w", context.Cause(ctx))
			}
		}
		vec := backing[i*dims : (i+1)*dims : (i+1)*dims]
		if in.IsTokens {
			tokens += m.EmbedTokens(vec, in.Tokens)
		} else {
			tokens += m.EmbedText(vec, in.Text)
		}
		out[i] = vec
	}
	return provider.Response{Embeddings: out, PromptTokens: tokens}, nil
}
