package openai

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	up      *fakeupstream.Server
	client  *Client
	retries atomic.Int64
}

// env counts retries as the server's metrics would.
func (e *env) Batch(int)                      {}
func (e *env) Upstream(string, time.Duration) {}
func (e *env) Retry()                         { e.retries.Add(1) }

func newEnv(t *testing.T, upCfg fakeupstream.Config, cfg Config) *env {
	t.Helper()
	e := &env{up: fakeupstream.New(upCfg)}
	ts := httptest.NewServer(e.up)
	cfg.BaseURL = ts.URL + "/v1"
	cfg.Observer = e
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	t.Cleanup(func() {
		e.up.Close()
		c.Close()
		ts.Close()
	})
	return e
}

func texts(prefix string, n int) []provider.Input {
	in := make([]provider.Input, n)
	for i := range in {
		in[i] = provider.Input{Text: fmt.Sprintf("%s number %d", prefix, i)}
	}
	return in
}

// checkVectors asserts each vector is the fake upstream's (hash-8) vector of the
// input at the same index.
func checkVectors(t *testing.T, in []provider.Input, got [][]float32) {
	t.Helper()
	if len(got) != len(in) {
		t.Fatalf("%d vectors for %d inputs", len(got), len(in))
	}
	m := builtinmodel.Model{Dims: 8}
	want := make([]float32, 8)
	for i := range in {
		m.EmbedText(want, in[i].Text)
		for j := range want {
			if got[i][j] != want[j] {
				t.Fatalf("vector %d is not the vector of input %d", i, i)
			}
		}
	}
}

func TestSplitKeepsOrder(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{MaxBatch: 64}, Config{MaxBatchSize: 64, Linger: -1})
	in := texts("split", 150)
	resp, err := e.client.Embed(context.Background(), provider.Request{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, in, resp.Embeddings)
	st := e.up.Stats()
	if st.Calls != 3 || st.LargestCall != 64 || st.Inputs != 150 {
		t.Fatalf("upstream saw %d calls, largest %d, %d inputs; want 3, 64, 150", st.Calls, st.LargestCall, st.Inputs)
	}
}

