package probeclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embeddingspace"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// TestEmbedRealServers probes real embedding servers with the built-in set
// and judges them as the operator does: two hash-384 servers share a space,
// hash-384 and hash-256 do not.
func TestEmbedRealServers(t *testing.T) {
	probes := embeddingspace.BuiltinProbes()
	stableA := startEmbedServer(t, "hash-384", embedserver.Config{})
	stableB := startEmbedServer(t, "hash-384", embedserver.Config{})
	other := startEmbedServer(t, "hash-256", embedserver.Config{})
	ctx := context.Background()

	a, err := Client{}.Embed(ctx, stableA.url, "hash-384", probes)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Client{}.Embed(ctx, stableB.url+"/", "", probes) // no model, trailing slash
	if err != nil {
		t.Fatal(err)
	}
	c, err := Client{}.Embed(ctx, other.url, "hash-256", probes)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(probes) || len(a[0]) != 384 || len(c[0]) != 256 {
		t.Fatalf("%d vectors of %d and %d dimensions", len(a), len(a[0]), len(c[0]))
	}
	// The answer decodes to exactly what the model computes.
	m, _ := builtinmodel.Parse("hash-384")
	for i, p := range probes {
		want := make([]float32, 384)
		m.EmbedText(want, p)
		if !slices.Equal(a[i], want) {
			t.Fatalf("probe %d: the server's vector differs from the model's", i)
		}
	}

	same, err := embeddingspace.Compare(a, b, 5)
	if err != nil {
		t.Fatal(err)
	}
	ok, msg := same.Judge(0.999, 0.9)
	if want := fmt.Sprintf("min cosine 1.0000 >= 0.999, mean 1.0000, neighbour overlap 1.0000 >= 0.9 (k 5) over %d probes", len(probes)); !ok || msg != want {
		t.Errorf("hash-384 vs hash-384: %v %q, want %q", ok, msg, want)
	}
	changed, err := embeddingspace.Compare(a, c, 5)
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := changed.Judge(0.999, 0.9); ok || !strings.HasPrefix(msg, "dimensions 384 -> 256") {
		t.Errorf("hash-384 vs hash-256: %v %q", ok, msg)
	}
}

// TestEmbedSendsOneRequest checks the request on the wire.
func TestEmbedSendsOneRequest(t *testing.T) {
	srv := startHandlerServer(t, "hash-384")
	texts := []string{"first <b>&</b>", "zweiter Text", "三番目"}
	if _, err := (Client{}).Embed(context.Background(), srv.url, "hash-384", texts); err != nil {
		t.Fatal(err)
	}
	if len(srv.requests) != 1 {
		t.Fatalf("%d requests, want 1", len(srv.requests))
	}
	r := srv.requests[0]
	if r.method != http.MethodPost || r.path != "/v1/embeddings" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s %v", r.method, r.path, r.header)
	}
	var body struct {
		Input          []string `json:"input"`
		Model          string   `json:"model"`
		EncodingFormat string   `json:"encoding_format"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(body.Input, texts) || body.Model != "hash-384" || body.EncodingFormat != "float" {
		t.Errorf("body %s", r.body)
	}
	if strings.Contains(string(r.body), `\u003c`) {
		t.Errorf("HTML characters escaped: %s", r.body)
	}
}

// TestEmbedLargestProbeSet sends the largest probe set ParseProbes accepts,
// in texts that JSON makes twice as long, to a server with the default
// limits: the bounds of a probe set fit them.
func TestEmbedLargestProbeSet(t *testing.T) {
	per := embeddingspace.MaxProbeSet / embeddingspace.MaxProbes
	var b strings.Builder
	for i := range embeddingspace.MaxProbes {
		head := fmt.Sprintf("%04d ", i)
		fmt.Fprintf(&b, "%s%s\n", head, strings.Repeat(`"\`, (per-len(head))/2))
	}
	probes, err := embeddingspace.ParseProbes(b.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := startEmbedServer(t, "hash-384", embedserver.Config{})
	vecs, err := Client{}.Embed(context.Background(), srv.url, "hash-384", probes)
	if err != nil {
		t.Fatal(err)
	}
	if len(vecs) != embeddingspace.MaxProbes {
		t.Fatalf("%d vectors", len(vecs))
	}
}

// answerWith serves vectors in the OpenAI shape, as the embedding server
// encodes them.
func answerWith(vecs [][]float32, b64 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openaiapi.AppendResponse(nil, "m", vecs, 1, b64))
	}
}

