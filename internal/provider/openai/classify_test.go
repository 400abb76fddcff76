package openai

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/provider"
)

// answering is a real upstream on loopback that answers every call with one
// status and body, and counts the calls.
func answering(t *testing.T, status int, body string, header http.Header) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1", calls
}

func openAIError(typ, code, msg string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": code}})
	if code == "" {
		b, _ = json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	}
	return string(b)
}

// Every upstream answer, classified: what the client gets (status, type, code),
// and whether the server asked again. Final answers come back after one call
// with the upstream's own status, type and code and X-Should-Retry: false;
// retried ones take every attempt and end as 502/503/504 naming what the
// upstream said.
func TestUpstreamAnswersClassified(t *testing.T) {
	const attempts = 3
	tests := []struct {
		name       string
		status     int
		body       string
		header     http.Header
		wantStatus int
		wantType   string
		wantCode   string
		retried    bool
		wantInMsg  string
	}{
		{name: "429 insufficient_quota", status: 429, body: openAIError("insufficient_quota", "insufficient_quota", "You exceeded your current quota"),
			wantStatus: 429, wantType: "insufficient_quota", wantCode: "insufficient_quota", wantInMsg: "exceeded your current quota"},
		{name: "429 insufficient_quota as type only", status: 429, body: openAIError("insufficient_quota", "", "quota"),
			wantStatus: 429, wantType: "insufficient_quota"},
		{name: "429 rate_limit_exceeded", status: 429, body: openAIError("requests", "rate_limit_exceeded", "Rate limit reached for requests"),
			wantStatus: 503, wantType: "server_error", wantCode: "upstream_rate_limited", retried: true, wantInMsg: "429 rate_limit_exceeded: Rate limit reached"},
		{name: "429 without a code", status: 429, body: `{"error":{"message":"slow down"}}`,
			wantStatus: 503, wantType: "server_error", wantCode: "upstream_rate_limited", retried: true, wantInMsg: "slow down"},
		{name: "429 plain text", status: 429, body: `Too Many Requests`,
			wantStatus: 503, wantType: "server_error", wantCode: "upstream_rate_limited", retried: true, wantInMsg: "Too Many Requests"},
		{name: "408", status: 408, body: openAIError("server_error", "", "request timeout"),
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", retried: true, wantInMsg: "408"},
		{name: "409", status: 409, body: openAIError("server_error", "", "conflict"),
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", retried: true, wantInMsg: "409"},
		{name: "500", status: 500, body: openAIError("server_error", "", "The server had an error"),
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", retried: true, wantInMsg: "500: The server had an error"},
		{name: "502 html", status: 502, body: `<html>bad gateway</html>`,
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", retried: true, wantInMsg: "bad gateway"},
		{name: "503 overloaded", status: 503, body: openAIError("server_error", "overloaded", "overloaded"),
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", retried: true, wantInMsg: "503 overloaded"},
		{name: "504", status: 504, body: ``,
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", retried: true, wantInMsg: "504"},
		{name: "400 max_tokens_per_request", status: 400, body: openAIError("invalid_request_error", "max_tokens_per_request", "Requested 400000 tokens, max 300000 tokens per request"),
			wantStatus: 400, wantType: "invalid_request_error", wantCode: "max_tokens_per_request", wantInMsg: "max 300000 tokens"},
		{name: "400 context length", status: 400, body: openAIError("invalid_request_error", "context_length_exceeded", "This model's maximum context length is 8192 tokens"),
			wantStatus: 400, wantType: "invalid_request_error", wantCode: "context_length_exceeded"},
		{name: "500 naming the context length (vLLM-like)", status: 500, body: `{"error":{"message":"This model's maximum context length is 512 tokens","type":"BadRequestError","code":500}}`,
			wantStatus: 400, wantType: "invalid_request_error", wantCode: "context_length_exceeded", wantInMsg: "maximum context length"},
		{name: "413 from TEI", status: 413, body: `{"error":"Input validation error: inputs must have less than 512 tokens","error_type":"validation"}`,
			wantStatus: 413, wantType: "invalid_request_error", wantInMsg: "must have less than 512 tokens"},
		{name: "401", status: 401, body: openAIError("invalid_request_error", "invalid_api_key", "Incorrect API key provided"),
			wantStatus: 401, wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{name: "401 without a type", status: 401, body: `unauthorized`,
			wantStatus: 401, wantType: "authentication_error"},
		{name: "403", status: 403, body: openAIError("invalid_request_error", "unsupported_country_region_territory", "Country not supported"),
			wantStatus: 403, wantType: "invalid_request_error", wantCode: "unsupported_country_region_territory"},
		{name: "404 model", status: 404, body: openAIError("invalid_request_error", "model_not_found", "The model does not exist"),
			wantStatus: 404, wantType: "invalid_request_error", wantCode: "model_not_found"},
		{name: "422", status: 422, body: openAIError("invalid_request_error", "", "unprocessable"),
			wantStatus: 422, wantType: "invalid_request_error"},
		{name: "a vLLM numeric code is no code", status: 400, body: `{"error":{"message":"bad","type":"BadRequestError","code":400}}`,
			wantStatus: 400, wantType: "BadRequestError"},
		{name: "200 that is not an embeddings answer", status: 200, body: `{"hello":"world"}`,
			wantStatus: 502, wantType: "server_error", wantCode: "upstream_error", wantInMsg: "not an embeddings response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, calls := answering(t, tt.status, tt.body, tt.header)
			c, err := New(Config{BaseURL: url, Model: "m", MaxAttempts: attempts, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = c.Embed(ctx, provider.Request{Inputs: texts("classify", 2)})
			pe, ok := provider.AsError(err)
			if !ok {
				t.Fatalf("err %v is not an answer for the client", err)
			}
			if pe.Status != tt.wantStatus || pe.Type != tt.wantType || pe.Code != tt.wantCode {
				t.Fatalf("client gets %d %q %q, want %d %q %q (%s)", pe.Status, pe.Type, pe.Code, tt.wantStatus, tt.wantType, tt.wantCode, pe.Message)
			}
			if !strings.Contains(pe.Message, tt.wantInMsg) {
				t.Fatalf("message %q does not name %q", pe.Message, tt.wantInMsg)
			}
			want := int64(1)
			if tt.retried {
				want = attempts
			}
			if n := calls.Load(); n != want {
				t.Fatalf("%d upstream calls, want %d", n, want)
			}
			if pe.Final == tt.retried {
				t.Fatalf("final %v for an answer retried=%v", pe.Final, tt.retried)
			}
		})
	}
}

// Failures with no HTTP answer are retried: a refused connection (502) and an
// attempt that times out (504).
func TestNoAnswerIsRetried(t *testing.T) {
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a client leaving only once the body is read
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer hang.Close()
	defer close(stop)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, tt := range []struct {
		name       string
		url        string
		wantStatus int
		wantCode   string
	}{
		{"connection refused", closedURL, 502, "upstream_error"},
		{"attempt timeout", hang.URL, 504, "upstream_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{BaseURL: tt.url + "/v1", MaxAttempts: 2, AttemptTimeout: 50 * time.Millisecond, InitialBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Embed(context.Background(), provider.Request{Inputs: texts("x", 1)})
			pe, ok := provider.AsError(err)
			if !ok || pe.Status != tt.wantStatus || pe.Code != tt.wantCode || !strings.Contains(pe.Message, "after 2 attempt(s)") {
				t.Fatalf("err %v, want %d %s after 2 attempts", err, tt.wantStatus, tt.wantCode)
			}
		})
	}
}
