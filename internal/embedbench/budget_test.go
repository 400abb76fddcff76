package embedbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"testing"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/provider/openai"
)

// BenchmarkUpstreamBudget: the issue-27 targets, in one run. An OpenAI-like
// fake upstream (30 ms a call, 6,000 calls a minute enforced per second with
// x-ratelimit-* headers, 429 rate_limit_exceeded beyond), 100 closed-loop
// clients of one input each for 6 s: directly, through the server with the
// budget declared, and through the server learning it from the headers. Then
// an upstream out of quota, and one request of 1,000 texts of about 500
// tokens. Ratios are against the direct row of the same run.
func BenchmarkUpstreamBudget(b *testing.B) {
	const (
		clients = 100
		run     = 6 * time.Second
		rpm     = 6000
		latency = 30 * time.Millisecond
	)
	upCfg := fakeupstream.Config{Latency: fakeupstream.Latency{Base: latency}, RequestsPerMinute: rpm, Dims: 64}
	measure := func(url string, clients int, d time.Duration) loadgen.Result {
		return loadgen.Run(context.Background(), loadgen.Config{URL: url + "/v1/embeddings", Concurrency: clients, Duration: d,
			Deadline: 30 * time.Second, Margin: 5 * time.Second, Body: []byte(body)})
	}
	// through runs the server in front of a fresh upstream (a full budget)
	// and measures; the upstream's stats are for this row alone.
	through := func(up fakeupstream.Config, ocfg openai.Config, clients int, d time.Duration) (loadgen.Result, fakeupstream.Stats) {
		f := fakeupstream.New(up)
		ts := httptest.NewServer(f)
		defer ts.Close()
		defer f.Close()
		ocfg.BaseURL, ocfg.Model, ocfg.MaxInFlight = ts.URL+"/v1", "fake-embedding", 128
		client, _ := openai.New(ocfg)
		defer client.Close()
		url, stop := serve(b, embedserver.New(embedserver.Config{Model: "fake-embedding", MaxInFlight: 128, MaxQueue: 128}, client))
		defer stop()
		r := measure(url, clients, d)
		return r, f.Stats()
	}
	for i := 0; i < b.N; i++ {
		fmt.Printf("\n== upstream budget: fake upstream %v a call, %d calls a minute (x-ratelimit-*, 429 beyond), %d closed-loop clients, one input each, %v per row (load average %s) ==\n",
			latency, rpm, clients, run, loadavg())
		f := fakeupstream.New(upCfg)
		ts := httptest.NewServer(f)
		direct := measure(ts.URL, clients, run)
		dst := f.Stats()
		ts.Close()
		f.Close()
		declared, decSt := through(upCfg, openai.Config{RequestsPerMinute: rpm}, clients, run)
		learned, leaSt := through(upCfg, openai.Config{}, clients, run)

		ok := func(r loadgen.Result) float64 { return float64(r.ByStatus[200]) / r.Elapsed.Seconds() }
		pct := func(r loadgen.Result) float64 { return 100 * float64(r.ByStatus[200]) / float64(max(1, r.Requests)) }
		fmt.Printf("| path | answered 200 | 200s per second | vs direct | p50 | p99 | upstream calls | answered 429 | most calls in a minute | target | met |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
		fmt.Printf("| direct | %.1f%% | %.0f | 1.0x | %s | %s | %d | %d (%.1f%%) | %d | | |\n", pct(direct), ok(direct), ms(direct.P50), ms(direct.P99),
			dst.Calls, dst.ByStatus[429], 100*float64(dst.ByStatus[429])/float64(max(1, dst.Calls)), dst.MaxPerMinute)
		row := func(name string, r loadgen.Result, st fakeupstream.Stats, target string, met bool) {
			fmt.Printf("| %s | %.2f%% | %.0f | %.1fx | %s | %s | %d | %d (%.2f%%) | %d | %s | %v |\n", name, pct(r), ok(r), ok(r)/ok(direct), ms(r.P50), ms(r.P99),
				st.Calls, st.ByStatus[429], 100*float64(st.ByStatus[429])/float64(max(1, st.Calls)), st.MaxPerMinute, target, met)
		}
		row("server, budget declared", declared, decSt, ">= 25x, >= 99.9% 200, p99 < 200 ms, 0 upstream 429s",
			ok(declared) >= 25*ok(direct) && pct(declared) >= 99.9 && declared.P99 < 200*time.Millisecond && decSt.ByStatus[429] == 0)
		row("server, budget learned from headers", learned, leaSt, ">= 20x, >= 99% 200, upstream 429s <= 1% of calls",
			ok(learned) >= 20*ok(direct) && pct(learned) >= 99 && float64(leaSt.ByStatus[429]) <= 0.01*float64(leaSt.Calls))
		b.ReportMetric(ok(declared)/ok(direct), "declared-x-direct")
		b.ReportMetric(ok(learned)/ok(direct), "learned-x-direct")

		// Out of quota: every answer is the upstream's own 429
		// insufficient_quota, at once and never retried. Closed-loop clients
		// of one input; concurrent requests may share a call (coalescing), so
		// calls can be fewer than requests, never more.
		const quotaClients = 20
		quota, qst := through(fakeupstream.Config{Latency: fakeupstream.Latency{Base: latency}, QuotaExhausted: true, Dims: 64}, openai.Config{}, quotaClients, 3*time.Second)
		within := latency + 10*time.Millisecond
		fmt.Printf("\n== exhausted quota: %d clients for 3s: %d requests, %d answered 429 insufficient_quota-or-other %v; %d upstream calls (%d answered 429); p50 %s p99 %s max %s (target: calls <= requests, no retry, every answer within %s: %v)\n",
			quotaClients, quota.Requests, quota.ByStatus[429], quota.ByStatus, qst.Calls, qst.ByStatus[429], ms(quota.P50), ms(quota.P99), ms(quota.Max), ms(within),
			quota.ByStatus[429] == quota.Requests && qst.Calls <= int64(quota.Requests) && quota.Max <= within)
		codeOf := quotaCode(b, upCfg.Latency)
		fmt.Printf("   the answer's error code: %q\n", codeOf)

		// One request of 1,000 texts of about 500 tokens (" word" is one
		// token in OpenAI's tokenizers), with the server's batch size at
		// OpenAI's 2,048: split under 300,000 tokens a call by the estimate.
		text := strings.Repeat("word ", 500)
		inputs := make([]string, 1000)
		for j := range inputs {
			inputs[j] = fmt.Sprintf("%d %s", j, text)
		}
		reqBody, _ := json.Marshal(map[string]any{"input": inputs, "model": "fake-embedding"})
		big := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: latency}, MaxBatch: 2048, Dims: 64})
		bts := httptest.NewServer(big)
		client, _ := openai.New(openai.Config{BaseURL: bts.URL + "/v1", Model: "fake-embedding", MaxBatchSize: 2048, MaxInFlight: 16})
		url, stop := serve(b, embedserver.New(embedserver.Config{Model: "fake-embedding", MaxInFlight: 16, MaxInputs: 2048, MaxBodyBytes: 16 << 20, MaxPendingBytes: 64 << 20}, client))
		start := time.Now()
		resp, err := http.Post(url+"/v1/embeddings", "application/json", bytes.NewReader(reqBody))
		status := 0
		var vectors int
		if err == nil {
			status = resp.StatusCode
			var er struct {
				Data []json.RawMessage `json:"data"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&er)
			vectors = len(er.Data)
			resp.Body.Close()
		}
		took := time.Since(start)
		bst := big.Stats()
		perText := budget.EstimateTokens(inputs[999])
		fmt.Printf("\n== 1,000 texts of ~500 tokens (%d bytes each, estimated %d tokens) in one request: status %d, %d vectors, %v; %d upstream calls, the largest %d inputs = %d estimated tokens (target: 200, split under 300,000 tokens a call: %v)\n",
			len(inputs[999]), perText, status, vectors, took.Round(time.Millisecond), bst.Calls, bst.LargestCall, int(bst.LargestCall)*perText,
			status == 200 && vectors == 1000 && int(bst.LargestCall)*perText <= 300000)
		stop()
		client.Close()
		bts.Close()
		big.Close()
	}
}

// quotaCode is the error code a client of the server sees when the upstream
// is out of quota.
func quotaCode(b *testing.B, lat fakeupstream.Latency) string {
	f := fakeupstream.New(fakeupstream.Config{Latency: lat, QuotaExhausted: true})
	ts := httptest.NewServer(f)
	defer ts.Close()
	defer f.Close()
	client, _ := openai.New(openai.Config{BaseURL: ts.URL + "/v1", Model: "fake-embedding"})
	defer client.Close()
	url, stop := serve(b, embedserver.New(embedserver.Config{Model: "fake-embedding"}, client))
	defer stop()
	resp, err := http.Post(url+"/v1/embeddings", "application/json", strings.NewReader(body))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct {
			Type, Code string
		}
	}
	_ = json.Unmarshal(raw, &eb)
	return fmt.Sprintf("%d %s/%s", resp.StatusCode, eb.Error.Type, eb.Error.Code)
}
