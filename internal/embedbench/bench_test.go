package embedbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
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

// loadavg is the machine's load average, printed beside each result: on a shared
// 2-core machine it explains more of the variance than the code does.
func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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
		fmt.Printf("\n== overhead: server vs direct, upstream latency 20ms, %v per level (load average %s) ==\n", run, loadavg())
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
			"--upstream-url", ts.URL+"/v1", "--max-in-flight", "8", "--max-queue", "32", "--request-timeout", "10s", "--queue-timeout", "5s", "--log-level", "error", "--pprof")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitReady(b, "http://"+admin+"/readyz")

		pid := cmd.Process.Pid
		// EMBEDBENCH_PROFILE=file saves a CPU profile of the server during both phases.
		profDone := make(chan struct{})
		if path := os.Getenv("EMBEDBENCH_PROFILE"); path != "" {
			go func() {
				defer close(profDone)
				resp, err := http.Get("http://" + admin + "/debug/pprof/profile?seconds=8")
				if err != nil {
					return
				}
				defer resp.Body.Close()
				f, _ := os.Create(path)
				defer f.Close()
				_, _ = io.Copy(f, resp.Body)
			}()
		} else {
			close(profDone)
		}
		cpu0 := cpuTime(pid)
		burst := overloadPhase(addr, conns, 0)
		burst.serverCPU = cpuTime(pid) - cpu0
		burstRSS := peakRSS(pid)
		cpu0 = cpuTime(pid)
		spread := overloadPhase(addr, conns, 2*time.Second)
		spread.serverCPU = cpuTime(pid) - cpu0
		rss := peakRSS(pid)
		<-profDone
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		up.Close()
		ts.Close()

		fmt.Printf("\n== overload: %d connections held open, --max-in-flight 8 --max-queue 32, upstream 100ms (load average %s) ==\n", conns, loadavg())
		for _, ph := range []struct {
			name string
			r    phaseResult
		}{{"burst (all requests sent at one instant)", burst}, {"spread (each connection sends once within 2s)", spread}} {
			r := ph.r
			fmt.Printf("%s: dial failures %d, answers by status %v (0 = hung, -1 = connection error), all answered in %v\n",
				ph.name, r.dialErrs, r.counts, r.elapsed.Round(time.Millisecond))
			fmt.Printf("   time to a 429: median %s (target < 10ms), p99 %s; hung %d; server CPU %v = %.0f µs per request\n",
				ms(loadgen.Percentile(r.to429, 0.5)), ms(loadgen.Percentile(r.to429, 0.99)), r.counts[0],
				r.serverCPU, float64(r.serverCPU.Microseconds())/float64(conns))
		}
		fmt.Printf("server peak RSS: %.1f MiB after the burst, %.1f MiB overall (target < 256)\n", float64(burstRSS)/(1<<20), float64(rss)/(1<<20))
		b.ReportMetric(float64(loadgen.Percentile(burst.to429, 0.5))/1e6, "burst-median-429-ms")
		b.ReportMetric(float64(loadgen.Percentile(spread.to429, 0.5))/1e6, "spread-median-429-ms")
		b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(burst.counts[0]+spread.counts[0]), "hung")
	}
}

type phaseResult struct {
	serverCPU time.Duration
	counts    map[int]int
	to429     []time.Duration
	elapsed   time.Duration
	dialErrs  int
}

// overloadPhase opens conns connections, then each sends one request at a
// random moment within spread (0: all at once) and reads the answer.
func overloadPhase(addr string, conns int, spread time.Duration) phaseResult {
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
	req := []byte("POST /v1/embeddings HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
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
			if spread > 0 {
				time.Sleep(time.Duration(rand.Int64N(int64(spread))))
			}
			t0 := time.Now()
			_ = conn.SetDeadline(t0.Add(15 * time.Second)) // request timeout + margin
			if _, err := conn.Write(req); err != nil {
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
	r := phaseResult{counts: map[int]int{}, elapsed: time.Since(t0), dialErrs: dialErrs}
	for _, o := range outs {
		r.counts[o.status]++
		if o.status == http.StatusTooManyRequests {
			r.to429 = append(r.to429, o.d)
		}
	}
	slices.Sort(r.to429)
	return r
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

// cpuTime reads a process's user+system CPU time from /proc (clock ticks of 10ms).
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
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
