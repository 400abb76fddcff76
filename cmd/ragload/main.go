// Command ragload validates an embedding deployment: it runs a matrix of
// concurrency levels against an OpenAI-compatible embeddings URL and prints, per
// level, requests, ok, shed (429/503), errors, timeouts (504), latency and "hung"
// — requests with no answer within the deadline plus a margin. It exits 1 when
// anything hung, when the error or shed rate passes its limit, or when no
// request succeeded (see usage).
//
// With --service NAME [-n NS] it sends to the ready pods of a Kubernetes
// Service instead (a RAGService's Service, or any other), resolved from its
// EndpointSlices and followed as pods come and go, and prints the results per
// track and per pod next to the matrix. It must run where pod IPs route: in the
// cluster, or on the local cluster's host.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/version"
)

// usage is ragload's help text around the flag list.
const (
	usageHead = `ragload validates an embedding deployment: it runs a matrix of concurrency
levels against an OpenAI-compatible embeddings endpoint (--url) or the ready
pods of a Kubernetes Service (--service), and prints per level the requests,
ok, shed (429/503), errors, timeouts (504), latency and hung requests (no
answer within --deadline plus --margin).

Usage:
  ragload [--url URL | --service NAME [-n NAMESPACE]] [flags]

Flags:
`
	usageTail = `
Exit codes:
  0  every check passed
  1  a request hung; the error rate (errors and 504s over all requests, all
     levels) passed --max-error-rate; the shed rate (429 and 503) passed
     --max-shed-rate; no request succeeded; or --service could not be resolved
  2  bad flags or arguments

Environment:
  RAGLOAD_API_KEY  sent as "Authorization: Bearer <key>" when set
  KUBECONFIG       the kubeconfig of --service (unless --kubeconfig names one)
`
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ragload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "server base URL (the embeddings path is added unless the URL ends with it)")
	levels := fs.String("levels", "1,3,5,10,100", "comma-separated concurrency levels")
	duration := fs.Duration("duration", 10*time.Second, "how long each level runs (when --requests is 0)")
	requests := fs.Int("requests", 0, "requests per level instead of a duration")
	deadline := fs.Duration("deadline", 30*time.Second, "the server's request timeout")
	margin := fs.Duration("margin", 5*time.Second, "extra wait past --deadline before a request counts as hung")
	inputs := fs.Int("inputs", 1, "inputs per request")
	text := fs.String("text", "How do I configure a canary rollout for the embedding service?", "text of each input")
	model := fs.String("model", "", "model to request (empty: the server's)")
	encoding := fs.String("encoding-format", "float", "float or base64")
	service := fs.String("service", "", "send to the ready pods of this Service (its EndpointSlices) instead of --url")
	var namespace string
	fs.StringVar(&namespace, "namespace", "", "namespace of --service (default: the kubeconfig context's)")
	fs.StringVar(&namespace, "n", "", "short for --namespace")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file for --service (default: $KUBECONFIG or ~/.kube/config)")
	kubeContext := fs.String("context", "", "kubeconfig context for --service")
	refresh := fs.Duration("refresh", time.Second, "with --service, how often the endpoints are resolved again")
	maxErrorRate := fs.Float64("max-error-rate", 0.01, "fail (exit 1) when errors and 504s exceed this share of all requests")
	maxShedRate := fs.Float64("max-shed-rate", 1, "fail (exit 1) when 429s and 503s exceed this share of all requests (1: never)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), usageTail)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "ragload", version.Version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ragload: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *maxErrorRate < 0 || *maxErrorRate > 1 || *maxShedRate < 0 || *maxShedRate > 1 {
		fmt.Fprintln(stderr, "ragload: --max-error-rate and --max-shed-rate must be in [0,1]")
		return 2
	}
	urlSet := false
	fs.Visit(func(f *flag.Flag) { urlSet = urlSet || f.Name == "url" })
	if *service != "" && urlSet {
		fmt.Fprintln(stderr, "ragload: --url and --service exclude each other")
		return 2
	}
	if *service == "" && (namespace != "" || *kubeconfig != "" || *kubeContext != "") {
		fmt.Fprintln(stderr, "ragload: --namespace, --kubeconfig and --context go with --service")
		return 2
	}
	if *refresh <= 0 {
		fmt.Fprintln(stderr, "ragload: --refresh must be positive")
		return 2
	}
	var lv []int
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(stderr, "ragload: bad level %q in --levels\n", f)
			return 2
		}
		lv = append(lv, n)
	}
	if *inputs < 1 || *deadline <= 0 || *margin < 0 || (*requests <= 0 && *duration <= 0) {
		fmt.Fprintln(stderr, "ragload: --inputs, --deadline and --duration or --requests must be positive")
		return 2
	}
	target := strings.TrimSuffix(*url, "/")
	if !strings.HasSuffix(target, "/embeddings") {
		target += "/v1/embeddings"
	}
	in := make([]string, *inputs)
	for i := range in {
		in[i] = *text
	}
	body, _ := json.Marshal(map[string]any{"input": in, "model": *model, "encoding_format": *encoding})
	if *model == "" {
		body, _ = json.Marshal(map[string]any{"input": in, "encoding_format": *encoding})
	}
	header := http.Header{}
	if key := getenv("RAGLOAD_API_KEY"); key != "" {
		header.Set("Authorization", "Bearer "+key)
	}

	var endpoints *loadgen.Endpoints
	if *service != "" {
		var err error
		if endpoints, namespace, err = followService(ctx, *kubeconfig, *kubeContext, namespace, *service, *refresh); err != nil {
			fmt.Fprintln(stderr, "ragload:", err)
			return 1
		}
		defer endpoints.Stop()
		target = fmt.Sprintf("service %s/%s, %s", namespace, *service, describeEndpoints(endpoints.Current()))
	}

	fmt.Fprintf(stdout, "ragload: %s, levels %v, %s per level, deadline %v + margin %v\n", target, lv, perLevel(*requests, *duration), *deadline, *margin)
	var results []loadgen.Result
	hung := 0
	for _, n := range lv {
		if ctx.Err() != nil {
			break
		}
		cfg := loadgen.Config{URL: target, Concurrency: n, Duration: *duration, Requests: *requests,
			Deadline: *deadline, Margin: *margin, Body: body, Header: header}
		if endpoints != nil {
			cfg.Targets = endpoints
		}
		r := loadgen.Run(ctx, cfg)
		results = append(results, r)
		hung += r.Hung
		if r.FirstError != "" {
			fmt.Fprintf(stderr, "ragload: %d clients: first error: %s\n", n, r.FirstError)
		}
		if r.NoTarget > 0 {
			fmt.Fprintf(stderr, "ragload: %d clients: %d times no ready endpoint (those requests were not sent)\n", n, r.NoTarget)
		}
	}
	loadgen.Print(stdout, results)
	if endpoints != nil {
		ready := map[string]bool{}
		for _, t := range endpoints.Current() {
			ready[t.Pod] = true
		}
		fmt.Fprintln(stdout, "\nby track:")
		loadgen.PrintTracks(stdout, results)
		fmt.Fprintln(stdout, "\nby pod, all levels (endpoint: ready now, or gone):")
		loadgen.PrintPods(stdout, results, func(pod string) bool { return ready[pod] })
		fmt.Fprintln(stdout)
	}
	failures := verdict(results, *deadline+*margin, *maxErrorRate, *maxShedRate)
	for _, f := range failures {
		fmt.Fprintln(stdout, "FAIL:", f)
	}
	if len(failures) > 0 {
		return 1
	}
	fmt.Fprintf(stdout, "OK: no request hung, error rate within %v, shed rate within %v\n", *maxErrorRate, *maxShedRate)
	return 0
}

