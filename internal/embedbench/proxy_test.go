package embedbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// The proxy matrix: the embedding server against calling the upstream directly
// and against nginx, on the upstreams people run (one answering float arrays
// whatever is asked, as Ollama, LocalAI and several TEI versions do; one
// honouring encoding_format, as OpenAI does), with clients asking float and
// base64, at 1 to 1,000 clients. Every process runs on its own (the fake
// upstreams, nginx, the embedding servers) and the clients run in this test
// process, so each one's CPU time per request is measured from /proc.
const (
	upstreamBase  = 20 * time.Millisecond
	upstreamInput = 50 * time.Microsecond // a model's work grows with the batch
	matrixDims    = 384
)

// The matrix's shape; EMBEDBENCH_LEVELS (client counts, comma-separated; a
// negative count is the --max-in-flight 128 row of that many clients),
// EMBEDBENCH_CELL (time per cell), EMBEDBENCH_SERVER_ARGS (more embedserver
// flags, split on spaces) and EMBEDBENCH_SERVER_ENV (more environment for it,
// NAME=value split on spaces) narrow or vary it while working on one cell.
var (
	matrixCell   = envDuration("EMBEDBENCH_CELL", 4*time.Second)
	matrixLevels = envInts("EMBEDBENCH_LEVELS", []int{1, 10, 100, 1000, -1000})
	serverArgs   = strings.Fields(os.Getenv("EMBEDBENCH_SERVER_ARGS"))
	serverEnv    = strings.Fields(os.Getenv("EMBEDBENCH_SERVER_ENV"))
)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil && d > 0 {
		return d
	}
	return def
}

func envInts(name string, def []int) []int {
	var out []int
	for _, f := range strings.Split(os.Getenv(name), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n != 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return def
	}
	return out
}

// upstreamKind names the two fake upstreams.
type upstreamKind struct{ name, encoding string }

var upstreamKinds = []upstreamKind{{"float", "float"}, {"base64", ""}}

type clientKind struct{ name, body string }

var clientKinds = []clientKind{
	{"float", `{"input":"How do I roll back a canary of the embedding service?","model":"fake-embedding"}`},
	{"base64", `{"input":"How do I roll back a canary of the embedding service?","model":"fake-embedding","encoding_format":"base64"}`},
}

// cell is one measured run: the answers, and what the scheduler accounted to
// each process during it.
type cell struct {
	res               loadgen.Result
	proxy, up, client usage // the proxy (none on the direct path), the upstream, the load generator (this process)
	upCalls           int64
}

// sched is u per request of the cell: "µs on CPU/µs waiting for a CPU/slices".
func (c cell) sched(u usage) string {
	cpu, wait, slices := u.perReq(c.res.Requests)
	return fmt.Sprintf("%.0f/%.0f/%.2f", cpu, wait, slices)
}

// whole is the whole path's usage: load generator, proxy and upstream.
func (c cell) whole() usage { return c.client.add(c.proxy).add(c.up) }

// perReq is a duration per request sent (answered or not), in µs.
func (c cell) perReq(d time.Duration) float64 {
	if c.res.Requests == 0 {
		return 0
	}
	return float64(d.Microseconds()) / float64(c.res.Requests)
}

// process is a started child process.
type process struct {
	name string
	cmd  *exec.Cmd
}

func (p *process) usage() usage { return treeUsage(p.cmd.Process.Pid) }

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func start(b *testing.B, name string, cmd *exec.Cmd, ready string) *process {
	b.Helper()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd}
	b.Cleanup(p.stop)
	poll.UntilStatus(b, ready, http.StatusOK)
	return p
}

