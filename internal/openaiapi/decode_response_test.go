package openaiapi

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// referenceDecode is the obvious decoder DecodeResponse must agree with.
func referenceDecode(body []byte, n int) ([][]float32, int, error) {
	var er EmbeddingResponse
	if err := json.Unmarshal(body, &er); err != nil {
		return nil, 0, err
	}
	v, err := er.Vectors(n)
	return v, er.Usage.PromptTokens, err
}

// sameBits compares vectors bit for bit, so NaN payloads from base64 compare too.
func sameBits(a, b [][]float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return false
			}
		}
	}
	return true
}

// answer writes a well-formed response the way different upstreams might: data
// in any order, fields in any order, extra fields, pretty-printed, "\/" escapes.
func answer(rng *rand.Rand, vecs [][]float32, tokens int, b64 bool) []byte {
	sp := func() string { return []string{"", " ", "\n  ", "\t"}[rng.IntN(4)] }
	order := rng.Perm(len(vecs))
	items := make([]string, len(vecs))
	for k, i := range order {
		emb := string(AppendResponse(nil, "m", [][]float32{vecs[i]}, 0, b64))
		// Cut the one vector's value out of a one-vector response.
		start := strings.Index(emb, `"embedding":`) + len(`"embedding":`)
		val := emb[start : len(emb)-len(emb[strings.Index(emb, `}],"model"`):])]
		if b64 && rng.IntN(2) == 0 {
			val = strings.ReplaceAll(val, "/", `\/`)
		}
		fields := []string{
			`"index":` + sp() + strconv.Itoa(i),
			`"embedding":` + sp() + val,
			`"object":"embedding"`,
		}
		if rng.IntN(3) == 0 {
			fields = append(fields, `"extra":{"nested":[1,"}",{"a":null}],"s":"\"data\""}`)
		}
		rng.Shuffle(len(fields), func(a, b int) { fields[a], fields[b] = fields[b], fields[a] })
		items[k] = "{" + sp() + strings.Join(fields, ","+sp()) + sp() + "}"
	}
	top := []string{
		`"object":"list"`,
		`"data":` + sp() + "[" + sp() + strings.Join(items, ","+sp()) + sp() + "]",
		`"model":"text-embedding-3-small"`,
		fmt.Sprintf(`"usage":{"total_tokens":%d,"prompt_tokens":%d}`, tokens, tokens),
	}
	rng.Shuffle(len(top), func(a, b int) { top[a], top[b] = top[b], top[a] })
	return []byte(sp() + "{" + sp() + strings.Join(top, ","+sp()) + sp() + "}" + sp())
}

func TestDecodeResponseMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	special := []float32{0, float32(math.Copysign(0, -1)), 1, -1, math.MaxFloat32, math.SmallestNonzeroFloat32, 1e-7, 0.1}
	for c := range 500 {
		n, dims, b64 := 1+rng.IntN(20), 1+rng.IntN(48), c%2 == 0
		vecs := make([][]float32, n)
		for i := range vecs {
			vecs[i] = make([]float32, dims)
			for j := range vecs[i] {
				if rng.IntN(8) == 0 {
					vecs[i][j] = special[rng.IntN(len(special))]
				} else {
					vecs[i][j] = float32(rng.NormFloat64())
				}
			}
		}
		body := answer(rng, vecs, c, b64)
		got, tokens, err := DecodeResponse(body, n)
		if err != nil {
			t.Fatalf("case %d: %v\n%s", c, err, body)
		}
		ref, refTokens, err := referenceDecode(body, n)
		if err != nil {
			t.Fatalf("case %d: the reference refused a well-formed answer: %v\n%s", c, err, body)
		}
		if !sameBits(got, vecs) || !sameBits(ref, vecs) || tokens != c || refTokens != c {
			t.Fatalf("case %d: vectors or tokens differ (tokens %d, reference %d)\n%s", c, tokens, refTokens, body)
		}
	}
}