func TestCoalesceRoutesByIndex(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{Latency: fakeupstream.Latency{Base: 30 * time.Millisecond}, MaxBatch: 16},
		Config{MaxBatchSize: 16, Linger: 5 * time.Millisecond, MaxInFlight: 64})
	const clients = 60
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			in := texts(fmt.Sprintf("client %d", c), 1+c%3)
			resp, err := e.client.Embed(context.Background(), provider.Request{Inputs: in})
			if err != nil {
				errs <- err
				return
			}
			checkVectors(t, in, resp.Embeddings)
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.up.Stats()
	if st.Inputs != 120 {
		t.Fatalf("upstream saw %d inputs, want 120", st.Inputs)
	}
	if st.Calls >= clients/2 {
		t.Fatalf("%d upstream calls for %d concurrent requests: not coalesced", st.Calls, clients)
	}
	if st.LargestCall > 16 {
		t.Fatalf("a coalesced call had %d inputs, over the batch size", st.LargestCall)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name        string
		up          fakeupstream.Config
		cfg         Config
		deadline    time.Duration
		wantStatus  int // 0: success
		wantCalls   int64
		wantRetries int64
		wantInMsg   string
		wantGap     time.Duration // minimum time between the last two calls
	}{
		{name: "5xx then 429 then ok, honouring Retry-After",
			up:  fakeupstream.Config{Script: []int{503, 429}, RetryAfter: 300 * time.Millisecond},
			cfg: Config{MaxAttempts: 3, InitialBackoff: time.Millisecond}, deadline: 5 * time.Second,
			wantCalls: 3, wantRetries: 2, wantGap: 300 * time.Millisecond},
		{name: "always 500: stops at max attempts",
			up:  fakeupstream.Config{ErrorRate: 1},
			cfg: Config{MaxAttempts: 4, InitialBackoff: time.Millisecond}, deadline: 5 * time.Second,
			wantStatus: 502, wantCalls: 4, wantRetries: 3, wantInMsg: "after 4 attempt(s)"},
		{name: "Retry-After past the deadline: answer now, no retry",
			up:  fakeupstream.Config{Script: []int{429}, RetryAfter: 30 * time.Second},
			cfg: Config{MaxAttempts: 5}, deadline: 3 * time.Second,
			wantStatus: 429, wantCalls: 1, wantRetries: 0, wantInMsg: "past the request deadline"},
		{name: "hanging upstream: each attempt times out",
			up:  fakeupstream.Config{HangRate: 1},
			cfg: Config{MaxAttempts: 3, AttemptTimeout: 100 * time.Millisecond, InitialBackoff: time.Millisecond}, deadline: 5 * time.Second,
			wantStatus: 504, wantCalls: 3, wantRetries: 2, wantInMsg: "timed out"},
		{name: "bad input is the client's 400, not retried",
			up:  fakeupstream.Config{MaxBatch: 1},
			cfg: Config{MaxAttempts: 3, MaxBatchSize: 64, Linger: -1}, deadline: 5 * time.Second,
			wantStatus: 400, wantCalls: 1, wantRetries: 0, wantInMsg: "at most 1 inputs per call"},
		{name: "wrong API key is the upstream's 401, not retried",
			up:  fakeupstream.Config{APIKey: "right"},
			cfg: Config{MaxAttempts: 3, APIKey: "wrong"}, deadline: 5 * time.Second,
			wantStatus: 401, wantCalls: 1, wantRetries: 0, wantInMsg: "bad api key"},
		{name: "exhausted quota is the upstream's 429, not retried",
			up:  fakeupstream.Config{QuotaExhausted: true},
			cfg: Config{MaxAttempts: 3}, deadline: 5 * time.Second,
			wantStatus: 429, wantCalls: 1, wantRetries: 0, wantInMsg: "exceeded your current quota"},
		{name: "right API key",
			up:  fakeupstream.Config{APIKey: "right"},
			cfg: Config{APIKey: "right"}, deadline: 5 * time.Second, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.up, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), tt.deadline)
			defer cancel()
			in := texts("retry", 2)
			resp, err := e.client.Embed(ctx, provider.Request{Inputs: in})
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatal(err)
				}
				checkVectors(t, in, resp.Embeddings)
			} else {
				pe, ok := provider.AsError(err)
				if !ok || pe.Status != tt.wantStatus || !strings.Contains(pe.Message, tt.wantInMsg) {
					t.Fatalf("err %v, want status %d with %q", err, tt.wantStatus, tt.wantInMsg)
				}
				if ctx.Err() != nil {
					t.Fatal("answered only after the deadline")
				}
			}
			st := e.up.Stats()
			if st.Calls != tt.wantCalls || e.retries.Load() != tt.wantRetries {
				t.Fatalf("calls %d retries %d, want %d %d", st.Calls, e.retries.Load(), tt.wantCalls, tt.wantRetries)
			}
			if tt.wantGap > 0 {
				ct := st.CallTimes
				if gap := ct[len(ct)-1].Sub(ct[len(ct)-2]); gap < tt.wantGap {
					t.Fatalf("retried after %v, before Retry-After %v", gap, tt.wantGap)
				}
			}
		})
	}
}

