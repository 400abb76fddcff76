package builtinmodel

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"

	"github.com/ragops/rag-operator/internal/provider"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		want    int
		wantErr bool
	}{
		{"hash-384", 384, false},
		{"hash-2", 2, false},
		{"hash-8192", 8192, false},
		{"hash-1", 0, true},
		{"hash-8193", 0, true},
		{"hash-", 0, true},
		{"hash-12x", 0, true},
		{"text-embedding-3-small", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(tt.name)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if m.Dims != tt.want {
				t.Fatalf("dims %d, want %d", m.Dims, tt.want)
			}
			if err == nil && m.Name() != tt.name {
				t.Fatalf("name %q", m.Name())
			}
		})
	}
}

func embed(t *testing.T, m Model, text string) []float32 {
	t.Helper()
	v := make([]float32, m.Dims)
	m.EmbedText(v, text)
	return v
}

func cos(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func norm(v []float32) float64 { return math.Sqrt(cos(v, v)) }

func TestDeterministicNormalisedRightDims(t *testing.T) {
	texts := []string{"hello world", "!!!", "Ünïcödé wörds ünd ß", "a", "The quick brown fox jumps over the lazy dog."}
	for _, dims := range []int{2, 64, 384, 1536} {
		m := Model{Dims: dims}
		for _, text := range texts {
			a, b := embed(t, m, text), embed(t, Model{Dims: dims}, text)
			if len(a) != dims {
				t.Fatalf("len %d want %d", len(a), dims)
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("dims %d %q: not deterministic at %d", dims, text, i)
				}
			}
			if n := norm(a); math.Abs(n-1) > 1e-5 {
				t.Fatalf("dims %d %q: norm %f", dims, text, n)
			}
		}
	}
}

// Case and whitespace are not features: queries typed differently match.
func TestCaseAndSpacingIgnored(t *testing.T) {
	v := embed(t, Model{Dims: 8}, "hello world")
	w := embed(t, Model{Dims: 8}, "hello world")
	if cos(v, w) < 0.999999 {
		t.Fatal("same text, different vectors")
	}
	if cos(v, embed(t, Model{Dims: 8}, "HELLO   World")) < 0.999999 {
		t.Fatal("case and spacing should not matter")
	}
}

func TestSimilarCloserThanUnrelated(t *testing.T) {
	m := Model{Dims: 384}
	tests := []struct{ anchor, similar, unrelated string }{
		{"How do I reset my password?", "how can I reset the password", "Quarterly revenue grew by ten percent"},
		{"Kubernetes operator for embedding servers", "an operator that runs embedding servers on Kubernetes", "chocolate cake recipe with berries"},
		{"embedding vectors", "embeddings vector", "holiday in the mountains"},
		{"the cat sat on the mat", "a cat sat on a mat", "stock markets fell sharply today"},
	}
	for _, tt := range tests {
		a := embed(t, m, tt.anchor)
		s, u := cos(a, embed(t, m, tt.similar)), cos(a, embed(t, m, tt.unrelated))
		if s <= u {
			t.Errorf("%q: similar %.3f <= unrelated %.3f", tt.anchor, s, u)
		}
		if s < 0.3 {
			t.Errorf("%q: similar only %.3f", tt.anchor, s)
		}
	}
}

func TestProvider(t *testing.T) {
	p := Provider{Model: Model{Dims: 64}}
	req := provider.Request{Inputs: []provider.Input{
		{Text: "alpha beta"}, {Tokens: []int{1, 2, 3}, IsTokens: true}, {Text: "gamma"},
	}}
	resp, err := p.Embed(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Embeddings) != 3 || resp.PromptTokens != 2+3+1 {
		t.Fatalf("got %d vectors, %d tokens", len(resp.Embeddings), resp.PromptTokens)
	}
	if cos(resp.Embeddings[0], embed(t, p.Model, "alpha beta")) < 0.999999 {
		t.Fatal("vector 0 not at its index")
	}
	if cos(resp.Embeddings[2], embed(t, p.Model, "gamma")) < 0.999999 {
		t.Fatal("vector 2 not at its index")
	}

	// Shortened embeddings: the same model hashed into fewer buckets.
	req.Dimensions = 16
	short, err := p.Embed(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range short.Embeddings {
		if len(v) != 16 || math.Abs(norm(v)-1) > 1e-5 {
			t.Fatalf("vector %d: len %d norm %f", i, len(v), norm(v))
		}
		if i != 1 && cos(v, embed(t, Model{Dims: 16}, req.Inputs[i].Text)) < 0.99999 {
			t.Fatalf("vector %d is not hash-16 of its input", i)
		}
	}

	req.Dimensions = 65
	_, err = p.Embed(context.Background(), req)
	pe, ok := provider.AsError(err)
	if !ok || pe.Status != http.StatusBadRequest || pe.Param != "dimensions" {
		t.Fatalf("too many dimensions: %v", err)
	}
}

func TestProviderStopsAtDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Provider{Model: Model{Dims: 8}}.Embed(ctx, provider.Request{Inputs: []provider.Input{{Text: "x"}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestFailRate(t *testing.T) {
	p := provider.FailRate(Provider{Model: Model{Dims: 8}}, 0.5, 1)
	fails := 0
	for i := 0; i < 1000; i++ {
		_, err := p.Embed(context.Background(), provider.Request{Inputs: []provider.Input{{Text: "x"}}})
		if err != nil {
			pe, ok := provider.AsError(err)
			if !ok || pe.Status != http.StatusInternalServerError {
				t.Fatalf("err %v", err)
			}
			fails++
		}
	}
	if fails < 400 || fails > 600 {
		t.Fatalf("%d/1000 failed at rate 0.5", fails)
	}
}
