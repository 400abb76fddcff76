package budget

import (
	"fmt"
	"strings"
	"testing"
)

func TestSplit(t *testing.T) {
	rep := func(n, v int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = v
		}
		return s
	}
	tests := []struct {
		name   string
		tokens []int
		lim    CallLimits
		want   []int
	}{
		{"empty", nil, CallLimits{MaxInputs: 2}, nil},
		{"fits", rep(3, 10), CallLimits{MaxInputs: 4, MaxTokens: 100}, []int{3}},
		{"inputs bind", rep(5, 1), CallLimits{MaxInputs: 2}, []int{2, 4, 5}},
		{"tokens bind", []int{60, 50, 40, 30}, CallLimits{MaxTokens: 100}, []int{1, 3, 4}},
		{"one input over the token limit goes alone", []int{10, 500, 10}, CallLimits{MaxTokens: 100}, []int{1, 2, 3}},
		{"1,000 texts of 2,000 bytes under 300,000 tokens", rep(1000, 2000), CallLimits{MaxInputs: 2048, MaxTokens: 300000}, []int{150, 300, 450, 600, 750, 900, 1000}},
		{"no limits", rep(5000, 1000), CallLimits{}, []int{5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Split(tt.tokens, tt.lim)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("ends %v, want %v", got, tt.want)
			}
			start := 0
			for _, end := range got {
				sum := 0
				for _, v := range tt.tokens[start:end] {
					sum += v
				}
				if end-start > 1 && !tt.lim.Fits(end-start, sum) {
					t.Fatalf("call [%d,%d) of %d tokens does not fit %+v", start, end, sum, tt.lim)
				}
				start = end
			}
		})
	}
}

func TestFill(t *testing.T) {
	p := func(in, tok int) Piece { return Piece{Inputs: in, Tokens: tok} }
	tests := []struct {
		name    string
		waiting []Piece
		lim     CallLimits
		want    int
	}{
		{"nothing waiting", nil, CallLimits{MaxInputs: 64}, 0},
		{"all fit", []Piece{p(1, 5), p(1, 5), p(1, 5)}, CallLimits{MaxInputs: 64, MaxTokens: 100}, 3},
		{"inputs bind", []Piece{p(30, 1), p(30, 1), p(30, 1)}, CallLimits{MaxInputs: 64}, 2},
		{"tokens bind", []Piece{p(1, 60), p(1, 60)}, CallLimits{MaxInputs: 64, MaxTokens: 100}, 1},
		{"in order: a small piece behind a big one waits", []Piece{p(1, 10), p(1, 95), p(1, 1)}, CallLimits{MaxTokens: 100}, 1},
		{"a lone piece too big still goes", []Piece{p(100, 1)}, CallLimits{MaxInputs: 64}, 1},
		{"100 clients of one input under 64", func() []Piece {
			s := make([]Piece, 100)
			for i := range s {
				s[i] = p(1, 3)
			}
			return s
		}(), CallLimits{MaxInputs: 64, MaxTokens: 300000}, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Fill(tt.waiting, tt.lim); got != tt.want {
				t.Fatalf("%d pieces, want %d", got, tt.want)
			}
		})
	}
}

func TestEstimateTokensNeverCountsTooFew(t *testing.T) {
	for _, s := range []string{"", "a", "hello world", strings.Repeat("語", 100), "🙂🙂"} {
		// Byte-level BPE: at most one token per byte.
		if got := EstimateTokens(s); got < len(s) || got < 1 {
			t.Errorf("%q: %d", s, got)
		}
	}
}
