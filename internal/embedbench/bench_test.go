package embedbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

const body = `{"input":"How do I roll back a canary of the embedding service?","model":"fake-embedding"}`

// serve runs srv on loopback and returns its base URL and a stop func.
func serve(_ *testing.B, srv *embedserver.Server) (string, func()) {
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
//
// Two baselines run in the same level, because everything here (clients,
// server, upstream) shares the machine's cores: a bare httputil.ReverseProxy to
// the same upstream (the least any Go proxy pays for the extra hop), and the
// server with a provider that sleeps 20 ms in process (its own HTTP front
// without the upstream hop).
func BenchmarkOverheadAndCoalescing(b *testing.B) {
	const run = 4 * time.Second
	measure := func(url string, clients int) loadgen.Result {
		return loadgen.Run(context.Background(), loadgen.Config{URL: url + "/v1/embeddings", Concurrency: clients, Duration: run,
			Deadline: 30 * time.Second, Margin: 5 * time.Second, Body: []byte(body)})
	}
	for i := 0; i < b.N; i++ {
		up := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: 20 * time.Millisecond}, Dims: 384})
		ts := httptest.NewServer(up)
		fmt.Printf("\n== overhead: server vs direct, upstream latency 20ms, %v per level (load average %s) ==\n", run, loadavg())
		fmt.Printf("%8s %11s %11s %10s %10s %11s %11s %10s %10s %10s\n", "clients", "direct p50", "server p50", "added p50", "added p99",
			"direct rps", "server rps", "tput ratio", "proxy", "no hop")
		for _, clients := range []int{1, 10, 100} {
			direct := measure(ts.URL, clients)

			client, _ := openai.New(openai.Config{BaseURL: ts.URL + "/v1", Model: "fake-embedding", MaxInFlight: clients})
			srv := embedserver.New(embedserver.Config{Model: "fake-embedding", MaxInFlight: clients, MaxQueue: clients}, client)
			url, stop := serve(b, srv)
			up.ResetStats()
			via := measure(url, clients)
			calls := up.Stats().Calls
			stop()
			client.Close()

			target, _ := neturl.Parse(ts.URL)
			tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients}
			proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, Transport: tr})
			bare := measure(proxy.URL, clients)
			proxy.Close()
			tr.CloseIdleConnections()

			url, stop = serve(b, embedserver.New(embedserver.Config{Model: "fake-embedding", MaxInFlight: clients, MaxQueue: clients}, sleepingProvider{20 * time.Millisecond}))
			noHop := measure(url, clients)
			stop()

			ratio := via.Throughput() / direct.Throughput()
			fmt.Printf("%8d %11s %11s %10s %10s %11.0f %11.0f %10.3f %10.3f %10.3f\n", clients, ms(direct.P50), ms(via.P50), ms(via.P50-direct.P50), ms(via.P99-direct.P99),
				direct.Throughput(), via.Throughput(), ratio, bare.Throughput()/direct.Throughput(), noHop.Throughput()/direct.Throughput())
			for name, r := range map[string]loadgen.Result{"direct": direct, "server": via, "proxy": bare, "no hop": noHop} {
				if r.OK != r.Requests {
					fmt.Printf("   !! not all ok (%s): %v\n", name, r.ByStatus)
				}
			}
			b.ReportMetric(float64(via.P50-direct.P50)/1e6, fmt.Sprintf("added-p50-ms/%dc", clients))
			b.ReportMetric(ratio, fmt.Sprintf("tput-ratio/%dc", clients))
			b.ReportMetric(bare.Throughput()/direct.Throughput(), fmt.Sprintf("proxy-tput-ratio/%dc", clients))
			if clients == 100 {
				perReq := float64(calls) / float64(via.Requests)
				fmt.Printf("== coalescing: 100 single-input clients: %d upstream calls for %d requests = %.3f calls per request (target <= 0.2)\n", calls, via.Requests, perReq)
				b.ReportMetric(perReq, "upstream-calls/req")
			}
		}
		fmt.Println("   tput ratio: server / direct (target >= 0.9 at 100 clients); proxy: a bare httputil.ReverseProxy / direct;")
		fmt.Println("   no hop: the server with an in-process provider sleeping 20ms / direct. All in this run, on these cores.")
		up.Close()
		ts.Close()
	}
}

// sleepingProvider answers after a fixed delay without any network: the server's
// own cost, with the upstream hop taken away.
type sleepingProvider struct{ delay time.Duration }

func (p sleepingProvider) Embed(ctx context.Context, req provider.Request) (provider.Response, error) {
	t := time.NewTimer(p.delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return provider.Response{}, ctx.Err()
	}
	return builtinmodel.Provider{Model: builtinmodel.Model{Dims: 384}}.Embed(ctx, req)
}