// verdict lists what failed over all levels: hung requests, an error or shed
// rate past its limit, or not one success. Empty: the deployment passed.
func verdict(results []loadgen.Result, wait time.Duration, maxErrorRate, maxShedRate float64) []string {
	var total loadgen.Counts
	for _, r := range results {
		total.Requests += r.Requests
		total.OK += r.OK
		total.Shed += r.Shed
		total.Errors += r.Errors
		total.Timeouts += r.Timeouts
		total.Hung += r.Hung
	}
	var out []string
	if total.Hung > 0 {
		out = append(out, fmt.Sprintf("%d request(s) hung (no answer within %v)", total.Hung, wait))
	}
	if total.OK == 0 {
		out = append(out, fmt.Sprintf("no request succeeded (%d sent)", total.Requests))
	}
	if total.Requests == 0 {
		return out
	}
	if rate := float64(total.Errors+total.Timeouts) / float64(total.Requests); rate > maxErrorRate {
		out = append(out, fmt.Sprintf("error rate %.4f (%d errors and %d timeouts of %d requests) > --max-error-rate %v", rate, total.Errors, total.Timeouts, total.Requests, maxErrorRate))
	}
	if rate := float64(total.Shed) / float64(total.Requests); rate > maxShedRate {
		out = append(out, fmt.Sprintf("shed rate %.4f (%d of %d requests) > --max-shed-rate %v", rate, total.Shed, total.Requests, maxShedRate))
	}
	return out
}

// followService resolves the Service's ready endpoints and keeps following
// them until ctx ends.
func followService(ctx context.Context, kubeconfig, kubeContext, namespace, service string, refresh time.Duration) (*loadgen.Endpoints, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	if namespace == "" {
		ns, _, err := cc.Namespace()
		if err != nil {
			return nil, "", fmt.Errorf("namespace from the kubeconfig: %w", err)
		}
		namespace = ns
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	if err := discoveryv1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	// The RAGService's status says which revision is stable and which the canary.
	if err := ragv1.AddToScheme(scheme); err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: service}, &corev1.Service{}); err != nil {
		return nil, "", fmt.Errorf("service %s/%s: %w", namespace, service, err)
	}
	eps, err := loadgen.FollowEndpoints(ctx, c, namespace, service, refresh)
	if err != nil {
		return nil, "", err
	}
	if len(eps.Current()) == 0 {
		eps.Stop()
		return nil, "", fmt.Errorf("service %s/%s has no ready endpoints", namespace, service)
	}
	return eps, namespace, nil
}

// describeEndpoints says what the first resolution found, by track.
func describeEndpoints(ts []loadgen.Target) string {
	byTrack := map[string]int{}
	for _, t := range ts {
		byTrack[t.Track]++
	}
	var parts []string
	for _, track := range slices.Sorted(maps.Keys(byTrack)) {
		parts = append(parts, fmt.Sprintf("%s %d", track, byTrack[track]))
	}
	return fmt.Sprintf("%d ready endpoints (%s)", len(ts), strings.Join(parts, ", "))
}

func perLevel(requests int, d time.Duration) string {
	if requests > 0 {
		return fmt.Sprintf("%d requests", requests)
	}
	return d.String()
}
