package fakeupstream

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func post(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Post(url+"/v1/embeddings", "application/json", strings.NewReader(`{"input":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestScriptRatesAndCounters(t *testing.T) {
	up := New(Config{Script: []int{429, 500, 200}, RetryAfter: 1500 * time.Millisecond})
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer up.Close()
	r := post(t, ts.URL)
	if r.StatusCode != 429 || r.Header.Get("Retry-After") != "1.5" || r.Header.Get("Retry-After-Ms") != "1500" {
		t.Fatalf("first call: %d %v", r.StatusCode, r.Header)
	}
	if r := post(t, ts.URL); r.StatusCode != 500 {
		t.Fatalf("second call: %d", r.StatusCode)
	}
	for i := 0; i < 3; i++ {
		if r := post(t, ts.URL); r.StatusCode != 200 {
			t.Fatalf("call %d: %d", i+3, r.StatusCode)
		}
	}
	st := up.Stats()
	if st.Calls != 5 || st.Inputs != 10 || st.LargestCall != 2 || st.ByStatus[200] != 3 || st.ByStatus[429] != 1 {
		t.Fatalf("stats %+v", st)
	}

	up.SetConfig(Config{ErrorRate: 0.5})
	up.ResetStats()
	for i := 0; i < 200; i++ {
		post(t, ts.URL)
	}
	if n := up.Stats().ByStatus[500]; n < 60 || n > 140 {
		t.Fatalf("%d/200 errors at rate 0.5", n)
	}
}

func TestHangReleasedByClose(t *testing.T) {
	up := New(Config{HangRate: 1})
	ts := httptest.NewServer(up)
	defer ts.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(ts.URL+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"x"}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	poll.Until(t, "the call to hang", func() bool { return up.Stats().Hung != 0 })
	select {
	case <-done:
		t.Fatal("a hanging call answered")
	case <-time.After(50 * time.Millisecond):
	}
	up.Close()
	<-done
}

// An upstream like Ollama answers float arrays even when base64 is asked, with
// the same vector for the same text as one that honours encoding_format; and a
// call's latency grows with its inputs.
func TestEncodingAndPerInputLatency(t *testing.T) {
	ask := func(t *testing.T, cfg Config, body string) ([]float32, time.Duration, string) {
		t.Helper()
		up := New(cfg)
		ts := httptest.NewServer(up)
		defer ts.Close()
		defer up.Close()
		start := time.Now()
		resp, err := http.Post(ts.URL+"/v1/embeddings", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		took := time.Since(start)
		var er openaiapi.EmbeddingResponse
		if err := json.Unmarshal(raw, &er); err != nil {
			t.Fatal(err)
		}
		v, err := er.Vectors(len(er.Data))
		if err != nil || len(v) == 0 {
			t.Fatalf("%v: %s", err, raw)
		}
		return v[0], took, string(er.Data[0].Embedding[:1])
	}
	b64 := `{"input":["same text","x","y","z"],"encoding_format":"base64"}`
	asAsked, _, shapeAsked := ask(t, Config{Dims: 16}, b64)
	floats, _, shapeFloat := ask(t, Config{Dims: 16, Encoding: EncodingFloat}, b64)
	if shapeAsked != `"` || shapeFloat != `[` {
		t.Fatalf("answers start %q and %q, want a base64 string and a float array", shapeAsked, shapeFloat)
	}
	if len(asAsked) != 16 || fmt.Sprint(asAsked) != fmt.Sprint(floats) {
		t.Fatalf("the same text gave %v and %v", asAsked, floats)
	}
	if _, took, _ := ask(t, Config{Latency: Latency{PerInput: 50 * time.Millisecond}}, b64); took < 200*time.Millisecond {
		t.Fatalf("4 inputs at 50ms each answered in %v", took)
	}
}
