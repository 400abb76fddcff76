package embedbench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
	matrixCell    = 4 * time.Second
	upstreamBase  = 20 * time.Millisecond
	upstreamInput = 50 * time.Microsecond // a model's work grows with the batch
	matrixDims    = 384
)

var matrixLevels = []int{1, 10, 100, 1000}

// upstreamKind names the two fake upstreams.
type upstreamKind struct{ name, encoding string }

var upstreamKinds = []upstreamKind{{"float", "float"}, {"base64", ""}}

type clientKind struct{ name, body string }

var clientKinds = []clientKind{
	{"float", `{"input":"How do I roll back a canary of the embedding service?","model":"fake-embedding"}`},
	{"base64", `{"input":"How do I roll back a canary of the embedding service?","model":"fake-embedding","encoding_format":"base64"}`},
}

// cell is one measured run.
type cell struct {
	res                     loadgen.Result
	proxyCPU, upCPU, client time.Duration // CPU time of each process during the run
	upCalls                 int64
}

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

func (p *process) cpu() time.Duration { return treeCPU(p.cmd.Process.Pid) }

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

// treeCPU is the CPU time of pid and its children (nginx's workers).
func treeCPU(pid int) time.Duration {
	total := cpuTime(pid)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
		if len(f) > 1 && f[1] == fmt.Sprint(pid) {
			total += cpuTime(atoi(e.Name()))
		}
	}
	return total
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// selfCPU is this process's CPU time: the load generator's.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
			es[key] = start(b, "embedserver", exec.Command(esBin, "--addr", addr, "--admin-addr", admin, "--provider", "openai",
				"--model", "fake-embedding", "--upstream-url", "http://"+upAddr[k.name]+"/v1", "--max-in-flight", lim[0], "--max-queue", lim[1],
				"--log-level", "error", "--pprof"), "http://"+admin+"/readyz")
		}
	}
	var nginx *process
	var nginxAddr map[string]string
	nginxBin, skip := nginxBinary()
	if skip == "" {
		nginx, nginxAddr = startNginx(b, nginxBin, upAddr)
	}

	measure := func(url string, clients int, body string, proxy *process, up string) cell {
		upStats := upstreamCalls(upAddr[up])
		p0, u0, c0 := time.Duration(0), ups[up].cpu(), selfCPU()
		if proxy != nil {
			p0 = proxy.cpu()
		}
		r := loadgen.Run(context.Background(), loadgen.Config{URL: url + "/v1/embeddings", Concurrency: clients, Duration: matrixCell,
			Deadline: 30 * time.Second, Margin: 5 * time.Second, Body: []byte(body)})
		c := cell{res: r, upCPU: ups[up].cpu() - u0, client: selfCPU() - c0, upCalls: upstreamCalls(upAddr[up]) - upStats}
		if proxy != nil {
			c.proxyCPU = proxy.cpu() - p0
		}
		return c
	}

	fmt.Printf("\n== proxy matrix: fake upstream %v + %v per input, %d dims, %v per cell, load average %s ==\n",
		upstreamBase, upstreamInput, matrixDims, matrixCell, loadavg())
	if skip != "" {
		fmt.Println("   " + skip)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tupstream\tclient\t\tdirect rps\tp50\t\tnginx/direct\t+p50\tµs CPU/req\t\tembedserver/direct\t/nginx\t+p50\tµs CPU/req\t/nginx\tcalls/req\tnot 200\t")
	var rows []matrixRow
	for _, clients := range append(matrixLevels, -1000) {
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
	fmt.Println("   rows marked mif=128 run the embedding server with --max-in-flight 128 --max-queue 1024, the others with --max-in-flight 1000.")
	printCPU(rows)
	printTargets(rows, nginx != nil)
	printMarkdown(rows, nginx != nil)
}

type matrixRow struct {
	clients       int
	mif           string
	up, client    string
	direct, nginx cell
	es            cell
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

func (r matrixRow) line() string {
	d, n, e := r.direct.res, r.nginx.res, r.es.res
	return fmt.Sprintf("%s\t%.0f\t%s\t\t%.3f\t%s\t%.0f\t\t%.3f\t%.3f\t%s\t%.0f\t%.2f\t%.3f\t%s\t",
		r.label(), d.Throughput(), ms(d.P50),
		ratio(n.Throughput(), d.Throughput()), ms(n.P50-d.P50), r.nginx.perReq(r.nginx.proxyCPU),
		ratio(e.Throughput(), d.Throughput()), ratio(e.Throughput(), n.Throughput()), ms(e.P50-d.P50),
		r.es.perReq(r.es.proxyCPU), ratio(r.es.perReq(r.es.proxyCPU), r.nginx.perReq(r.nginx.proxyCPU)),
		float64(r.es.upCalls)/float64(max(e.Requests, 1)), notOK(r.direct, r.nginx, r.es))
}

// printCPU shows CPU time per request of every process, for each path.
func printCPU(rows []matrixRow) {
	fmt.Println("\n   CPU µs per request of each process (client = the load generator, this process):")
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\tupstream\tclient\t\tdirect: client\tupstream\t\tnginx: client\tnginx\tupstream\t\tembedserver: client\tembedserver\tupstream\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t\t%.0f\t%.0f\t%.0f\t\t%.0f\t%.0f\t%.0f\t\n", r.label(),
			r.direct.perReq(r.direct.client), r.direct.perReq(r.direct.upCPU),
			r.nginx.perReq(r.nginx.client), r.nginx.perReq(r.nginx.proxyCPU), r.nginx.perReq(r.nginx.upCPU),
			r.es.perReq(r.es.client), r.es.perReq(r.es.proxyCPU), r.es.perReq(r.es.upCPU))
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
		}
		if r.clients == 1000 && r.mif == "1000" && haveNginx {
			fmt.Printf("   1,000 clients, %s upstream, %s clients, --max-in-flight 1000: throughput %.3f x nginx (>= 1: %s)\n", r.up, r.client,
				ratio(e.Throughput(), n.Throughput()), mark(e.Throughput() >= n.Throughput()))
		}
	}
	if haveNginx {
		worst, where := 0.0, ""
		for _, r := range rows {
			if q := ratio(r.es.perReq(r.es.proxyCPU), r.nginx.perReq(r.nginx.proxyCPU)); q > worst {
				worst, where = q, fmt.Sprintf("%d clients, %s upstream, %s clients, mif %s", r.clients, r.up, r.client, r.mif)
			}
		}
		fmt.Printf("   CPU per request <= 2 x nginx's in every cell: worst %.2f x (%s): %s\n", worst, where, mark(worst <= 2))
	}
}

