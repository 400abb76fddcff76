package embedbench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
)

const body = `{"input":"How do I roll back a canary of the embedding service?","model":"fake-embedding"}`

// serve runs srv on loopback and returns its base URL and a stop func.
func serve(b *testing.B, srv *embedserver.Server) (string, func()) {
	api, _ := net.Listen("tcp", "127.0.0.1:0")
	admin, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, api, admin) }()
	return "http://" + api.Addr().String(), func() { cancel(); <-done }
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

// BenchmarkOverheadAndCoalescing: the server (openai provider) in front of a fake
// upstream with 20 ms latency and no limit, against calling that upstream
// directly, at 1, 10 and 100 clients; at 100 single-input clients also the
// upstream calls per client request (coalescing).
func BenchmarkOverheadAndCoalescing(b *testing.B) {
	const run = 2 * time.Second
	for i := 0; i < b.N; i++ {
		up := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: 20 * time.Millisecond}, Dims: 384})
		ts := httptest.NewServer(up)
		fmt.Printf("\n== overhead: server vs direct, upstream latency 20ms, %v per level ==\n", run)
		fmt.Printf("%8s %12s %12s %12s %12s %12s %12s %10s\n", "clients", "direct p50", "server p50", "added p50", "added p99", "direct rps", "server rps", "tput ratio")
		for _, clients := range []int{1, 10, 100} {
			direct := loadgen.Run(context.Background(), loadgen.Config{URL: ts.URL + "/v1/embeddings", Concurrency: clients, Duration: run,
				Deadline: 30 * time.Second, Margin: 5 * time.Second, Body: []byte(body)})
			client, _ := openai.New(openai.Config{BaseURL: ts.URL + "/v1", Model: "fake-embedding", MaxInFlight: clients})
			srv := embedserver.New(embedserver.Config{Model: "fake-embedding", MaxInFlight: clients, MaxQueue: clients}, client)
			url, stop := serve(b, srv)
			up.ResetStats()
			via := loadgen.Run(context.Background(), loadgen.Config{URL: url + "/v1/embeddings", Concurrency: clients, Duration: run,
				Deadline: 30 * time.Second, Margin: 5 * time.Second, Body: []byte(body)})
			calls := up.Stats().Calls
			stop()
			client.Close()
			ratio := via.Throughput() / direct.Throughput()
			fmt.Printf("%8d %12s %12s %12s %12s %12.0f %12.0f %10.3f\n", clients, ms(direct.P50), ms(via.P50), ms(via.P50-direct.P50), ms(via.P99-direct.P99),
				direct.Throughput(), via.Throughput(), ratio)
			if via.OK != via.Requests || direct.OK != direct.Requests {
				fmt.Printf("   !! not all ok: direct %v, server %v\n", direct.ByStatus, via.ByStatus)
			}
			b.ReportMetric(float64(via.P50-direct.P50)/1e6, fmt.Sprintf("added-p50-ms/%dc", clients))
			b.ReportMetric(ratio, fmt.Sprintf("tput-ratio/%dc", clients))
			if clients == 100 {
				perReq := float64(calls) / float64(via.Requests)
				fmt.Printf("== coalescing: 100 single-input clients: %d upstream calls for %d requests = %.3f calls per request (target <= 0.2)\n", calls, via.Requests, perReq)
				b.ReportMetric(perReq, "upstream-calls/req")
			}
		}
		up.Close()
		ts.Close()
	}
}