// TestDecodeResponseFoldsKeys: keys that are not in lower case, or are escaped,
// name the same fields for both decoders, as encoding/json's rule says.
func TestDecodeResponseFoldsKeys(t *testing.T) {
	tests := []struct {
		name, body string
		tokens     int
	}{
		{"lower", `{"data":[{"index":0,"embedding":[1]}],"usage":{"prompt_tokens":3}}`, 3},
		{"title case", `{"Data":[{"Index":0,"Embedding":[1]}],"Usage":{"Prompt_Tokens":3}}`, 3},
		{"mixed case", `{"dAtA":[{"INDEX":0,"embeddinG":[1]}],"usAge":{"prompT_tokens":3}}`, 3},
		{"long s folds to s", `{"data":[{"index":0,"embedding":[1]}],"uſage":{"prompt_tokenſ":3}}`, 3},
		{"escaped key", `{"\u0064ata":[{"index":0,"embedding":[1]}],"usage":{"prompt\u005ftokens":3}}`, 3},
		{"not a fold", `{"data":[{"index":0,"embedding":[1]}],"usage_":{"prompt_tokens":3}}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, tokens, err := DecodeResponse([]byte(tt.body), 1)
			if err != nil {
				t.Fatal(err)
			}
			ref, refTokens, err := referenceDecode([]byte(tt.body), 1)
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			if !sameBits(got, [][]float32{{1}}) || !sameBits(ref, got) || tokens != tt.tokens || refTokens != tt.tokens {
				t.Fatalf("got %v/%d tokens, reference %v/%d, want [[1]]/%d", got, tokens, ref, refTokens, tt.tokens)
			}
		})
	}
}

func TestDecodeResponseRefuses(t *testing.T) {
	b64 := string(AppendResponse(nil, "m", [][]float32{{1, 2}}, 0, true))
	val := b64[strings.Index(b64, `"embedding":`)+len(`"embedding":`) : strings.Index(b64, `}],"model"`)]
	one := func(index, emb string) string { return `{"data":[{"index":` + index + `,"embedding":` + emb + `}]}` }
	tests := []struct {
		name, body, want string
		n                int
	}{
		{"not an object", `[1,2]`, "not a JSON object", 1},
		{"empty", ``, "not a JSON object", 1},
		{"truncated", `{"data":[{"index":0,"embedding":[1,2`, "", 1},
		{"too few", one("0", `[1]`), "got 1 embeddings, want 2", 2},
		{"none", `{"data":[]}`, "got 0 embeddings, want 1", 1},
		{"null data", `{"data":null}`, "got 0 embeddings, want 1", 1},
		{"index out of range", one("1", `[1]`), "index 1 out of range", 1},
		{"negative index", one("-1", `[1]`), "index -1 out of range", 1},
		{"repeated index", `{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}`, "index 0 out of range or repeated", 2},
		{"fractional index", one("0.5", `[1]`), "", 1},
		{"no vector", `{"data":[{"index":0}]}`, "has no vector", 1},
		{"null vector", one("0", `null`), "neither a base64 string nor an array", 1},
		{"object vector", one("0", `{}`), "neither a base64 string nor an array", 1},
		{"bad base64", one("0", `"!!!!"`), "bad base64", 1},
		{"base64 not float32s", one("0", `"AAA="`), "bad base64", 1},
		{"control character", one("0", "\"AACAPw\nAAAEA=\""), "control character", 1},
		{"string in float array", one("0", `[1,"2"]`), "embedding 0", 1},
		{"float out of range", one("0", `[1e400]`), "embedding 0", 1},
		{"data twice", `{"data":[{"index":0,"embedding":` + val + `}],"data":[{"index":0,"embedding":[1]}]}`, `"data" appears twice`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _, err := DecodeResponse([]byte(tt.body), tt.n)
			if err == nil {
				t.Fatalf("accepted, got %v", v)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

// FuzzDecodeResponse: no answer crashes the decoder, and where the reference
// decoder also accepts an answer, both read the same vectors and tokens.
func FuzzDecodeResponse(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	f.Add(answer(rng, [][]float32{{1, 2}, {3, 4}}, 3, true), 2)
	f.Add(answer(rng, [][]float32{{1, 2}, {3, 4}}, 3, false), 2)
	f.Add([]byte(`{"data":[{"index":0,"embedding":"AACAPwAAAEA="}],"usage":{"prompt_tokens":1}}`), 1)
	f.Add([]byte(`{"data":[{"index":0,"embedding":[1e400]}]}`), 1)
	f.Add([]byte(`{"Data":[{"Index":0,"Embedding":[1]}]}`), 1)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 || n > 64 {
			return
		}
		got, tokens, err := DecodeResponse(body, n)
		ref, refTokens, refErr := referenceDecode(body, n)
		if err == nil && refErr == nil && (!sameBits(got, ref) || tokens != refTokens) {
			t.Fatalf("decoders disagree on %q: %v/%d vs reference %v/%d", body, got, tokens, ref, refTokens)
		}
		if err == nil && len(got) != n {
			t.Fatalf("accepted %d vectors, want %d", len(got), n)
		}
	})
}

// BenchmarkDecodeResponse: one coalesced upstream answer (15 vectors of 384
// dimensions) in base64 and as float arrays, read by the reference decoder and
// by DecodeResponse.
func BenchmarkDecodeResponse(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	vecs := make([][]float32, 15)
	for i := range vecs {
		vecs[i] = make([]float32, 384)
		for j := range vecs[i] {
			vecs[i][j] = float32(rng.NormFloat64() / 20)
		}
	}
	for _, enc := range []struct {
		name string
		b64  bool
	}{{"base64", true}, {"float", false}} {
		body := AppendResponse(nil, "text-embedding-3-small", vecs, 150, enc.b64)
		perOp := map[string]float64{}
		for _, d := range []struct {
			name   string
			decode func([]byte, int) ([][]float32, int, error)
		}{{"reference", referenceDecode}, {"DecodeResponse", DecodeResponse}} {
			b.Run(enc.name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := d.decode(body, len(vecs)); err != nil {
						b.Fatal(err)
					}
				}
				perOp[d.name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
		}
		if perOp["DecodeResponse"] > 0 {
			fmt.Printf("DecodeResponse, %s: %.1f µs per answer, %.1fx faster than the reference decoder in this run\n",
				enc.name, perOp["DecodeResponse"]/1e3, perOp["reference"]/perOp["DecodeResponse"])
		}
	}
}