// printMarkdown prints the table for docs/embedserver.md.
func printMarkdown(rows []matrixRow, haveNginx bool) {
	fmt.Println("\n   markdown for docs/embedserver.md:")
	fmt.Println("| clients | upstream | client | direct rps | nginx / direct | embedserver / direct | embedserver / nginx | added p50 nginx | added p50 embedserver | CPU µs/req nginx | CPU µs/req embedserver | upstream calls/req |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		d, n, e := r.direct.res, r.nginx.res, r.es.res
		clients := fmt.Sprint(r.clients)
		if r.mif == "128" {
			clients += " (mif 128)"
		}
		nr, enr, np50, ncpu := "skipped", "skipped", "", ""
		if haveNginx {
			nr, enr = fmt.Sprintf("%.2f", ratio(n.Throughput(), d.Throughput())), fmt.Sprintf("%.2f", ratio(e.Throughput(), n.Throughput()))
			np50, ncpu = ms(n.P50-d.P50), fmt.Sprintf("%.0f", r.nginx.perReq(r.nginx.proxyCPU))
		}
		fmt.Printf("| %s | %s | %s | %.0f | %s | %.2f | %s | %s | %s | %s | %.0f | %.2f |\n", clients, r.up, r.client, d.Throughput(), nr,
			ratio(e.Throughput(), d.Throughput()), enr, np50, ms(e.P50-d.P50), ncpu, r.es.perReq(r.es.proxyCPU),
			float64(r.es.upCalls)/float64(max(e.Requests, 1)))
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