func build(b *testing.B, dir, pkg string) string {
	b.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		b.Fatalf("build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// nginxBinary finds nginx, or says why the nginx rows are skipped.
func nginxBinary() (string, string) {
	for _, p := range []string{"nginx", "/usr/sbin/nginx"} {
		if path, err := exec.LookPath(p); err == nil {
			return path, ""
		}
	}
	return "", "nginx is not installed (make bench-embedserver installs Debian's nginx-light when it can): nginx rows skipped"
}

// startNginx runs nginx in the foreground on loopback as a reverse proxy with
// keep-alive to each upstream, unprivileged: as root it is started through
// setpriv as the user nobody.
func startNginx(b *testing.B, bin string, upstreams map[string]string) (*process, map[string]string) {
	b.Helper()
	dir, err := os.MkdirTemp("", "embedbench-nginx-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o777)
	var servers, ups strings.Builder
	addrs := map[string]string{}
	for name, addr := range upstreams {
		listen := freeAddr(b)
		addrs[name] = listen
		fmt.Fprintf(&ups, "  upstream up_%s { server %s; keepalive 1024; keepalive_requests 1000000; }\n", name, addr)
		fmt.Fprintf(&servers, `  server {
    listen %s backlog=4096;
    keepalive_requests 1000000;
    location = /ready { return 200; }
    location / { proxy_pass http://up_%s; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
`, listen, name)
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes auto;
worker_rlimit_nofile 65536;
error_log %[1]s/error.log error;
pid %[1]s/nginx.pid;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[2]s%[3]s}
`, dir, ups.String(), servers.String())
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{bin, "-c", path, "-p", dir, "-e", filepath.Join(dir, "error.log")}
	if os.Geteuid() == 0 {
		if sp, err := exec.LookPath("setpriv"); err == nil {
			args = append([]string{sp, "--reuid=65534", "--regid=65534", "--clear-groups"}, args...)
		}
	}
	var first string
	for _, a := range addrs {
		first = a
		break
	}
	return start(b, "nginx", exec.Command(args[0], args[1:]...), "http://"+first+"/ready"), addrs
}

// BenchmarkProxyMatrix prints, for each client level and each upstream and
// client encoding: throughput and added p50 of nginx and the embedding server
// relative to direct, and CPU time per request of each process. The embedding
// server runs with --max-in-flight 1000 (at least the client count), and at
// 1,000 clients again with --max-in-flight 128 --max-queue 1024.
func BenchmarkProxyMatrix(b *testing.B) {
	for i := 0; i < b.N; i++ {
		runMatrix(b)
	}
}

func runMatrix(b *testing.B) {
	dir := b.TempDir()
	upBin, esBin := build(b, dir, "../../hack/fakeupstream"), build(b, dir, "../../cmd/embedserver")

	ups := map[string]*process{}
	upAddr := map[string]string{}
	for _, k := range upstreamKinds {
		addr := freeAddr(b)
		upAddr[k.name] = addr
		ups[k.name] = start(b, "fakeupstream-"+k.name, exec.Command(upBin, "--addr", addr, "--latency", upstreamBase.String(),
			"--per-input-latency", upstreamInput.String(), "--dims", fmt.Sprint(matrixDims), "--encoding", k.encoding), "http://"+addr+"/stats")
	}
	type esKey struct{ up, mif string }
	es := map[esKey]*process{}
	esAddr := map[esKey]string{}
	for _, k := range upstreamKinds {
		for _, lim := range [][2]string{{"1000", "1000"}, {"128", "1024"}} {
			key := esKey{k.name, lim[0]}
			addr, admin := freeAddr(b), freeAddr(b)
			esAddr[key] = addr
			args := append([]string{"--addr", addr, "--admin-addr", admin, "--provider", "openai",
				"--model", "fake-embedding", "--upstream-url", "http://" + upAddr[k.name] + "/v1", "--max-in-flight", lim[0], "--max-queue", lim[1],
				"--log-level", "error", "--pprof"}, serverArgs...)
			cmd := exec.Command(esBin, args...)
			cmd.Env = append(os.Environ(), serverEnv...)
			es[key] = start(b, "embedserver", cmd, "http://"+admin+"/readyz")
		}
	}
	var nginx *process
	var nginxAddr map[string]string
	nginxBin, skip := nginxBinary()
	if skip == "" {
		nginx, nginxAddr = startNginx(b, nginxBin, upAddr)
	}
	// The floor of a Go proxy on this machine: httputil.ReverseProxy on
	// net/http, nothing else (no parsing, limits or metrics), as its own
	// process (this test binary again), one per upstream.
	goproxy := map[string]*process{}
	goproxyAddr := map[string]string{}
	for _, k := range upstreamKinds {
		addr := freeAddr(b)
		goproxyAddr[k.name] = addr
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), goProxyEnv+"="+addr+"="+"http://"+upAddr[k.name])
		goproxy[k.name] = start(b, "goproxy-"+k.name, cmd, "http://"+addr+"/ready")
	}

	measure := func(url string, clients int, body string, proxy *process, up string) cell {
		upStats := upstreamCalls(upAddr[up])
		var p0 usage
		if proxy != nil {
			p0 = proxy.usage()
		}
		u0, c0 := ups[up].usage(), procUsage("self")
		r := loadgen.Run(context.Background(), loadgen.Config{URL: url + "/v1/embeddings", Concurrency: clients, Duration: matrixCell,
			Deadline: 30 * time.Second, Margin: 5 * time.Second, Body: []byte(body)})
		c := cell{res: r, up: ups[up].usage().sub(u0), client: procUsage("self").sub(c0), upCalls: upstreamCalls(upAddr[up]) - upStats}
		if proxy != nil {
			c.proxy = proxy.usage().sub(p0)
		}
		return c
	}

	fmt.Printf("\n== proxy matrix: fake upstream %v + %v per input, %d dims, %v per cell, load average %s ==\n",
		upstreamBase, upstreamInput, matrixDims, matrixCell, loadavg())
	if skip != "" {
		fmt.Println("   " + skip)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tupstream\tclient\t\tdirect rps\tp50\t\tnginx/direct\t+p50\tµs CPU/req\t\tgo proxy/direct\t+p50\tµs CPU/req\t\tembedserver/direct\t/nginx\t+p50\tµs CPU/req\t/nginx\tcalls/req\tnot 200\t")
	var rows []matrixRow
	for _, clients := range matrixLevels {
		mif := "1000"
		if clients < 0 {
			clients, mif = -clients, "128"
		}
		for _, up := range upstreamKinds {
			for _, cl := range clientKinds {
				row := matrixRow{clients: clients, mif: mif, up: up.name, client: cl.name}
				row.direct = measure("http://"+upAddr[up.name], clients, cl.body, nil, up.name)
				if nginx != nil {
					row.nginx = measure("http://"+nginxAddr[up.name], clients, cl.body, nginx, up.name)
				}
				row.goproxy = measure("http://"+goproxyAddr[up.name], clients, cl.body, goproxy[up.name], up.name)
				proc := es[esKey{up.name, mif}]
				row.es = measure("http://"+esAddr[esKey{up.name, mif}], clients, cl.body, proc, up.name)
				rows = append(rows, row)
				fmt.Fprintln(tw, row.line())
			}
		}
	}
	_ = tw.Flush()
	fmt.Println("   ratios are throughput (answered requests per second) against direct or nginx in the same cell; +p50 is the p50 added to direct's;")
	fmt.Println("   µs CPU/req is the proxy process's CPU time (nginx: master and workers) per request; calls/req: upstream calls per request (coalescing);")
	fmt.Println("   go proxy: a bare httputil.ReverseProxy process (the floor of a Go proxy here);")
	fmt.Println("   rows marked mif=128 run the embedding server with --max-in-flight 128 --max-queue 1024, the others with --max-in-flight 1000.")
	printSched(rows)
	printTargets(rows, nginx != nil)
	printMarkdown(rows, nginx != nil)
}

type matrixRow struct {
	clients       int
	mif           string
	up, client    string
	direct, nginx cell
	goproxy, es   cell
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (r matrixRow) label() string {
	l := fmt.Sprintf("%d\t%s\t%s\t", r.clients, r.up, r.client)
	if r.mif == "128" {
		return l + "mif=128"
	}
	return l
}

func notOK(cs ...cell) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, fmt.Sprint(c.res.Requests-c.res.OK))
	}
	return strings.Join(parts, "/")
}

// mdClients is the client count as the markdown tables name it.
func (r matrixRow) mdClients() string {
	if r.mif == "128" {
		return fmt.Sprintf("%d (mif 128)", r.clients)
	}
	return fmt.Sprint(r.clients)
}

func (r matrixRow) line() string {
	d, n, g, e := r.direct.res, r.nginx.res, r.goproxy.res, r.es.res
	return fmt.Sprintf("%s\t%.0f\t%s\t\t%.3f\t%s\t%.0f\t\t%.3f\t%s\t%.0f\t\t%.3f\t%.3f\t%s\t%.0f\t%.2f\t%.3f\t%s\t",
		r.label(), d.Throughput(), ms(d.P50),
		ratio(n.Throughput(), d.Throughput()), ms(n.P50-d.P50), r.nginx.perReq(r.nginx.proxy.cpu),
		ratio(g.Throughput(), d.Throughput()), ms(g.P50-d.P50), r.goproxy.perReq(r.goproxy.proxy.cpu),
		ratio(e.Throughput(), d.Throughput()), ratio(e.Throughput(), n.Throughput()), ms(e.P50-d.P50),
		r.es.perReq(r.es.proxy.cpu), ratio(r.es.perReq(r.es.proxy.cpu), r.nginx.perReq(r.nginx.proxy.cpu)),
		float64(r.es.upCalls)/float64(max(e.Requests, 1)), notOK(r.direct, r.nginx, r.goproxy, r.es))
}

// printSched shows, per request and for each process of each path, what the
// scheduler accounted: µs on a CPU, µs runnable but waiting for a CPU, and
// slices (times a thread was put on a CPU: wake-ups and preemptions). On two
// cores shared by the load generator, the proxy and the upstream, the waits
// are latency that no profile of one process shows.
func printSched(rows []matrixRow) {
	fmt.Println("\n   per request, each process: µs on CPU / µs waiting for a CPU / slices (client = the load generator, this process):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tupstream\tclient\t\tdirect: client\tupstream\t\tnginx: client\tnginx\tupstream\t\tgo proxy: client\tproxy\tupstream\t\tembedserver: client\tembedserver\tupstream\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\t%s\t%s\t%s\t\t%s\t%s\t%s\t\t%s\t%s\t%s\t\n", r.label(),
			r.direct.sched(r.direct.client), r.direct.sched(r.direct.up),
			r.nginx.sched(r.nginx.client), r.nginx.sched(r.nginx.proxy), r.nginx.sched(r.nginx.up),
			r.goproxy.sched(r.goproxy.client), r.goproxy.sched(r.goproxy.proxy), r.goproxy.sched(r.goproxy.up),
			r.es.sched(r.es.client), r.es.sched(r.es.proxy), r.es.sched(r.es.up))
	}
	_ = tw.Flush()
}

// printTargets marks each target of the proxy matrix (docs/embedserver.md) met
// or not met, from this run.
func printTargets(rows []matrixRow, haveNginx bool) {
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT MET"
	}
	fmt.Println("\n   targets (this run):")
	for _, r := range rows {
		d, n, e := r.direct.res, r.nginx.res, r.es.res
		if r.clients == 100 && r.up == "float" && r.client == "float" && r.mif == "1000" {
			fmt.Printf("   100 clients, float upstream, float clients: throughput %.3f x direct (>= 0.95: %s)", ratio(e.Throughput(), d.Throughput()),
				mark(ratio(e.Throughput(), d.Throughput()) >= 0.95))
			if haveNginx {
				fmt.Printf(", %.3f x nginx (>= 1: %s)", ratio(e.Throughput(), n.Throughput()), mark(e.Throughput() >= n.Throughput()))
			}
			fmt.Printf("; added p50 %s (< 2ms: %s)\n", ms(e.P50-d.P50), mark(e.P50-d.P50 < 2*time.Millisecond))
			g := r.goproxy.res
			fmt.Printf("     (floor of a Go proxy in the same cell: a bare httputil.ReverseProxy, %.3f x direct, added p50 %s)\n",
				ratio(g.Throughput(), d.Throughput()), ms(g.P50-d.P50))
		}
		if r.clients == 1000 && r.mif == "1000" && haveNginx {
			fmt.Printf("   1,000 clients, %s upstream, %s clients, --max-in-flight 1000: throughput %.3f x nginx (>= 1: %s)\n", r.up, r.client,
				ratio(e.Throughput(), n.Throughput()), mark(e.Throughput() >= n.Throughput()))
		}
	}
	if haveNginx {
		worst, where := 0.0, ""
		for _, r := range rows {
			if q := ratio(r.es.perReq(r.es.proxy.cpu), r.nginx.perReq(r.nginx.proxy.cpu)); q > worst {
				worst, where = q, fmt.Sprintf("%d clients, %s upstream, %s clients, mif %s", r.clients, r.up, r.client, r.mif)
			}
		}
		fmt.Printf("   CPU per request <= 2 x nginx's in every cell: worst %.2f x (%s): %s\n", worst, where, mark(worst <= 2))
	}
}

// printMarkdown prints the table for docs/embedserver.md.
func printMarkdown(rows []matrixRow, haveNginx bool) {
	fmt.Println("\n   markdown for docs/embedserver.md:")
	fmt.Println("| clients | upstream | client | direct rps | nginx / direct | Go proxy / direct | embedserver / direct | embedserver / nginx | added p50 nginx | added p50 Go proxy | added p50 embedserver | CPU µs/req nginx | CPU µs/req Go proxy | CPU µs/req embedserver | upstream calls/req |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		d, n, g, e := r.direct.res, r.nginx.res, r.goproxy.res, r.es.res
		nr, enr, np50, ncpu := "skipped", "skipped", "", ""
		if haveNginx {
			nr, enr = fmt.Sprintf("%.2f", ratio(n.Throughput(), d.Throughput())), fmt.Sprintf("%.2f", ratio(e.Throughput(), n.Throughput()))
			np50, ncpu = ms(n.P50-d.P50), fmt.Sprintf("%.0f", r.nginx.perReq(r.nginx.proxy.cpu))
		}
		fmt.Printf("| %s | %s | %s | %.0f | %s | %.2f | %.2f | %s | %s | %s | %s | %s | %.0f | %.0f | %.2f |\n", r.mdClients(), r.up, r.client, d.Throughput(), nr,
			ratio(g.Throughput(), d.Throughput()), ratio(e.Throughput(), d.Throughput()), enr, np50, ms(g.P50-d.P50), ms(e.P50-d.P50),
			ncpu, r.goproxy.perReq(r.goproxy.proxy.cpu), r.es.perReq(r.es.proxy.cpu), float64(r.es.upCalls)/float64(max(e.Requests, 1)))
	}
	fmt.Println("\n   markdown, the scheduler's view per request (µs on CPU / µs waiting for a CPU / slices), whole path = client + proxy + upstream:")
	fmt.Println("| clients | upstream | client | direct: whole path | nginx: nginx | nginx: whole path | Go proxy: proxy | Go proxy: whole path | embedserver: embedserver | embedserver: whole path |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.mdClients(), r.up, r.client, r.direct.sched(r.direct.whole()),
			r.nginx.sched(r.nginx.proxy), r.nginx.sched(r.nginx.whole()), r.goproxy.sched(r.goproxy.proxy), r.goproxy.sched(r.goproxy.whole()),
			r.es.sched(r.es.proxy), r.es.sched(r.es.whole()))
	}
}

// upstreamCalls reads the fake upstream's call counter.
func upstreamCalls(addr string) int64 {
	resp, err := http.Get("http://" + addr + "/stats")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		Calls int64 `json:"calls"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return st.Calls
}
