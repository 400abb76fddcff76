package fakeupstream

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/provider"
)

// Space is a model behind an upstream whose vector space can be changed the
// ways a real upstream changes under a service: another model of the same
// dimension, vectors no longer normalised, a tokenizer that folds case, a
// shorter input window (cut, or refused as OpenAI and TEI without
// auto-truncate do). The zero value of each field keeps the base model: the
// builtin hash model made case-sensitive, so that folding case is a change.
type Space struct {
	Seed     uint64  // another model of the same dimension: the base vector's components permuted and sign-flipped by the seed; 0: the base model
	Scale    float64 // every vector multiplied by it (no longer unit length); 0: 1
	FoldCase bool    // the tokenizer lower-cases text first
	Window   int     // input window in tokens (words); 0: no limit
	Refuse   bool    // an input past Window is refused with 400 instead of cut
}

// EmbedText writes text's vector in this space into v (len m.Dims), or
// errors when the input is past a window the space refuses.
func (sp Space) EmbedText(m builtinmodel.Model, v []float32, text string) error {
	if sp.Window > 0 {
		cut, over := FirstTokens(text, sp.Window)
		if over && sp.Refuse {
			return provider.BadRequest("input", "an input is longer than the maximum of %d tokens", sp.Window)
		}
		text = cut
	}
	if sp.FoldCase {
		text = strings.ToLower(text)
	}
	m.EmbedText(v, markCase(text))
	if sp.Seed != 0 {
		permute(v, sp.Seed)
	}
	if sp.Scale != 0 && sp.Scale != 1 {
		for i := range v {
			v[i] = float32(float64(v[i]) * sp.Scale)
		}
	}
	return nil
}

// Embed embeds texts in this space.
func (sp Space) Embed(m builtinmodel.Model, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = make([]float32, m.Dims)
		if err := sp.EmbedText(m, out[i], t); err != nil {
			return nil, fmt.Errorf("input %d: %w", i, err)
		}
	}
	return out, nil
}

// FirstTokens keeps the first n words of s, cut where the n+1-th begins, and
// says whether anything was cut.
func FirstTokens(s string, n int) (string, bool) {
	words, in := 0, false
	for i, r := range s {
		space := unicode.IsSpace(r)
		if !space && !in {
			if words == n {
				return strings.TrimRightFunc(s[:i], unicode.IsSpace), true
			}
			words++
		}
		in = !space
	}
	return s, false
}

// markCase makes the case-folding builtin model see case: an upper-case
// letter becomes the modifier letter ʼ and its lower case, which the model
// reads as part of the word, so "Cache" and "cache" are different words.
func markCase(s string) string {
	if strings.IndexFunc(s, unicode.IsUpper) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for _, r := range s {
		if unicode.IsUpper(r) {
			b.WriteRune('ʼ')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// permute maps v to another model's space of the same dimension: a
// seed-chosen permutation with seed-chosen signs (an orthogonal map, so
// lengths and the geometry within the space stay, but no vector lines up
// with its counterpart).
func permute(v []float32, seed uint64) {
	n := len(v)
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	x := seed
	next := func() uint64 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
	for i := n - 1; i > 0; i-- {
		j := int(next() % uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	src := append([]float32(nil), v...)
	for i := range v {
		sign := float32(1)
		if next()&1 == 1 {
			sign = -1
		}
		v[i] = sign * src[perm[i]]
	}
}

// answer embeds a request's inputs (texts only) in this space.
func (sp Space) answer(m builtinmodel.Model, inputs []provider.Input) (provider.Response, error) {
	resp := provider.Response{Embeddings: make([][]float32, len(inputs))}
	for i, in := range inputs {
		if in.IsTokens {
			return provider.Response{}, provider.BadRequest("input", "this upstream takes text only")
		}
		v := make([]float32, m.Dims)
		if err := sp.EmbedText(m, v, in.Text); err != nil {
			return provider.Response{}, err
		}
		resp.Embeddings[i] = v
		resp.PromptTokens += len(strings.Fields(in.Text))
	}
	return resp, nil
}
