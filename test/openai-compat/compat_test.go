// Package openaicompat checks the embedding server against the official OpenAI
// client library (npm "openai", pinned in package.json), used with its defaults.
package openaicompat

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/provider/openai"
)

// serve runs an embedding server on loopback until the test ends; it returns the
// base URL including /v1.
func serve(t *testing.T, srv *embedserver.Server) string {
	t.Helper()
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, api, admin) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stop: %v", err)
		}
	})
	return "http://" + api.Addr().String() + "/v1"
}

// busyServer has one slot in front of a slow upstream.
func busyServer(t *testing.T, upURL string, cfg embedserver.Config) string {
	t.Helper()
	c, err := openai.New(openai.Config{BaseURL: upURL, Model: "fake-embedding", MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Model, cfg.MaxInFlight, cfg.RetryAfter = "fake-embedding", 1, time.Second
	return serve(t, embedserver.New(cfg, c))
}

func ensureClientInstalled(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("node_modules", "openai", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
}

type attempt struct {
	At         int64   `json:"at"`
	Status     int     `json:"status"`
	RetryAfter *string `json:"retryAfter"`
}

type retried struct {
	OK       bool      `json:"ok"`
	Error    string    `json:"error"`
	Dims     int       `json:"dims"`
	Attempts []attempt `json:"attempts"`
}

type space struct {
	Space      string `json:"space"`
	Dimensions int    `json:"dimensions"`
}

type report struct {
	Vectors []struct {
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	} `json:"vectors"`
	FloatVector     []float32      `json:"floatVector"`
	Model           string         `json:"model"`
	Usage           map[string]int `json:"usage"`
	DefaultEncoding *string        `json:"defaultEncoding"`
	Models          []string       `json:"models"`
	Spaces          []*space       `json:"spaces"`
	Retrieved       *space         `json:"retrieved"`
	Busy            retried        `json:"busy"`
	Queue           retried        `json:"queue"`
	Budget          retried        `json:"budget"`
	Quota           struct {
		Status   int       `json:"status"`
		Type     string    `json:"type"`
		Code     string    `json:"code"`
		Name     string    `json:"name"`
		Attempts []attempt `json:"attempts"`
	} `json:"quota"`
}

func TestOfficialClient(t *testing.T) {
	ensureClientInstalled(t)

	model := builtinmodel.Model{Dims: 32}
	builtinURL := serve(t, embedserver.New(embedserver.Config{Model: model.Name(), Space: "docs-v1", MaxInFlight: 4}, builtinmodel.Provider{Model: model}))

	up := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: 1500 * time.Millisecond}, Dims: 8})
	ts := httptest.NewServer(up)
	t.Cleanup(ts.Close)
	t.Cleanup(up.Close)
	busyURL := busyServer(t, ts.URL+"/v1", embedserver.Config{MaxQueue: 0})
	queueURL := busyServer(t, ts.URL+"/v1", embedserver.Config{MaxQueue: 4, QueueTimeout: 200 * time.Millisecond})
	broke := fakeupstream.New(fakeupstream.Config{QuotaExhausted: true})
	bts := httptest.NewServer(broke)
	t.Cleanup(bts.Close)
	t.Cleanup(broke.Close)
	quotaURL := busyServer(t, bts.URL+"/v1", embedserver.Config{MaxQueue: 4})
	// A rate-limited upstream: its first answer is 429 rate_limit_exceeded
	// with Retry-After 1s, longer than the server's 500 ms deadline. The
	// server pauses and tells the client when to come back (429 budget,
	// Retry-After 1); then the pause is over and the call goes through.
	paced := fakeupstream.New(fakeupstream.Config{Dims: 8, Script: []int{429}, RetryAfter: time.Second})
	pts := httptest.NewServer(paced)
	t.Cleanup(pts.Close)
	t.Cleanup(paced.Close)
	pc, err := openai.New(openai.Config{BaseURL: pts.URL + "/v1", Model: "fake-embedding"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pc.Close)
	budgetURL := serve(t, embedserver.New(embedserver.Config{Model: "fake-embedding", RequestTimeout: 500 * time.Millisecond, Budget: pc.Budget()}, pc))

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "compat.mjs")
	cmd.Env = append(os.Environ(), "BUILTIN_URL="+builtinURL, "BUILTIN_MODEL="+model.Name(),
		"BUSY_URL="+busyURL, "QUEUE_URL="+queueURL, "QUOTA_URL="+quotaURL, "BUDGET_URL="+budgetURL, "UPSTREAM_MODEL=fake-embedding")
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr)
	}
	var r report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("node output: %v\n%s", err, out)
	}

	// The library asks for base64 by default and decodes our little-endian float32.
	if r.DefaultEncoding == nil || *r.DefaultEncoding != "base64" {
		t.Errorf("library's default encoding_format %v, want base64 (this test relies on it)", r.DefaultEncoding)
	}
	want := func(text string) []float32 { v := make([]float32, 32); model.EmbedText(v, text); return v }
	texts := []string{"the first text", "a second, different text"}
	if len(r.Vectors) != 2 {
		t.Fatalf("%d vectors", len(r.Vectors))
	}
	for i, v := range r.Vectors {
		if v.Index != i || !equal(v.Embedding, want(texts[i])) {
			t.Errorf("vector %d (index %d) is not the builtin vector of %q", i, v.Index, texts[i])
		}
	}
	if !equal(r.FloatVector, want("explicit floats")) {
		t.Error("float-encoded vector differs")
	}
	if r.Model != model.Name() || r.Usage["total_tokens"] == 0 || len(r.Models) != 1 || r.Models[0] != model.Name() {
		t.Errorf("model %q usage %v models %v", r.Model, r.Usage, r.Models)
	}

	wantSpace := space{Space: "docs-v1", Dimensions: 32}
	if len(r.Spaces) != 1 || r.Spaces[0] == nil || *r.Spaces[0] != wantSpace || r.Retrieved == nil || *r.Retrieved != wantSpace {
		t.Errorf("ragops field through the library: list %v, retrieve %v; want %+v", r.Spaces, r.Retrieved, wantSpace)
	}

	// An exhausted quota reaches the library as the upstream's own error, once:
	// neither the server nor the library (told X-Should-Retry: false) asks again.
	q := r.Quota
	if q.Status != 429 || q.Type != "insufficient_quota" || q.Code != "insufficient_quota" || q.Name != "RateLimitError" || len(q.Attempts) != 1 {
		t.Errorf("quota: the library saw %+v, want one RateLimitError 429 insufficient_quota", q)
	}
	if c := broke.Stats().Calls; c != 1 {
		t.Errorf("quota: the upstream got %d calls, want 1", c)
	}

	checkRetried(t, "429 budget", r.Budget, 429)
	if st := paced.Stats(); st.Calls != 2 || st.ByStatus[429] != 1 {
		t.Errorf("rate limited: the upstream saw %d calls, %d refused; want 2 calls, the first refused", st.Calls, st.ByStatus[429])
	}

	checkRetried(t, "429 queue full", r.Busy, 429)
	checkRetried(t, "503 queue timeout", r.Queue, 503)
}

// checkRetried: the library got status first, retried no sooner than our
// Retry-After, and finally succeeded.
func checkRetried(t *testing.T, name string, r retried, status int) {
	t.Helper()
	t.Logf("%s: %+v", name, r)
	if !r.OK || r.Dims != 8 {
		t.Errorf("%s: ok %v dims %d error %s", name, r.OK, r.Dims, r.Error)
	}
	if len(r.Attempts) < 2 || r.Attempts[0].Status != status || r.Attempts[len(r.Attempts)-1].Status != 200 {
		t.Fatalf("%s: attempts %+v, want %d first and 200 last", name, r.Attempts, status)
	}
	for i := 1; i < len(r.Attempts); i++ {
		prev := r.Attempts[i-1]
		if prev.RetryAfter == nil || *prev.RetryAfter != "1" {
			t.Errorf("%s: attempt %d answered %d without Retry-After 1", name, i-1, prev.Status)
		}
		if gap := r.Attempts[i].At - prev.At; gap < 1000 {
			t.Errorf("%s: retried after %d ms, before Retry-After", name, gap)
		}
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
