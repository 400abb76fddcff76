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

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/embedserver/serverflags"
	"github.com/ragops/rag-operator/internal/gctune"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := serverflags.Parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && o.Provider == contract.ProviderOpenAI {
		err = serverflags.ApplyStartShare(&o, getenv)
	}
	if err != nil {
		fmt.Fprintln(stderr, "embedserver:", err)
		return 2
	}
	if o.Version {
		fmt.Fprintln(stdout, "embedserver", version.Version)
		return 0
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.LogLevel}))

	// The metrics come first: the provider reports into them, the server serves them.
	metrics := embedserver.NewMetrics()
	var p provider.Provider
	var upstreamBudget *budget.Limiter
	switch o.Provider {
	case contract.ProviderBuiltin:
		m, err := builtinmodel.Parse(o.Model)
		if err != nil { // serverflags checked it
			fmt.Fprintln(stderr, "embedserver: --model:", err)
			return 2
		}
		p = builtinmodel.Provider{Model: m, Observer: metrics}
	case contract.ProviderOpenAI:
		client, err := openai.New(openai.Config{BaseURL: o.UpstreamURL, APIKey: getenv(contract.APIKeyEnv), Auth: o.UpstreamAuth, APIVersion: o.UpstreamAPIVer, Model: o.Model,
			MaxInFlight: o.MaxInFlight, MaxBatchSize: o.MaxBatchSize, AttemptTimeout: o.UpstreamTimeout, MaxAttempts: o.MaxAttempts,
			InitialBackoff: o.InitialBackoff, Linger: o.Linger, Observer: metrics,
			RequestsPerMinute: o.UpstreamRPM, TokensPerMinute: o.UpstreamTPM, MaxInputsPerCall: o.MaxInputsPerCall, MaxTokensPerCall: o.MaxTokensPerCall})
		if err != nil {
			fmt.Fprintln(stderr, "embedserver:", err)
			return 2
		}
		defer client.Close()
		upstreamBudget = client.Budget()
		metrics.WatchBudget(upstreamBudget)
		p = client
	}
	srv := embedserver.New(embedserver.Config{Model: o.Model, Dimensions: o.Dimensions, Space: o.Space, MaxInFlight: o.MaxInFlight, MaxQueue: o.MaxQueue,
		MaxInputs: o.MaxInputs, MaxBodyBytes: o.MaxBodyBytes, MaxPendingBytes: o.MaxPendingBytes, RequestTimeout: o.RequestTimeout, QueueTimeout: o.QueueTimeout,
		DrainTimeout: o.DrainTimeout, DrainDelay: o.DrainDelay, RetryAfter: o.RetryAfter, Metrics: metrics, Logger: log, Pprof: o.Pprof,
		Budget: upstreamBudget, BudgetToken: getenv(contract.BudgetTokenEnv)},
		provider.FailRate(p, o.FailRate, uint64(time.Now().UnixNano())))

	if gctune.Applies(getenv) {
		// The bodies the server may hold, and room for everything else.
		memBudget := uint64(o.MaxPendingBytes) + gcHeadroom
		go gctune.Run(ctx, memBudget, time.Second)
		log.Info("garbage collector tuned", "gogc", gctune.Percent, "memory_budget_bytes", memBudget)
	}

	apiLn, err := net.Listen("tcp", o.Addr)
	if err != nil {
		fmt.Fprintln(stderr, "embedserver:", err)
		return 1
	}
	adminLn, err := net.Listen("tcp", o.AdminAddr)
	if err != nil {
		_ = apiLn.Close()
		fmt.Fprintln(stderr, "embedserver:", err)
		return 1
	}
	log.Info("serving", "version", version.Version, "addr", apiLn.Addr().String(), "admin_addr", adminLn.Addr().String(),
		"provider", o.Provider, "model", o.Model, "space", o.Space, "upstream", redact(o.UpstreamURL), "max_in_flight", o.MaxInFlight, "max_queue", o.MaxQueue,
		"request_timeout", o.RequestTimeout, "queue_timeout", o.QueueTimeout, "fail_rate", o.FailRate)
	if err := srv.Run(ctx, apiLn, adminLn); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// gcHeadroom is the memory beyond --max-pending-bytes under which the
// collector runs at gctune.Percent: connections, buffers, metrics.
const gcHeadroom = 32 << 20

// redact drops user info from a URL before it is logged.
func redact(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "REDACTED" + u[i:]
		}
	}
	return u
}