// BenchmarkOverload: 10,000 concurrent connections against a real embedserver
// process with --max-in-flight 8 --max-queue 32 in front of a 100 ms upstream:
// median time to a 429, the server's peak RSS, and requests that hung. The same
// phases then run against a bare net/http process that answers every request
// with the same 429 and does nothing else: the floor for any Go HTTP server on
// this machine, measured in the same run.
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
		poll.UntilStatus(b, "http://"+admin+"/readyz", http.StatusOK)

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
		burst, spread := overloadPhases(addr, cmd.Process.Pid, conns)
		rss := peakRSS(cmd.Process.Pid)
		<-profDone
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		up.Close()
		ts.Close()

		// The floor: this test binary again, as a bare 429 server (see TestMain).
		bareAddr := freeAddr(b)
		bare := exec.Command(os.Args[0], "-test.run=^$")
		bare.Env = append(os.Environ(), bare429Env+"="+bareAddr)
		bare.Stderr = os.Stderr
		if err := bare.Start(); err != nil {
			b.Fatal(err)
		}
		poll.UntilStatus(b, "http://"+bareAddr+"/ready", http.StatusOK)
		bareBurst, bareSpread := overloadPhases(bareAddr, bare.Process.Pid, conns)
		_ = bare.Process.Signal(os.Interrupt)
		_ = bare.Wait()

		fmt.Printf("\n== overload: %d connections held open, --max-in-flight 8 --max-queue 32, upstream 100ms (load average %s) ==\n", conns, loadavg())
		for _, ph := range []struct {
			name     string
			r, floor phaseResult
		}{{"burst (all requests sent at one instant)", burst, bareBurst}, {"spread (each connection sends once within 2s)", spread, bareSpread}} {
			r := ph.r
			fmt.Printf("%s: dial failures %d, answers by status %v (0 = hung, -1 = connection error), all answered in %v\n",
				ph.name, r.dialErrs, r.counts, r.elapsed.Round(time.Millisecond))
			fmt.Printf("   time to a 429: median %s (target < 10ms), p99 %s; hung %d; server CPU %v = %.0f µs per request\n",
				ms(loadgen.Percentile(r.to429, 0.5)), ms(loadgen.Percentile(r.to429, 0.99)), r.counts[0],
				r.serverCPU, float64(r.serverCPU.Microseconds())/float64(conns))
			f := ph.floor
			fmt.Printf("   bare net/http 429 server, same phase: median %s, p99 %s, %.0f µs CPU per request; embedserver median / floor = %.2f\n",
				ms(loadgen.Percentile(f.to429, 0.5)), ms(loadgen.Percentile(f.to429, 0.99)), float64(f.serverCPU.Microseconds())/float64(conns),
				float64(loadgen.Percentile(r.to429, 0.5))/float64(max(loadgen.Percentile(f.to429, 0.5), time.Microsecond)))
		}
		fmt.Printf("server peak RSS: %.1f MiB (target < 256)\n", float64(rss)/(1<<20))
		b.ReportMetric(float64(loadgen.Percentile(burst.to429, 0.5))/1e6, "burst-median-429-ms")
		b.ReportMetric(float64(loadgen.Percentile(bareBurst.to429, 0.5))/1e6, "floor-burst-median-429-ms")
		b.ReportMetric(float64(loadgen.Percentile(spread.to429, 0.5))/1e6, "spread-median-429-ms")
		b.ReportMetric(float64(rss)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(burst.counts[0]+spread.counts[0]), "hung")
	}
}

// overloadPhases runs the burst and then the spread phase against addr, counting
// the CPU time of process pid during each.
func overloadPhases(addr string, pid, conns int) (burst, spread phaseResult) {
	cpu0 := cpuTime(pid)
	burst = overloadPhase(addr, conns, 0)
	cpu1 := cpuTime(pid)
	spread = overloadPhase(addr, conns, 2*time.Second)
	burst.serverCPU, spread.serverCPU = cpu1-cpu0, cpuTime(pid)-cpu1
	return burst, spread
}

// bare429Env makes this test binary a bare 429 server on the address it names.
const bare429Env = "EMBEDBENCH_BARE429_ADDR"

// goProxyEnv makes this test binary a bare Go reverse proxy: LISTEN=TARGET.
const goProxyEnv = "EMBEDBENCH_GOPROXY"

func TestMain(m *testing.M) {
	if addr := os.Getenv(bare429Env); addr != "" {
		os.Exit(serveBare429(addr))
	}
	if spec := os.Getenv(goProxyEnv); spec != "" {
		os.Exit(serveGoProxy(spec))
	}
	os.Exit(m.Run())
}

// serveGoProxy runs httputil.ReverseProxy with a keep-alive pool as large as
// nginx's in the matrix (1,024 idle connections to the upstream) until
// interrupted: the least a Go proxy on net/http costs, with no parsing,
// limits or metrics.
func serveGoProxy(spec string) int {
	listen, target, ok := strings.Cut(spec, "=")
	u, err := neturl.Parse(target)
	if !ok || err != nil {
		fmt.Fprintf(os.Stderr, "%s: want LISTEN=TARGET, got %q\n", goProxyEnv, spec)
		return 2
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 2048, 1024
	return serveChild(listen, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(u) }, Transport: tr})
}

// serveBare429 answers every request with the embedding server's queue-full 429
// (same bytes, same Connection: close) until interrupted.
func serveBare429(addr string) int {
	full := openaiapi.NewPreparedError(&provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full",
		Message: "server busy: 8 requests running and 32 waiting", RetryAfter: time.Second})
	return serveChild(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Connection"] = []string{"close"}
		full.Write(w)
	}))
}

// serveChild serves h on addr, with GET /ready answering 200 for the parent to
// wait on, until SIGINT or SIGTERM; it returns the process's exit code.
func serveChild(addr string, h http.Handler) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			return
		}
		h.ServeHTTP(w, r)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
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
