package platform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	// The manager registers its ragops_* collectors when this package loads,
	// on the registry its /metrics serves.
	_ "github.com/ragops/rag-operator/controllers"
	"github.com/ragops/rag-operator/internal/contract"
)

// family is one metric family a binary exposes.
type family struct {
	typ    string          // counter, gauge, histogram, summary, untyped; "" when registered but without a series yet
	labels map[string]bool // its own labels (le and quantile included)
}

// catalog is what one binary exposes, plus the labels Prometheus adds to each
// of its series when it scrapes it.
type catalog struct {
	binary       string
	families     map[string]family
	targetLabels []string
}

// seriesFamily names the family a series name belongs to: itself, or a
// histogram's _bucket/_sum/_count, or a summary's _sum/_count.
func (c *catalog) seriesFamily(name string) (string, bool) {
	if f, ok := c.families[name]; ok && f.typ != "histogram" && f.typ != "summary" {
		return name, true
	}
	for suffix, types := range map[string][]string{"_bucket": {"histogram"}, "_sum": {"histogram", "summary"}, "_count": {"histogram", "summary"}} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := c.families[base]; ok && slices.Contains(types, f.typ) {
			return base, true
		}
	}
	return "", false
}

// hasLabel says whether a series of the family can carry label l.
func (c *catalog) hasLabel(series, fam, l string) bool {
	if l == model.MetricNameLabel || slices.Contains(c.targetLabels, l) {
		return true
	}
	if l == model.BucketLabel {
		return strings.HasSuffix(series, "_bucket")
	}
	return c.families[fam].labels[l]
}

func fromExposition(binary string, text []byte, targetLabels []string) (*catalog, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("parsing the /metrics of %s: %w", binary, err)
	}
	c := &catalog{binary: binary, families: map[string]family{}, targetLabels: targetLabels}
	for name, mf := range fams {
		c.families[name] = familyOf(mf)
	}
	return c, nil
}

func familyOf(mf *dto.MetricFamily) family {
	f := family{typ: strings.ToLower(mf.GetType().String()), labels: map[string]bool{}}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			f.labels[lp.GetName()] = true
		}
	}
	return f
}

// Labels Prometheus attaches to every scraped series. For the embedding
// servers, those of the pod relabelling the PodMonitor (and the scrape config
// in config/prometheus) sets up, which the analysis' Prometheus provider also
// assumes; for the manager, those of a ServiceMonitor.
var (
	podTargetLabels     = []string{"job", "instance", "namespace", "pod", "container", "endpoint", "app_kubernetes_io_instance", "rag_ragops_io_revision"}
	serviceTargetLabels = []string{"job", "instance", "pod", "container", "endpoint", "service"}
)

var (
	catalogsOnce sync.Once
	catalogs     []*catalog
	catalogsErr  error
)

// exposedMetrics are the catalogs of the embedding server (read from the
// /metrics of the real binary, serving through a real upstream) and of the
// manager (its registered collectors; see managerCatalog).
func exposedMetrics(t *testing.T) []*catalog {
	t.Helper()
	catalogsOnce.Do(func() {
		var es, mgr *catalog
		if es, catalogsErr = embedserverCatalog(); catalogsErr != nil {
			return
		}
		if mgr, catalogsErr = managerCatalog(); catalogsErr != nil {
			return
		}
		catalogs = []*catalog{es, mgr}
	})
	if catalogsErr != nil {
		t.Fatal(catalogsErr)
	}
	return catalogs
}

var buildOnce sync.Map // package path -> *buildResult

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// buildBinary builds a main package of the module once per test run.
func buildBinary(pkg string) (string, error) {
	v, _ := buildOnce.LoadOrStore(pkg, &buildResult{})
	b := v.(*buildResult)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "platform-bin")
		if err != nil {
			b.err = err
			return
		}
		atExit(func() { _ = os.RemoveAll(dir) })
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	})
	return b.path, b.err
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// process is a binary running for the test, stopped by stop.
type process struct {
	cmd    *exec.Cmd
	output *bytes.Buffer
}