func TestEmbedBase64Answer(t *testing.T) {
	m, _ := builtinmodel.Parse("hash-64")
	texts := []string{"alpha", "beta", "gamma"}
	resp, err := builtinmodel.Provider{Model: m}.Embed(context.Background(), provider.Request{Inputs: []provider.Input{{Text: "alpha"}, {Text: "beta"}, {Text: "gamma"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, b64 := range []bool{false, true} {
		srv := httptest.NewServer(answerWith(resp.Embeddings, b64))
		got, err := Client{}.Embed(context.Background(), srv.URL, "", texts)
		srv.Close()
		if err != nil {
			t.Fatalf("base64 %v: %v", b64, err)
		}
		for i := range got {
			if !slices.Equal(got[i], resp.Embeddings[i]) {
				t.Fatalf("base64 %v: vector %d differs", b64, i)
			}
		}
	}
}

func vectors(n, dims int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, dims)
		out[i][i%dims] = 1
	}
	return out
}

func TestEmbedErrors(t *testing.T) {
	texts := []string{"one", "two"}
	// A handler notices that the client left only once it has read the body.
	stall := func(_ http.ResponseWriter, r *http.Request) {
		_ = readBody(r)
		<-r.Context().Done()
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		client  Client
		texts   []string
		want    string // after "probe <url>: "
	}{
		{name: "HTML error page", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("<html>\n<body>Bad   gateway</body>\n</html>\n"))
		}, want: "HTTP 502: <html> <body>Bad gateway</body> </html>"},
		{name: "status without body", handler: func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, want: "HTTP 500"},
		{name: "OpenAI error without code", handler: func(w http.ResponseWriter, _ *http.Request) {
			openaiapi.WriteError(w, &provider.Error{Status: 401, Type: "invalid_request_error", Message: "Incorrect API key provided"})
		}, want: "HTTP 401: Incorrect API key provided"},
		{name: "no answer", handler: stall, client: Client{Timeout: 200 * time.Millisecond}, want: "no answer within 200ms"},
		{name: "headers, then no body", handler: func(w http.ResponseWriter, r *http.Request) {
			_ = readBody(r)
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, client: Client{Timeout: 200 * time.Millisecond}, want: "reading the answer: no answer within 200ms"},
		{name: "answer cut short", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", "10000")
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`{"object":"list","data":[{"index":0,"embedding":[0.1,`))
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, want: "reading the answer: unexpected EOF"},
		{name: "too large, by its length", handler: answerWith(vectors(2, 300), false), client: Client{MaxAnswerBytes: 1000}, want: "answer of 1... bytes is over the limit of 1000"},
		{name: "too large, streamed", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(200)
			for range 100 {
				_, _ = w.Write([]byte(strings.Repeat(" ", 100)))
				w.(http.Flusher).Flush()
			}
		}, client: Client{MaxAnswerBytes: 1000}, want: "answer is over the limit of 1000 bytes"},
		{name: "one vector short", handler: answerWith(vectors(63, 8), false), texts: make([]string, 64), want: "answer for 64 probes: got 63 embeddings, want 64"},
		{name: "one vector too many", handler: answerWith(vectors(3, 8), false), want: "answer for 2 probes: embedding index 2 out of range or repeated"},
		{name: "a repeated index", handler: func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(`{"data":[{"index":0,"embedding":[1,0]},{"index":0,"embedding":[0,1]}]}`))
		}, want: "answer for 2 probes: embedding index 0 out of range or repeated"},
		{name: "mixed dimensions", handler: answerWith([][]float32{{1, 0, 0}, {0, 1}}, false), want: "vector 1 has 2 dimensions, vector 0 has 3"},
		{name: "an empty vector", handler: answerWith([][]float32{{}, {0, 1}}, false), want: "vector 0 is empty"},
		{name: "not JSON", handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }, want: "answer for 2 probes: answer is not a JSON object"},
		{name: "no texts", handler: answerWith(nil, false), texts: []string{}, want: "no probe texts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			in := texts
			if tt.texts != nil {
				in = tt.texts
				for i := range in {
					if in[i] == "" {
						in[i] = fmt.Sprint("probe ", i)
					}
				}
			}
			_, err := tt.client.Embed(context.Background(), srv.URL, "", in)
			if err == nil {
				t.Fatal("no error")
			}
			want := "probe " + srv.URL + ": " + tt.want
			if prefix, suffix, cut := strings.Cut(want, "..."); cut {
				if !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), suffix) {
					t.Fatalf("error\n %q\nwant\n %q", err, want)
				}
				return
			}
			if err.Error() != want {
				t.Fatalf("error\n %q\nwant\n %q", err, want)
			}
		})
	}
}

