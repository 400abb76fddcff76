package embedserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestEmbeddingsInputForms(t *testing.T) {
	h := startBuiltin(t, Config{MaxInFlight: 4})
	m := builtinmodel.Model{Dims: 16}
	text := func(s string) []float32 { v := make([]float32, 16); m.EmbedText(v, s); return v }
	toks := func(ids ...int) []float32 { v := make([]float32, 16); m.EmbedTokens(v, ids); return v }
	tests := []struct {
		name string
		body string
		want [][]float32
	}{
		{"string", `{"input":"hello world","model":"hash-16"}`, [][]float32{text("hello world")}},
		{"strings", `{"input":["a b","c d","e"]}`, [][]float32{text("a b"), text("c d"), text("e")}},
		{"token ids", `{"input":[5,6,7]}`, [][]float32{toks(5, 6, 7)}},
		{"arrays of token ids", `{"input":[[1,2],[3]]}`, [][]float32{toks(1, 2), toks(3)}},
		{"base64", `{"input":["x y","z"],"encoding_format":"base64","user":"u1"}`, [][]float32{text("x y"), text("z")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := h.post(t, context.Background(), tt.body)
			got := vectorsOf(t, a, len(tt.want))
			for i := range tt.want {
				for j := range tt.want[i] {
					if got[i][j] != tt.want[i][j] {
						t.Fatalf("vector %d differs at %d", i, j)
					}
				}
			}
			var resp struct {
				Object string                                  `json:"object"`
				Model  string                                  `json:"model"`
				Usage  struct{ PromptTokens, TotalTokens int } `json:"usage"`
			}
			_ = json.Unmarshal(a.body, &resp)
			if resp.Object != "list" || resp.Model != "hash-16" || a.header.Get("Content-Type") != "application/json" {
				t.Fatalf("envelope: %s", a.body)
			}
		})
	}
	t.Run("dimensions", func(t *testing.T) {
		got := vectorsOf(t, h.post(t, context.Background(), `{"input":"abc","dimensions":4}`), 1)
		if len(got[0]) != 4 {
			t.Fatalf("len %d", len(got[0]))
		}
	})
}

func TestModels(t *testing.T) {
	h := startBuiltin(t, Config{})
	a := get(t, h.url+"/v1/models")
	if a.status != 200 || !strings.Contains(string(a.body), `"id":"hash-16"`) || !strings.Contains(string(a.body), `"object":"list"`) {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if a := get(t, h.url+"/v1/models/hash-16"); a.status != 200 {
		t.Fatalf("model by id: %d", a.status)
	}
	a = get(t, h.url+"/v1/models/other")
	if a.status != 404 || errorOf(t, a)["code"] != "model_not_found" {
		t.Fatalf("unknown model: %d %s", a.status, a.body)
	}
}

// GET /v1/models names the space served and the vector size a request naming
// no dimensions gets.
func TestModelsNameTheSpace(t *testing.T) {
	space := func(t *testing.T, url string) map[string]any {
		t.Helper()
		var one struct {
			ID     string         `json:"id"`
			Ragops map[string]any `json:"ragops"`
		}
		var list struct {
			Data []json.RawMessage `json:"data"`
		}
		a := get(t, url+"/v1/models")
		if err := json.Unmarshal(a.body, &list); err != nil || len(list.Data) != 1 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		byID := get(t, url+"/v1/models/"+decodeJSON(t, list.Data[0], &one).ID)
		if string(byID.body) != string(list.Data[0])+"\n" {
			t.Fatalf("model by id %s differs from the list's %s", byID.body, list.Data[0])
		}
		return one.Ragops
	}
	cases := []struct {
		name string
		url  func(t *testing.T) string
		want map[string]any
	}{
		{"builtin, its own dimensions", func(t *testing.T) string { return startBuiltin(t, Config{Space: "docs-v1"}).url },
			map[string]any{"space": "docs-v1", "dimensions": 16.0}},
		{"builtin with --dimensions, no space", func(t *testing.T) string { return startBuiltin(t, Config{Dimensions: 8}).url },
			map[string]any{"space": "", "dimensions": 8.0}},
		{"openai before any answer: dimensions unknown", func(t *testing.T) string {
			return startUpstream(t, Config{Space: "v2"}, fakeupstream.Config{Dims: 12}, openai.Config{}).url
		}, map[string]any{"space": "v2"}},
		{"openai after an answer: the upstream's size", func(t *testing.T) string {
			h := startUpstream(t, Config{Space: "v2"}, fakeupstream.Config{Dims: 12}, openai.Config{})
			vectorsOf(t, h.post(t, context.Background(), `{"input":"x"}`), 1)
			return h.url
		}, map[string]any{"space": "v2", "dimensions": 12.0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, space(t, tc.url(t))); diff != "" {
				t.Fatalf("ragops (-want +got):\n%s", diff)
			}
		})
	}
}