func startProcess(bin string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return &process{cmd: cmd, output: out}, nil
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// waitHTTP polls url until it answers 200, for at most 20 seconds.
func waitHTTP(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 20s (last: %v)", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// embedserverCatalog runs the embedserver binary with the openai provider in
// front of the fake upstream binary, sends it one embedding request (so the
// upstream's labelled series exist too) and reads its /metrics.
func embedserverCatalog() (*catalog, error) {
	es, err := buildBinary("./cmd/embedserver")
	if err != nil {
		return nil, err
	}
	up, err := buildBinary("./hack/fakeupstream")
	if err != nil {
		return nil, err
	}
	upAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	upstream, err := startProcess(up, "--addr", upAddr, "--latency", "1ms", "--dims", "8")
	if err != nil {
		return nil, err
	}
	defer upstream.stop()
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	adminAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	server, err := startProcess(es, "--addr", apiAddr, "--admin-addr", adminAddr, "--provider", "openai",
		"--upstream-url", "http://"+upAddr+"/v1", "--model", "fake-embedding", "--drain-delay", "0s", "--drain-timeout", "2s")
	if err != nil {
		return nil, err
	}
	defer server.stop()
	if err := waitHTTP("http://" + upAddr + "/stats"); err != nil {
		return nil, fmt.Errorf("fake upstream: %w\n%s", err, upstream.output)
	}
	if err := waitHTTP("http://" + adminAddr + "/readyz"); err != nil {
		return nil, fmt.Errorf("embedserver: %w\n%s", err, server.output)
	}
	resp, err := http.Post("http://"+apiAddr+"/v1/embeddings", "application/json", strings.NewReader(`{"input":["a first request"]}`))
	if err != nil {
		return nil, fmt.Errorf("embedding request: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("embedding request: %s: %s\n%s", resp.Status, body, server.output)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/metrics", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET /metrics: %w", err)
	}
	return fromExposition("embedserver", text, podTargetLabels)
}

var descName = regexp.MustCompile(`^Desc\{fqName: "([^"]+)".*variableLabels: \{([^}]*)\}\}$`)

// managerCatalog is what the manager's /metrics serves: controller-runtime's
// registry with the controllers package loaded, as cmd/manager runs it. A
// labelled family appears in an exposition only after its first use (a
// counter of rollbacks, before any rollback, has no series), so the names and
// labels come from every registered collector's description, and the types
// from what the registry gathers now; a family without a series yet has no
// type, and so no _bucket/_sum/_count either.
func managerCatalog() (*catalog, error) {
	c := &catalog{binary: "manager", families: map[string]family{}, targetLabels: serviceTargetLabels}
	descs := make(chan *prometheus.Desc)
	go func() {
		crmetrics.Registry.(prometheus.Collector).Describe(descs)
		close(descs)
	}()
	for d := range descs {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			return nil, fmt.Errorf("cannot read the description %s", d)
		}
		f := family{labels: map[string]bool{}}
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				f.labels[l] = true
			}
		}
		c.families[m[1]] = f
	}
	fams, err := crmetrics.Registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering the manager's metrics: %w", err)
	}
	for _, mf := range fams {
		f := familyOf(mf)
		for l := range c.families[mf.GetName()].labels {
			f.labels[l] = true
		}
		c.families[mf.GetName()] = f
	}
	if len(c.families) == 0 {
		return nil, fmt.Errorf("the manager registers no metrics")
	}
	return c, nil
}

// grafanaMacros are replaced by values of their kind before parsing: they are
// Grafana's, not PromQL.
var grafanaMacros = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

var grafanaVariable = regexp.MustCompile(`\$\{?\w+(:\w+)?\}?`)

// parsePromQL parses a query of the dashboard or the rules: Grafana's macros
// become durations and its variables (only ever inside =~ matchers here)
// match anything.
func parsePromQL(q string) (parser.Expr, error) {
	q = grafanaMacros.Replace(q)
	q = grafanaVariable.ReplaceAllString(q, ".+")
	return parser.ParseExpr(q)
}