// TestEmbedServerErrors takes the errors from the real embedding server.
func TestEmbedServerErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("model not served", func(t *testing.T) {
		srv := startEmbedServer(t, "hash-384", embedserver.Config{})
		_, err := Client{}.Embed(ctx, srv.url, "hash-256", []string{"a", "b"})
		want := fmt.Sprintf(`probe %s: HTTP 400 (model_not_found): model "hash-256" is not served here; this server serves "hash-384"`, srv.url)
		if err == nil || err.Error() != want {
			t.Fatalf("error %v, want %q", err, want)
		}
	})
	t.Run("draining: answered through the drain delay", func(t *testing.T) {
		srv := startEmbedServer(t, "hash-384", embedserver.Config{DrainDelay: time.Second, DrainTimeout: 5 * time.Second})
		stopped := make(chan error, 1)
		go func() { stopped <- srv.stop() }()
		poll.Until(t, "the server draining", srv.srv.Draining)
		// A probe that reaches a pod still in its drain delay is answered, not
		// refused: no false failure for the analysis.
		vecs, err := Client{}.Embed(ctx, srv.url, "hash-384", []string{"a", "b"})
		if err != nil || len(vecs) != 2 || len(vecs[0]) != 384 {
			t.Fatalf("probe during the drain delay: %d vectors, error %v", len(vecs), err)
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln := listen(t)
		addr := ln.Addr().String()
		ln.Close()
		_, err := Client{}.Embed(ctx, "http://"+addr, "", []string{"a", "b"})
		var op *net.OpError
		if err == nil || !errors.As(err, &op) || !strings.HasPrefix(err.Error(), "probe http://"+addr+": dial tcp "+addr+": connect: connection refused") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_ = readBody(r)
			<-r.Context().Done()
		}))
		defer srv.Close()
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := Client{}.Embed(cctx, srv.URL, "", []string{"a", "b"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the caller's deadline", err)
		}
	})
}

// TestEmbedReturnsNaNForTheJudge: a base64 answer can carry NaN, which JSON
// numbers cannot. Embed returns it; the comparison then refuses the canary
// naming the probe.
func TestEmbedReturnsNaNForTheJudge(t *testing.T) {
	vecs := vectors(4, 8)
	bad := vectors(4, 8)
	bad[2][5] = float32(math.NaN())
	good := httptest.NewServer(answerWith(vecs, true))
	defer good.Close()
	broken := httptest.NewServer(answerWith(bad, true))
	defer broken.Close()
	texts := []string{"a", "b", "c", "d"}
	s, err := Client{}.Embed(context.Background(), good.URL, "", texts)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Client{}.Embed(context.Background(), broken.URL, "", texts)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(float64(c[2][5])) {
		t.Fatalf("vector 2 is %v, want its NaN kept", c[2])
	}
	cmp, err := embeddingspace.Compare(s, c, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ok, msg := cmp.Judge(0.999, 0.9); ok || msg != "probe 2: canary vector has a NaN or infinite component over 4 probes" {
		t.Fatalf("%v %q", ok, msg)
	}
}

// TestEmbedProbesRefusedLongInputs: an upstream that refuses inputs past its
// window (as OpenAI and TEI without auto-truncate answer 400) still gets the
// rest of the set compared: the client drops the longest long probe and asks
// again, and the refused probes come back as nil vectors. One request when
// nothing is refused.
func TestEmbedProbesRefusedLongInputs(t *testing.T) {
	probes := embeddingspace.WithLongProbes(embeddingspace.BuiltinProbes())
	up := fakeupstream.New(fakeupstream.Config{Dims: 64, Space: &fakeupstream.Space{Window: 3000, Refuse: true}})
	srv := httptest.NewServer(up)
	defer srv.Close()
	defer up.Close()
	ctx := context.Background()

	vecs, statuses, err := Client{}.EmbedProbes(ctx, srv.URL, "", probes, embeddingspace.IsLongProbe)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(statuses, []int{400, 400, 200}) {
		t.Errorf("statuses %v, want [400 400 200]", statuses)
	}
	var refused []int
	for i, v := range vecs {
		if v == nil {
			refused = append(refused, len(strings.Fields(probes[i])))
		}
	}
	// The two longest (5,120 and 10,240 words) are past 3,000: three requests.
	if !slices.Equal(refused, []int{5120, 10240}) || up.Stats().Calls != 3 {
		t.Fatalf("refused probes of %v words in %d calls, want [5120 10240] in 3", refused, up.Stats().Calls)
	}

	up.SetConfig(fakeupstream.Config{Dims: 64, Space: &fakeupstream.Space{}})
	up.ResetStats()
	vecs, _, err = Client{}.EmbedProbes(ctx, srv.URL, "", probes, embeddingspace.IsLongProbe)
	hasNil := slices.ContainsFunc(vecs, func(v []float32) bool { return v == nil })
	if err != nil || hasNil || len(vecs) != len(probes) || up.Stats().Calls != 1 {
		t.Fatalf("without a window: err %v, %d calls, %d vectors, a nil vector %v", err, up.Stats().Calls, len(vecs), hasNil)
	}

	// A refusal that dropping long probes cannot cure is the error it was.
	up.SetConfig(fakeupstream.Config{Dims: 64, Space: &fakeupstream.Space{Window: 1, Refuse: true}})
	up.ResetStats()
	_, statuses, err = Client{}.EmbedProbes(ctx, srv.URL, "", probes, embeddingspace.IsLongProbe)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(err.Error(), "longer than the maximum of 1 tokens") || up.Stats().Calls != 6 || len(statuses) != 6 {
		t.Fatalf("err %v after %d calls, want HTTP 400 after 6", err, up.Stats().Calls)
	}
}
