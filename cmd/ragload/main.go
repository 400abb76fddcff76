// Command ragload validates an embedding deployment: it runs a matrix of
// concurrency levels against an OpenAI-compatible embeddings URL and prints, per
// level, requests, ok, shed (429/503), errors, timeouts (504), latency and "hung"
// — requests with no answer within the deadline plus a margin. It exits 1 when
// anything hung.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ragops/rag-operator/internal/loadgen"
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
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
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

	fmt.Fprintf(stdout, "ragload: %s, levels %v, %s per level, deadline %v + margin %v\n", target, lv, perLevel(*requests, *duration), *deadline, *margin)
	var results []loadgen.Result
	hung := 0
	for _, n := range lv {
		if ctx.Err() != nil {
			break
		}
		r := loadgen.Run(ctx, loadgen.Config{URL: target, Concurrency: n, Duration: *duration, Requests: *requests,
			Deadline: *deadline, Margin: *margin, Body: body, Header: header})
		results = append(results, r)
		hung += r.Hung
		if r.FirstError != "" {
			fmt.Fprintf(stderr, "ragload: %d clients: first error: %s\n", n, r.FirstError)
		}
	}
	loadgen.Print(stdout, results)
	if hung > 0 {
		fmt.Fprintf(stdout, "FAIL: %d request(s) hung (no answer within %v)\n", hung, *deadline+*margin)
		return 1
	}
	fmt.Fprintln(stdout, "OK: no request hung")
	return 0
}

func perLevel(requests int, d time.Duration) string {
	if requests > 0 {
		return fmt.Sprintf("%d requests", requests)
	}
	return d.String()
}