// checkNames checks every selector of expr: the series it names is exposed
// by one of the binaries (or recorded by one of the rules, in recorded), and
// every label it matches on or groups by exists on that series.
func checkNames(expr parser.Expr, cats []*catalog, recorded map[string]bool) []string {
	var problems []string
	series := func(vs *parser.VectorSelector) (*catalog, string, bool) {
		for _, c := range cats {
			if fam, ok := c.seriesFamily(vs.Name); ok {
				return c, fam, true
			}
		}
		return nil, "", false
	}
	parser.Inspect(expr, func(node parser.Node, path []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name == "" {
			problems = append(problems, fmt.Sprintf("%s: a selector without a metric name", vs))
			return nil
		}
		c, fam, ok := series(vs)
		if !ok {
			if !recorded[vs.Name] {
				problems = append(problems, fmt.Sprintf("%s: no binary exposes %s and no rule records it", vs, vs.Name))
			}
			return nil
		}
		labels := map[string]bool{}
		for _, m := range vs.LabelMatchers {
			labels[m.Name] = true
		}
		// The labels of aggregations above this selector, up to a binary
		// operation or function that could bring labels of its own.
		for i := len(path) - 1; i >= 0; i-- {
			if agg, ok := path[i].(*parser.AggregateExpr); ok {
				if agg.Without {
					break
				}
				for _, l := range agg.Grouping {
					labels[l] = true
				}
				break
			}
			if _, ok := path[i].(*parser.BinaryExpr); ok {
				break
			}
		}
		var missing []string
		for l := range labels {
			if !c.hasLabel(vs.Name, fam, l) {
				missing = append(missing, l)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("%s: %s of %s has no label %s", vs, vs.Name, c.binary, strings.Join(missing, ", ")))
		}
		return nil
	})
	return problems
}

// Without a live scrape, every name check above would pass vacuously: the
// catalogs really hold the contract's metrics with their types.
func TestCatalogsHoldTheExposedMetrics(t *testing.T) {
	cats := exposedMetrics(t)
	// The contract's names (internal/contract), as the analysis reads them.
	want := map[string]string{
		contract.MetricRequests: "counter", contract.MetricRequestDuration: "histogram",
		contract.MetricInFlight: "gauge", contract.MetricQueueDepth: "gauge", contract.MetricShed: "counter",
		contract.MetricUpstreamRequests: "counter", contract.MetricUpstreamDuration: "histogram",
		contract.MetricUpstreamRetries: "counter", contract.MetricBatchSize: "histogram",
		contract.MetricMaxInFlight: "gauge", contract.MetricMaxQueue: "gauge",
	}
	for name, typ := range want {
		if f, ok := cats[0].families[name]; !ok || f.typ != typ {
			t.Errorf("embedserver /metrics: %s is %+v, want a %s", name, f, typ)
		}
	}
	for _, name := range []string{"ragops_rollouts_total", "ragops_rollout_step", "ragops_canary_weight_percent", "ragops_analysis_verdicts_total"} {
		if _, ok := cats[1].families[name]; !ok {
			t.Errorf("the manager registers no %s", name)
		}
	}
	if !cats[1].families["ragops_canary_weight_percent"].labels["kind"] {
		t.Errorf("ragops_canary_weight_percent has no label kind: %+v", cats[1].families["ragops_canary_weight_percent"])
	}
	// Histogram series are found through their family, and only for histograms.
	if fam, ok := cats[0].seriesFamily("embedserver_batch_size_bucket"); !ok || fam != "embedserver_batch_size" {
		t.Errorf("embedserver_batch_size_bucket resolves to %q, %v", fam, ok)
	}
	for _, bad := range []string{"embedserver_in_flight_bucket", "embedserver_requests_total_count", "embedserver_batch_size_total"} {
		if _, ok := cats[0].seriesFamily(bad); ok {
			t.Errorf("%s resolved to a family", bad)
		}
	}
}