// BenchmarkOverload: 10,000 concurrent connections against a real embedserver
// process with --max-in-flight 8 --max-queue 32 in front of a 100 ms upstream:
// median time to a 429, the server's peak RSS, and requests that hung.
func BenchmarkOverload(b *testing.B) {
	const conns = 10000
	dir := b.TempDir()
	bin := filepath.Join(dir, "embedserver")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/embedserver").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for i := 0; i < b.N; i++ {
		up := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: 100 * time.Millisecond}, Dims: 384})
		ts := httptest.NewServer(up)
		addr, admin := freeAddr(b), freeAddr(b)
		cmd := exec.Command(bin, "--addr", addr, "--admin-addr", admin, "--provider", "openai", "--model", "fake-embedding",
			"--upstream-url", ts.URL+"/v1", "--max-in-flight", "8", "--max-queue", "32", "--request-timeout", "10s", "--queue-timeout", "5s", "--log-level", "error")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitReady(b, "http://"+admin+"/readyz")

		// Open every connection first, then send all requests at once.
		cs := make([]net.Conn, 0, conns)
		var mu sync.Mutex
		var wg sync.WaitGroup
		sem := make(chan struct{}, 256)
		dialErrs := 0
		for c := 0; c < conns; c++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					dialErrs++
					return
				}
				cs = append(cs, conn)
			}()
		}
		wg.Wait()
		req := "POST /v1/embeddings HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		type outcome struct {
			status int
			d      time.Duration
		}
		outs := make([]outcome, len(cs))
		start := make(chan struct{})
		for j, conn := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				<-start
				t0 := time.Now()
				_ = conn.SetDeadline(t0.Add(15 * time.Second)) // request timeout + margin
				if _, err := conn.Write([]byte(req)); err != nil {
					outs[j] = outcome{status: -1}
					return
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						outs[j] = outcome{status: 0} // hung
					} else {
						outs[j] = outcome{status: -1}
					}
					return
				}
				resp.Body.Close()
				outs[j] = outcome{status: resp.StatusCode, d: time.Since(t0)}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		elapsed := time.Since(t0)
		rss := peakRSS(cmd.Process.Pid)
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		up.Close()
		ts.Close()

		var to429 []time.Duration
		counts := map[int]int{}
		for _, o := range outs {
			counts[o.status]++
			if o.status == http.StatusTooManyRequests {
				to429 = append(to429, o.d)
			}
		}
		slices.Sort(to429)
		med := loadgen.Percentile(to429, 0.5)
		fmt.Printf("\n== overload: %d connections (%d failed to dial), --max-in-flight 8 --max-queue 32, upstream 100ms ==\n", conns, dialErrs)
		fmt.Printf("answers by status: %v (0 = hung, -1 = connection error); all answered in %v\n", counts, elapsed.Round(time.Millisecond))
		fmt.Printf("median time to a 429: %s (target < 10ms); p99 %s; server peak RSS %.1f MiB (target < 256); hung %d\n",
			ms(med), ms(loadgen.Percentile(to429, 0.99)), float64(rss)/(1<<20), counts[0])
		b.ReportMetric(float64(med)/1e6, "median-429-ms")
		b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(counts[0]), "hung")
	}
}

func freeAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(b *testing.B, url string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("%s never ready", url)
}

// peakRSS reads VmHWM (bytes) of a process.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkBuiltin: hash-384 on 200-character texts in batches of 64, including
// the response encoding, in inputs per second.
func BenchmarkBuiltin(b *testing.B) {
	words := strings.Fields("retrieval augmented generation embeds every document chunk into a vector so that a query finds the nearest passages quickly and the model answers with sources")
	texts := make([]provider.Input, 64)
	for i := range texts {
		var sb strings.Builder
		for j := i; sb.Len() < 200; j++ {
			sb.WriteString(words[j%len(words)])
			sb.WriteByte(' ')
		}
		texts[i] = provider.Input{Text: sb.String()[:200]}
	}
	p := builtinmodel.Provider{Model: builtinmodel.Model{Dims: 384}}
	for _, b64 := range []bool{false, true} {
		name := map[bool]string{false: "float", true: "base64"}[b64]
		b.Run(name, func(b *testing.B) {
			var buf []byte
			for i := 0; i < b.N; i++ {
				resp, err := p.Embed(context.Background(), provider.Request{Inputs: texts})
				if err != nil {
					b.Fatal(err)
				}
				buf = openaiapi.AppendResponse(buf[:0], "hash-384", resp.Embeddings, resp.PromptTokens, b64)
			}
			perSec := float64(b.N*len(texts)) / b.Elapsed().Seconds()
			b.ReportMetric(perSec, "inputs/s")
		})
	}
}