func decodeJSON[T any](t *testing.T, raw json.RawMessage, v *T) *T {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBadRequests(t *testing.T) {
	h := startBuiltin(t, Config{MaxBodyBytes: 1000, MaxInputs: 3})
	big := `{"input":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		status    int
		wantCode  any
		wantParam any
	}{
		{"not json", "POST", "/v1/embeddings", `{`, 400, "invalid_value", nil},
		{"no input", "POST", "/v1/embeddings", `{"model":"hash-16"}`, 400, "invalid_value", "input"},
		{"wrong model", "POST", "/v1/embeddings", `{"input":"x","model":"gpt"}`, 400, "model_not_found", "model"},
		{"dimensions too large", "POST", "/v1/embeddings", `{"input":"x","dimensions":17}`, 400, "invalid_value", "dimensions"},
		{"bad encoding", "POST", "/v1/embeddings", `{"input":"x","encoding_format":"int8"}`, 400, "invalid_value", "encoding_format"},
		{"body too large", "POST", "/v1/embeddings", big, 413, "body_too_large", nil},
		{"too many inputs", "POST", "/v1/embeddings", `{"input":["a","b","c","d"]}`, 413, "too_many_inputs", "input"},
		{"unknown path", "GET", "/v2/x", ``, 404, "not_found", nil},
		{"wrong method", "GET", "/v1/embeddings", ``, 405, "method_not_allowed", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, h.url+tt.path, strings.NewReader(tt.body))
			resp, err := h.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var a answer
			a.status, a.header = resp.StatusCode, resp.Header
			a.body = readAll(resp)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			e := errorOf(t, a)
			if e["code"] != tt.wantCode || e["param"] != tt.wantParam {
				t.Fatalf("code %v param %v: %s", e["code"], e["param"], a.body)
			}
			if a.header.Get("Retry-After") != "" {
				t.Fatal("client errors carry no Retry-After")
			}
		})
	}
	if got := h.metric(t, `embedserver_requests_total{code="413"}`); got != 2 {
		t.Fatalf("413s counted %v, want 2", got)
	}
}

// Every error path of admission and upstream, with status, body and Retry-After.
func TestOverloadAndUpstreamErrors(t *testing.T) {
	slow := fakeupstream.Config{Latency: fakeupstream.Latency{Base: time.Minute}}
	tests := []struct {
		name       string
		cfg        Config
		up         fakeupstream.Config
		ocfg       openai.Config
		inFlight   int // requests holding slots first
		queued     int
		status     int
		code       string
		retryAfter string
		series     string // a metric that must now be 1
	}{
		{name: "queue full", cfg: Config{MaxInFlight: 1, MaxQueue: 1, RetryAfter: 2 * time.Second}, up: slow, inFlight: 1, queued: 1,
			status: 429, code: "queue_full", retryAfter: "2", series: `embedserver_shed_total{reason="queue_full"}`},
		{name: "no queue at all", cfg: Config{MaxInFlight: 1, MaxQueue: 0}, up: slow, inFlight: 1,
			status: 429, code: "queue_full", retryAfter: "1", series: `embedserver_requests_total{code="429"}`},
		{name: "queue timeout", cfg: Config{MaxInFlight: 1, MaxQueue: 4, QueueTimeout: 50 * time.Millisecond}, up: slow, inFlight: 1,
			status: 503, code: "queue_timeout", retryAfter: "1", series: `embedserver_shed_total{reason="queue_timeout"}`},
		{name: "request deadline while queued", cfg: Config{MaxInFlight: 1, MaxQueue: 4, QueueTimeout: time.Minute, RequestTimeout: 100 * time.Millisecond}, up: slow, inFlight: 1,
			status: 504, code: "request_timeout", series: `embedserver_requests_total{code="504"}`},
		{name: "request deadline upstream", cfg: Config{MaxInFlight: 2, RequestTimeout: 100 * time.Millisecond}, up: slow,
			status: 504, code: "request_timeout", series: `embedserver_requests_total{code="504"}`},
		{name: "upstream fails after retries", cfg: Config{MaxInFlight: 2}, up: fakeupstream.Config{ErrorRate: 1},
			ocfg: openai.Config{MaxAttempts: 2, InitialBackoff: time.Millisecond}, status: 502, code: "upstream_error", series: `embedserver_upstream_retries_total`},
		{name: "upstream rate limit longer than deadline", cfg: Config{MaxInFlight: 2, RequestTimeout: 2 * time.Second},
			up: fakeupstream.Config{RateLimitRate: 1, RetryAfter: 20 * time.Second}, status: 429, code: "budget", retryAfter: "20",
			series: `embedserver_upstream_rate_limited_total`},
		{name: "declared budget cannot serve before the deadline", cfg: Config{MaxInFlight: 2, RequestTimeout: 300 * time.Millisecond},
			ocfg: openai.Config{RequestsPerMinute: 30}, status: 429, code: "budget", retryAfter: "2",
			series: `embedserver_shed_total{reason="budget"}`},
		{name: "budget waits inside the queue deadline", cfg: Config{MaxInFlight: 2, RequestTimeout: 30 * time.Second, QueueTimeout: 200 * time.Millisecond},
			ocfg: openai.Config{RequestsPerMinute: 30}, status: 429, code: "budget", retryAfter: "2",
			series: `embedserver_shed_total{reason="budget"}`},
		{name: "upstream quota exhausted: its own 429 at once", cfg: Config{MaxInFlight: 2},
			up: fakeupstream.Config{QuotaExhausted: true}, status: 429, code: "insufficient_quota",
			series: `embedserver_upstream_requests_total{code="429"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startUpstream(t, tt.cfg, tt.up, tt.ocfg)
			release := func() {}
			if tt.inFlight+tt.queued > 0 {
				release = h.occupy(t, tt.inFlight, tt.queued)
			}
			a := h.post(t, context.Background(), `{"input":"x"}`)
			release()
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if e := errorOf(t, a); e["code"] != tt.code {
				t.Fatalf("code %v: %s", e["code"], a.body)
			}
			if got := a.header.Get("Retry-After"); got != tt.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if got := h.metric(t, tt.series); got < 1 {
				t.Fatalf("%s = %v", tt.series, got)
			}
		})
	}
}

