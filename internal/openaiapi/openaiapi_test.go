package openaiapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/provider"
)

func TestDecodeRequest(t *testing.T) {
	lim := Limits{MaxInputs: 3}
	tests := []struct {
		name       string
		body       string
		want       []provider.Input
		wantB64    bool
		wantDims   int
		wantStatus int
		wantParam  string
	}{
		{name: "string", body: `{"input":"hi","model":"m"}`, want: []provider.Input{{Text: "hi"}}},
		{name: "strings", body: `{"input":["a","b"]}`, want: []provider.Input{{Text: "a"}, {Text: "b"}}},
		{name: "token ids", body: `{"input":[1,2,3]}`, want: []provider.Input{{Tokens: []int{1, 2, 3}, IsTokens: true}}},
		{name: "arrays of token ids", body: `{"input":[[1],[2,3]]}`, want: []provider.Input{{Tokens: []int{1}, IsTokens: true}, {Tokens: []int{2, 3}, IsTokens: true}}},
		{name: "base64", body: `{"input":"x","encoding_format":"base64"}`, want: []provider.Input{{Text: "x"}}, wantB64: true},
		{name: "float explicit", body: `{"input":"x","encoding_format":"float","dimensions":8,"user":"u"}`, want: []provider.Input{{Text: "x"}}, wantDims: 8},
		{name: "unknown fields ignored", body: `{"input":"x","extra":{"a":1}}`, want: []provider.Input{{Text: "x"}}},
		{name: "not json", body: `{`, wantStatus: 400},
		{name: "no input", body: `{"model":"m"}`, wantStatus: 400, wantParam: "input"},
		{name: "null input", body: `{"input":null}`, wantStatus: 400, wantParam: "input"},
		{name: "number input", body: `{"input":5}`, wantStatus: 400, wantParam: "input"},
		{name: "empty string", body: `{"input":""}`, wantStatus: 400, wantParam: "input"},
		{name: "empty array", body: `{"input":[]}`, wantStatus: 400, wantParam: "input"},
		{name: "empty string item", body: `{"input":["a",""]}`, wantStatus: 400, wantParam: "input"},
		{name: "mixed strings and ids", body: `{"input":["a",1]}`, wantStatus: 400, wantParam: "input"},
		{name: "mixed ids and strings", body: `{"input":[1,"a"]}`, wantStatus: 400, wantParam: "input"},
		{name: "negative id", body: `{"input":[-1]}`, wantStatus: 400, wantParam: "input"},
		{name: "fractional id", body: `{"input":[1.5]}`, wantStatus: 400, wantParam: "input"},
		{name: "empty token array", body: `{"input":[[1],[]]}`, wantStatus: 400, wantParam: "input"},
		{name: "objects", body: `{"input":[{}]}`, wantStatus: 400, wantParam: "input"},
		{name: "bad encoding", body: `{"input":"x","encoding_format":"int8"}`, wantStatus: 400, wantParam: "encoding_format"},
		{name: "zero dimensions", body: `{"input":"x","dimensions":0}`, wantStatus: 400, wantParam: "dimensions"},
		{name: "too many strings", body: `{"input":["a","b","c","d"]}`, wantStatus: 413, wantParam: "input"},
		{name: "too many token arrays", body: `{"input":[[1],[2],[3],[4]]}`, wantStatus: 413, wantParam: "input"},
		{name: "one long token array is one input", body: `{"input":[1,2,3,4,5]}`, want: []provider.Input{{Tokens: []int{1, 2, 3, 4, 5}, IsTokens: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeRequest([]byte(tt.body), lim)
			if tt.wantStatus != 0 {
				pe, ok := provider.AsError(err)
				if !ok || pe.Status != tt.wantStatus || pe.Param != tt.wantParam || pe.Message == "" {
					t.Fatalf("err %#v, want status %d param %q", err, tt.wantStatus, tt.wantParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Inputs, tt.want) || r.Base64 != tt.wantB64 || r.Dimensions != tt.wantDims {
				t.Fatalf("got %+v", r)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	vecs := [][]float32{{0.5, -0.25, 1e-7, 3.4028235e38}, {0, 1, -1, 0.1}}
	for _, b64 := range []bool{false, true} {
		body := AppendResponse(nil, `m"odel`, vecs, 7, b64)
		var resp EmbeddingResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("b64=%v: invalid JSON %s: %v", b64, body, err)
		}
		got, err := resp.Vectors(2)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, vecs) || resp.Model != `m"odel` || resp.Usage.TotalTokens != 7 || resp.Object != "list" {
			t.Fatalf("b64=%v: got %+v %v", b64, resp, got)
		}
		if b64 && !strings.Contains(string(body), `"embedding":"AAAAP`) {
			t.Fatalf("base64 is not little-endian float32: %s", body)
		}
	}
}

func TestVectorsChecksIndexes(t *testing.T) {
	resp := EmbeddingResponse{Data: []Embedding{{Index: 1, Embedding: json.RawMessage(`[1]`)}, {Index: 1, Embedding: json.RawMessage(`[2]`)}}}
	if _, err := resp.Vectors(2); err == nil {
		t.Fatal("repeated index accepted")
	}
	if _, err := resp.Vectors(3); err == nil {
		t.Fatal("missing embedding accepted")
	}
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		err        *provider.Error
		wantRetry  string
		wantParam  any
		wantTypeIn string
	}{
		{&provider.Error{Status: 429, Type: "rate_limit_error", Code: "queue_full", Message: "busy", RetryAfter: 1500 * time.Millisecond}, "2", nil, "rate_limit_error"},
		{provider.BadRequest("input", "bad"), "", "input", "invalid_request_error"},
		{&provider.Error{Status: 502, Message: "upstream"}, "", nil, "server_error"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		WriteError(rec, tt.err)
		if rec.Code != tt.err.Status || rec.Header().Get("Retry-After") != tt.wantRetry || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("status %d retry %q", rec.Code, rec.Header().Get("Retry-After"))
		}
		var body map[string]map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		e := body["error"]
		for _, k := range []string{"message", "type", "param", "code"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("error lacks %q: %s", k, rec.Body)
			}
		}
		if e["param"] != tt.wantParam || e["type"] != tt.wantTypeIn {
			t.Fatalf("body %s", rec.Body)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		h      http.Header
		want   time.Duration
		wantOK bool
	}{
		{http.Header{"Retry-After": {"3"}}, 3 * time.Second, true},
		{http.Header{"Retry-After": {"0.5"}}, 500 * time.Millisecond, true},
		{http.Header{"Retry-After": {now.Add(10 * time.Second).Format(http.TimeFormat)}}, 10 * time.Second, true},
		{http.Header{"Retry-After": {"3"}, "Retry-After-Ms": {"250"}}, 250 * time.Millisecond, true},
		{http.Header{"Retry-After": {"soon"}}, 0, false},
		{http.Header{}, 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.h, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%v: got %v %v", tt.h, got, ok)
		}
	}
	if RetryAfterSeconds(0) != 1 || RetryAfterSeconds(time.Second) != 1 || RetryAfterSeconds(1001*time.Millisecond) != 2 {
		t.Fatal("RetryAfterSeconds rounding")
	}
}

// A request built around an input encoded by the caller encodes that input as
// it is, and decodes back to the same texts.
func TestEmbeddingRequestRoundTrip(t *testing.T) {
	b, err := json.Marshal(EmbeddingRequest{Input: []byte(`["a","b\"c"]`), Model: "m"})
	if err != nil || string(b) != `{"input":["a","b\"c"],"model":"m"}` {
		t.Fatalf("%s %v", b, err)
	}
	r, err := DecodeRequest(b, Limits{})
	if err != nil || len(r.Inputs) != 2 || r.Inputs[0].Text != "a" || r.Inputs[1].Text != `b"c` || r.Model != "m" {
		t.Fatalf("%+v %v", r, err)
	}
}

// Encoding an answer allocates nothing per float (nor per vector) once the
// buffer has grown, and decoding one allocates as often for 64 vectors as for
// 4: never per vector or per number.
func TestCodecAllocations(t *testing.T) {
	answer := func(n int) [][]float32 {
		vecs := make([][]float32, n)
		for i := range vecs {
			vecs[i] = make([]float32, 384)
			for j := range vecs[i] {
				vecs[i][j] = float32(i*384+j) / 7919
			}
		}
		return vecs
	}
	for _, b64 := range []bool{false, true} {
		decodeAllocs := map[int]float64{}
		for _, n := range []int{4, 64} {
			vecs := answer(n)
			buf := AppendResponse(nil, "m", vecs, 1, b64)
			if a := testing.AllocsPerRun(20, func() { buf = AppendResponse(buf[:0], "m", vecs, 1, b64) }); a > 0 {
				t.Errorf("base64 %v, %d vectors: AppendResponse allocates %v times per answer", b64, n, a)
			}
			body := append([]byte(nil), buf...)
			decodeAllocs[n] = testing.AllocsPerRun(20, func() {
				if _, _, err := DecodeResponse(body, n); err != nil {
					t.Fatal(err)
				}
			})
		}
		if decodeAllocs[64] > decodeAllocs[4] {
			t.Errorf("base64 %v: DecodeResponse allocates %v times for 4 vectors, %v for 64", b64, decodeAllocs[4], decodeAllocs[64])
		}
	}
}
