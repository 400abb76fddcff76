// Command embedserver is the bounded-concurrency, OpenAI-compatible embedding
// server that the ragops operator deploys. See docs/embedserver.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

type options struct {
	addr, adminAddr, providerName, model, upstreamURL, logLevel  string
	dimensions, maxInFlight, maxQueue, maxBatchSize              int
	maxAttempts, maxInputs                                       int
	requestTimeout, queueTimeout, upstreamTimeout                time.Duration
	initialBackoff, drainTimeout, drainDelay, linger, retryAfter time.Duration
	maxBodyBytes                                                 int64
	failRate                                                     float64
	pprof                                                        bool
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("embedserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", ":8080", "API listen address (POST /v1/embeddings, GET /v1/models)")
	fs.StringVar(&o.adminAddr, "admin-addr", ":9090", "admin listen address (/healthz, /readyz, /metrics); never behind the limiter")
	fs.StringVar(&o.providerName, "provider", "builtin", "builtin (hash-<dims>, no network) or openai (any OpenAI-compatible upstream)")
	fs.StringVar(&o.model, "model", "", "model served: hash-<dims> for builtin (default hash-384), the upstream's model name for openai")
	fs.IntVar(&o.dimensions, "dimensions", 0, "vector size when a request names none (0: the model's own)")
	fs.StringVar(&o.upstreamURL, "upstream-url", "", "openai: upstream base URL including /v1")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 8, "requests running at once")
	fs.IntVar(&o.maxQueue, "max-queue", 32, "requests waiting for a slot; beyond it 429")
	fs.IntVar(&o.maxBatchSize, "max-batch-size", 64, "openai: inputs per upstream call (larger requests are split, small ones coalesced)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 30*time.Second, "whole-request deadline, queue wait included; 504 past it")
	fs.DurationVar(&o.queueTimeout, "queue-timeout", 5*time.Second, "longest wait for a slot; 503 past it")
	fs.DurationVar(&o.upstreamTimeout, "upstream-timeout", 10*time.Second, "openai: timeout of one upstream attempt")
	fs.IntVar(&o.maxAttempts, "max-attempts", 3, "openai: upstream attempts per call, first included")
	fs.DurationVar(&o.initialBackoff, "initial-backoff", 100*time.Millisecond, "openai: backoff before the first retry; doubles, with jitter")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, longest wait for requests in flight")
	fs.DurationVar(&o.drainDelay, "drain-delay", 3*time.Second, "on SIGTERM, keep answering (503 draining, with Retry-After) at least this long, so clients still routed here by a stale endpoint list get an answer; capped by --drain-timeout")
	fs.Int64Var(&o.maxBodyBytes, "max-body-bytes", 4<<20, "request body limit; 413 beyond")
	fs.IntVar(&o.maxInputs, "max-inputs", 2048, "inputs per request; 413 beyond")
	fs.DurationVar(&o.linger, "coalesce-linger", openai.DefaultLinger, "openai: the most a small request waits for others to share an upstream call while one is in flight; the wait is 1/80 of the recent upstream latency, at least 100µs, at most this (negative: never wait)")
	fs.DurationVar(&o.retryAfter, "retry-after", time.Second, "Retry-After sent with 429 and 503")
	fs.Float64Var(&o.failRate, "fail-rate", 0, "DRILL ONLY: fraction of requests answered 500 on purpose (fault injection)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go profiles at /debug/pprof/ on the admin port")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.failRate < 0 || o.failRate > 1 {
		return o, fmt.Errorf("--fail-rate must be in [0,1], not %v", o.failRate)
	}
	if o.maxInFlight < 1 || o.maxQueue < 0 || o.maxBatchSize < 1 || o.maxAttempts < 1 || o.maxInputs < 1 || o.maxBodyBytes < 1 {
		return o, errors.New("--max-in-flight, --max-batch-size, --max-attempts, --max-inputs and --max-body-bytes must be positive, --max-queue not negative")
	}
	for name, d := range map[string]time.Duration{"request-timeout": o.requestTimeout, "queue-timeout": o.queueTimeout,
		"upstream-timeout": o.upstreamTimeout, "initial-backoff": o.initialBackoff, "drain-timeout": o.drainTimeout, "retry-after": o.retryAfter} {
		if d <= 0 {
			return o, fmt.Errorf("--%s must be positive", name)
		}
	}
	if o.drainDelay < 0 {
		return o, errors.New("--drain-delay must not be negative")
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "embedserver:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintln(stderr, "embedserver: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg := embedserver.Config{Model: o.model, Dimensions: o.dimensions, MaxInFlight: o.maxInFlight, MaxQueue: o.maxQueue,
		MaxInputs: o.maxInputs, MaxBodyBytes: o.maxBodyBytes, RequestTimeout: o.requestTimeout, QueueTimeout: o.queueTimeout,
		DrainTimeout: o.drainTimeout, DrainDelay: o.drainDelay, RetryAfter: o.retryAfter, Logger: log, Pprof: o.pprof}
	var srv *embedserver.Server
	var p provider.Provider
	switch o.providerName {
	case "builtin":
		if cfg.Model == "" {
			cfg.Model = "hash-384"
		}
		m, err := builtinmodel.Parse(cfg.Model)
		if err != nil {
			fmt.Fprintln(stderr, "embedserver: --model:", err)
			return 2
		}
		if o.dimensions > m.Dims {
			fmt.Fprintf(stderr, "embedserver: --dimensions %d is more than model %s has\n", o.dimensions, m.Name())
			return 2
		}
		p = builtinmodel.Provider{Model: m}
	case "openai":
		if cfg.Model == "" {
			fmt.Fprintln(stderr, "embedserver: --model is required with --provider openai")
			return 2
		}
		cfg.ProviderReportsBatches = true
		var obs openai.Observer
		client, err := openai.New(openai.Config{BaseURL: o.upstreamURL, APIKey: getenv("EMBEDSERVER_API_KEY"), Model: cfg.Model,
			MaxInFlight: o.maxInFlight, MaxBatchSize: o.maxBatchSize, AttemptTimeout: o.upstreamTimeout, MaxAttempts: o.maxAttempts,
			InitialBackoff: o.initialBackoff, Linger: o.linger,
			Observer: openai.Observer{
				Upstream: func(code string, d time.Duration) { obs.Upstream(code, d) },
				Retry:    func() { obs.Retry() },
				Batch:    func(n int) { obs.Batch(n) },
			}})
		if err != nil {
			fmt.Fprintln(stderr, "embedserver:", err)
			return 2
		}
		defer client.Close()
		p = client
		srv = embedserver.New(cfg, provider.FailRate(p, o.failRate, uint64(time.Now().UnixNano())))
		obs = openai.Observer{Upstream: srv.ObserveUpstream, Retry: srv.ObserveRetry, Batch: srv.ObserveBatch}
	default:
		fmt.Fprintf(stderr, "embedserver: --provider must be builtin or openai, not %q\n", o.providerName)
		return 2
	}
	if srv == nil {
		srv = embedserver.New(cfg, provider.FailRate(p, o.failRate, uint64(time.Now().UnixNano())))
	}

	apiLn, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintln(stderr, "embedserver:", err)
		return 1
	}
	adminLn, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		_ = apiLn.Close()
		fmt.Fprintln(stderr, "embedserver:", err)
		return 1
	}
	log.Info("serving", "version", version.Version, "addr", apiLn.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"provider", o.providerName, "model", cfg.Model, "upstream", redact(o.upstreamURL), "max_in_flight", o.maxInFlight, "max_queue", o.maxQueue,
		"request_timeout", o.requestTimeout, "queue_timeout", o.queueTimeout, "fail_rate", o.failRate)
	if err := srv.Run(ctx, apiLn, adminLn); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// redact drops user info from a URL before it is logged.
func redact(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "REDACTED" + u[i:]
		}
	}
	return u
}
