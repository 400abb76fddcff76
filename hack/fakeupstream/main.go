// Command fakeupstream serves a fake OpenAI-compatible embeddings API with chosen
// faults, for trying the embedding server and ragload without a real provider.
// GET /stats shows the counters.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ragops/rag-operator/internal/fakeupstream"
)

func main() {
	var cfg fakeupstream.Config
	addr := flag.String("addr", "127.0.0.1:8181", "listen address")
	flag.DurationVar(&cfg.Latency.Base, "latency", 20*time.Millisecond, "base latency of every call")
	flag.DurationVar(&cfg.Latency.PerInput, "per-input-latency", 0, "extra latency per input of a call")
	flag.DurationVar(&cfg.Latency.Jitter, "jitter", 0, "uniform extra latency in [0, jitter)")
	flag.Float64Var(&cfg.Latency.TailProb, "tail-prob", 0, "fraction of calls that also wait --tail")
	flag.DurationVar(&cfg.Latency.Tail, "tail", 0, "extra latency of the slow fraction")
	flag.Float64Var(&cfg.ErrorRate, "error-rate", 0, "fraction of calls answered 500")
	flag.Float64Var(&cfg.RateLimitRate, "rate-limit-rate", 0, "fraction of calls answered 429")
	flag.DurationVar(&cfg.RetryAfter, "retry-after", time.Second, "Retry-After of the 429s")
	flag.Float64Var(&cfg.HangRate, "hang-rate", 0, "fraction of calls never answered")
	flag.IntVar(&cfg.Dims, "dims", 384, "vector size when a request names no dimensions")
	flag.IntVar(&cfg.MaxBatch, "max-batch", 0, "inputs per call above which it answers 400 (0: no limit)")
	flag.StringVar(&cfg.APIKey, "api-key", "", "require this bearer token")
	flag.IntVar(&cfg.RequestsPerMinute, "requests-per-minute", 0, "an OpenAI-like budget of calls a minute, enforced per second, reported in x-ratelimit-* headers, 429 rate_limit_exceeded with Retry-After beyond (0: none)")
	flag.BoolVar(&cfg.QuotaExhausted, "quota-exhausted", false, "answer every call 429 insufficient_quota, as an account out of credit")
	flag.StringVar(&cfg.Encoding, "encoding", fakeupstream.EncodingAsAsked, "answer encoding: empty to honour encoding_format (as OpenAI), float to answer float arrays always (as Ollama, LocalAI, some TEI versions)")
	flag.Parse()

	up := fakeupstream.New(cfg)
	srv := &http.Server{Addr: *addr, Handler: up, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		up.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Fprintf(os.Stderr, "fakeupstream listening on %s\n", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