func TestFailRateDrill(t *testing.T) {
	m := builtinmodel.Model{Dims: 16}
	h := startServer(t, Config{Model: "hash-16"}, provider.FailRate(builtinmodel.Provider{Model: m}, 1, 1))
	a := h.post(t, context.Background(), `{"input":"x"}`)
	if a.status != 500 || errorOf(t, a)["code"] != "injected_fault" {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if got := h.metric(t, `embedserver_requests_total{code="500"}`); got != 1 {
		t.Fatalf("500s %v", got)
	}
}

func TestAdminEndpointsAndGauges(t *testing.T) {
	h := startUpstream(t, Config{MaxInFlight: 3, MaxQueue: 7}, fakeupstream.Config{Latency: fakeupstream.Latency{Base: time.Minute}}, openai.Config{})
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := get(t, h.admin+p); a.status != 200 {
			t.Fatalf("%s: %d", p, a.status)
		}
	}
	release := h.occupy(t, 3, 2)
	// The admin port answers while the API is saturated.
	for series, want := range map[string]float64{"embedserver_in_flight": 3, "embedserver_queue_depth": 2, "embedserver_max_in_flight": 3, "embedserver_max_queue": 7} {
		if got := h.metric(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	release()
	poll.Until(t, "slots freed", func() bool { return h.metric(t, "embedserver_in_flight") == 0 })
	a := get(t, h.admin+"/metrics")
	for _, name := range []string{"embedserver_requests_total", "embedserver_request_duration_seconds_bucket", "embedserver_shed_total",
		"embedserver_upstream_requests_total", "embedserver_upstream_duration_seconds", "embedserver_upstream_retries_total", "embedserver_batch_size",
		`embedserver_budget_share_per_minute{kind="requests"}`, "embedserver_upstream_calls_held_back_total", "embedserver_upstream_throttled_seconds_total",
		"embedserver_upstream_rate_limited_total", "embedserver_upstream_pauses_total", `embedserver_shed_total{reason="budget"}`} {
		if !strings.Contains(string(a.body), name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// A handler counts its answer as it returns, just after freeing its slot.
	poll.Until(t, "5 client-closed requests counted", func() bool { return h.metric(t, `embedserver_requests_total{code="499"}`) == 5 })
}

func readAll(resp *http.Response) []byte {
	b, _ := io.ReadAll(resp.Body)
	return b
}

// The metrics are handed to the provider, which reports every model call's
// size: per request for builtin, per upstream call for openai.
func TestBatchSizeIsReportedByTheProvider(t *testing.T) {
	b := startBuiltin(t, Config{})
	vectorsOf(t, b.post(t, context.Background(), `{"input":["a","b","c"]}`), 3)
	if n, sum := b.metric(t, "embedserver_batch_size_count"), b.metric(t, "embedserver_batch_size_sum"); n != 1 || sum != 3 {
		t.Errorf("builtin: %v calls of %v inputs, want 1 of 3", n, sum)
	}
	o := startUpstream(t, Config{MaxInFlight: 2}, fakeupstream.Config{}, openai.Config{MaxBatchSize: 2})
	vectorsOf(t, o.post(t, context.Background(), `{"input":["a","b","c"]}`), 3)
	if n, sum := o.metric(t, "embedserver_batch_size_count"), o.metric(t, "embedserver_batch_size_sum"); n != 2 || sum != 3 {
		t.Errorf("openai: %v calls of %v inputs, want 2 (split at 2) of 3", n, sum)
	}
	if got := o.metric(t, `embedserver_upstream_requests_total{code="200"}`); got != 2 {
		t.Errorf("upstream 200s %v, want 2", got)
	}
}