func TestDeadlineBeatsAttemptTimeout(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{HangRate: 1}, Config{AttemptTimeout: time.Minute, MaxAttempts: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := e.client.Embed(ctx, provider.Request{Inputs: texts("x", 1)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	if c := e.up.Stats().Calls; c != 1 {
		t.Fatalf("%d calls: retried past the deadline", c)
	}
}

func TestLeavingClientCancelsUpstreamCall(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{Latency: fakeupstream.Latency{Base: time.Minute}}, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Embed(ctx, provider.Request{Inputs: texts("x", 1)})
		done <- err
	}()
	poll.Until(t, "the upstream call to start", func() bool { return e.up.Stats().InFlight != 0 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	// The shared call had no member left, so it was cancelled upstream too.
	poll.Until(t, "the upstream call to end", func() bool { return e.up.Stats().InFlight == 0 })
	if e.up.Stats().ByStatus[499] != 1 {
		t.Fatalf("upstream call not cancelled: %v", e.up.Stats().ByStatus)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempt int
		r       float64
		want    time.Duration
	}{
		{1, 0, 50 * time.Millisecond},
		{1, 0.999999, 99999950 * time.Nanosecond},
		{2, 0, 100 * time.Millisecond},
		{3, 0.5, 300 * time.Millisecond},
		{10, 0, 500 * time.Millisecond}, // capped at 1s, half jittered away
	}
	for _, tt := range tests {
		if got := Backoff(100*time.Millisecond, time.Second, tt.attempt, tt.r); got != tt.want {
			t.Errorf("attempt %d r %v: %v, want %v", tt.attempt, tt.r, got, tt.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "localhost:80"} {
		if _, err := New(Config{BaseURL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// An upstream whose Content-Length promises far more than it sends gets a clear
// 502 after its retries, and the promise alone does not make the client allocate
// what it claims (three attempts of a claimed 200 MB).
func TestLyingContentLengthIsNotPreallocated(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = bufio.NewReader(conn).ReadString('{') // request line and headers, then the body starts
				_, _ = io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n{\"data\":[")
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	c, err := New(Config{BaseURL: "http://" + ln.Addr().String() + "/v1", Model: "m", InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Embed(ctx, provider.Request{Inputs: texts("short answer", 1)})
	runtime.ReadMemStats(&after)
	pe, ok := provider.AsError(err)
	if !ok || pe.Status != 502 || !strings.Contains(pe.Message, "after 3 attempt(s)") {
		t.Fatalf("want a 502 after 3 attempts, got %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("allocated %d MiB for answers that sent a few bytes", grew>>20)
	}
}

// The upstream reads every text as it was sent, whether the body carries it
// from its own bytes (long, nothing to escape) or encoded (short, or with
// quotes, backslashes, control characters or non-ASCII letters).
func TestRequestBodyCarriesEveryText(t *testing.T) {
	long := strings.Repeat("plain words of a long document ", 40)
	texts := []string{
		long, "short", long + `with "quotes" and \backslashes\`, "tab\tnew\nline" + long, "héllo wörld " + long,
		strings.Repeat("ünïcödé ", 100), `<html> & "json"`, long,
	}
	in := make([]provider.Input, len(texts))
	for i, s := range texts {
		in[i] = provider.Input{Text: s}
	}
	for _, user := range []string{"", `a "quoted" user`} {
		e := newEnv(t, fakeupstream.Config{}, Config{MaxBatchSize: 64})
		resp, err := e.client.Embed(context.Background(), provider.Request{Inputs: in, User: user})
		if err != nil {
			t.Fatal(err)
		}
		checkVectors(t, in, resp.Embeddings)
		if st := e.up.Stats(); st.Calls != 1 || st.ByStatus[200] != 1 {
			t.Fatalf("stats %+v", st)
		}
	}
	body, err := (&Client{cfg: Config{Model: "m"}}).body(batchKey{dims: 3, user: "u"}, in)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(body.reader())
	var got struct {
		Input          []string `json:"input"`
		Model          string   `json:"model"`
		EncodingFormat string   `json:"encoding_format"`
		Dimensions     int      `json:"dimensions"`
		User           string   `json:"user"`
	}
	if err := json.Unmarshal(raw, &got); err != nil || int64(len(raw)) != body.size {
		t.Fatalf("body of %d bytes (size says %d): %v", len(raw), body.size, err)
	}
	if fmt.Sprint(got.Input) != fmt.Sprint(texts) || got.Model != "m" || got.EncodingFormat != "base64" || got.Dimensions != 3 || got.User != "u" {
		t.Fatalf("body decodes to %+v", got)
	}
	if again, _ := io.ReadAll(body.reader()); string(again) != string(raw) {
		t.Fatal("a second attempt reads another body")
	}
}
