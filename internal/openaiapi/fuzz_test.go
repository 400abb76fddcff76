package openaiapi

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/ragops/rag-operator/internal/provider"
)

// FuzzDecodeRequest: no body crashes the decoder; an accepted body has between 1
// and MaxInputs non-empty inputs, with the texts encoding/json reads, and a
// refused one says why with 400 or 413.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"input":"hi"}`, `{"input":["a","b"],"encoding_format":"base64"}`, `{"input":[1,2]}`,
		`{"input":[[1],[2,3]],"dimensions":3}`, `{"input":[]}`, `{"input":["a",1]}`, `{"input":[[1],"a"]}`,
		`{"input":null}`, `[]`, `"x"`, `{"input":[1e400]}`, `{"input":"\ud800"}`, `{"input":[[[1]]]}`,
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxInputs: 4}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRequest(body, lim)
		if err != nil {
			pe, ok := provider.AsError(err)
			if !ok || (pe.Status != http.StatusBadRequest && pe.Status != http.StatusRequestEntityTooLarge) || pe.Message == "" {
				t.Fatalf("error %v is not a 400/413 provider error", err)
			}
			return
		}
		if len(r.Inputs) == 0 || len(r.Inputs) > lim.MaxInputs && len(r.Inputs) != 1 {
			t.Fatalf("accepted %d inputs", len(r.Inputs))
		}
		for i, in := range r.Inputs {
			if in.IsTokens && len(in.Tokens) == 0 || !in.IsTokens && in.Text == "" {
				t.Fatalf("input %d empty: %+v", i, in)
			}
		}
		var ref struct{ Input any }
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		var texts []string
		switch v := ref.Input.(type) {
		case string:
			texts = []string{v}
		case []any:
			for _, it := range v {
				if s, ok := it.(string); ok {
					texts = append(texts, s)
				}
			}
		}
		for i, want := range texts {
			if i >= len(r.Inputs) || r.Inputs[i].Text != want {
				t.Fatalf("input %d: %q, encoding/json reads %q", i, r.Inputs[i].Text, want)
			}
		}
		if r.Dimensions < 0 {
			t.Fatalf("dimensions %d", r.Dimensions)
		}
		// Whatever was accepted can be answered with valid JSON.
		vecs := make([][]float32, len(r.Inputs))
		for i := range vecs {
			vecs[i] = []float32{1, 0}
		}
		if !json.Valid(AppendResponse(nil, r.Model, vecs, 1, r.Base64)) {
			t.Fatal("response is not valid JSON")
		}
	})
}
