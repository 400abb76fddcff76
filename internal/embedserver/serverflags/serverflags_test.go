package serverflags

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ragops/rag-operator/internal/contract"
)

func TestDefaultsAreTheContract(t *testing.T) {
	got, err := Parse(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		Addr: ":8080", AdminAddr: ":9090", Provider: contract.ProviderBuiltin, Model: contract.DefaultBuiltinModel, UpstreamAuth: contract.UpstreamAuthBearer,
		MaxInFlight: contract.DefaultMaxInFlight, MaxQueue: contract.DefaultMaxQueue, MaxBatchSize: contract.DefaultMaxBatchSize,
		MaxAttempts: contract.DefaultMaxAttempts, MaxInputs: contract.DefaultMaxInputs, MaxBodyBytes: contract.DefaultMaxBodyBytes,
		MaxPendingBytes: contract.DefaultMaxPendingBytes, MaxInputsPerCall: contract.DefaultMaxInputsPerCall, MaxTokensPerCall: contract.DefaultMaxTokensPerCall,
		RequestTimeout: contract.DefaultRequestTimeout, QueueTimeout: contract.DefaultQueueTimeout, UpstreamTimeout: contract.DefaultUpstreamTimeout,
		InitialBackoff: contract.DefaultInitialBackoff, DrainTimeout: contract.DefaultDrainTimeout, DrainDelay: contract.DefaultDrainDelay,
		Linger: contract.DefaultCoalesceLinger, RetryAfter: contract.DefaultRetryAfter, LogLevel: slog.LevelInfo,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("defaults (-want +got):\n%s", diff)
	}
}

func TestParse(t *testing.T) {
	got, err := Parse([]string{"--provider=openai", "--model", "m", "--upstream-url=http://127.0.0.1:1/v1", "--max-queue=0",
		"--drain-timeout=0s", "--dimensions=12", "--log-level=debug", "--pprof", "--space=docs-v2", "--upstream-auth=azure-api-key", "--upstream-api-version=2024-10-21"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got.Provider != "openai" || got.Model != "m" || got.MaxQueue != 0 || got.DrainTimeout != 0 || got.Dimensions != 12 || got.Space != "docs-v2" ||
		got.LogLevel != slog.LevelDebug || !got.Pprof || got.UpstreamAuth != contract.UpstreamAuthAzureAPIKey || got.UpstreamAPIVer != "2024-10-21" {
		t.Fatalf("%+v", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown provider", []string{"--provider", "x"}, "--provider must be builtin or openai"},
		{"empty provider", []string{"--provider="}, "--provider must be builtin or openai"},
		{"bad builtin model", []string{"--model", "gpt"}, "want hash-<dims>"},
		{"dimensions over model", []string{"--model", "hash-8", "--dimensions", "9"}, "more than model"},
		{"negative dimensions", []string{"--dimensions=-1"}, "--dimensions must not be negative"},
		{"space with capitals", []string{"--space=V2"}, "--space \"V2\" must be a DNS label"},
		{"space ending in a dash", []string{"--space=v2-"}, "must be a DNS label"},
		{"space too long", []string{"--space=" + strings.Repeat("a", 64)}, "must be a DNS label"},
		{"openai without model", []string{"--provider", "openai", "--upstream-url", "http://127.0.0.1:1/v1"}, "--model is required"},
		{"openai without url", []string{"--provider", "openai", "--model", "m"}, "upstream URL is required"},
		{"openai url without scheme", []string{"--provider", "openai", "--model", "m", "--upstream-url", "127.0.0.1/v1"}, "must start with http://"},
		{"unknown upstream auth", []string{"--upstream-auth=basic"}, "--upstream-auth must be bearer or azure-api-key"},
		{"azure without api version", []string{"--provider", "openai", "--model", "m", "--upstream-url", "https://x.openai.azure.com/openai/deployments/m", "--upstream-auth=azure-api-key"},
			"--upstream-api-version is required with --upstream-auth=azure-api-key"},
		{"fail rate", []string{"--fail-rate", "2"}, "--fail-rate must be in [0,1]"},
		{"zero in flight", []string{"--max-in-flight=0"}, "must be positive"},
		{"negative queue", []string{"--max-queue=-1"}, "--max-queue not negative"},
		{"zero timeout", []string{"--queue-timeout", "0s"}, "--queue-timeout must be positive"},
		{"negative drain", []string{"--drain-timeout=-1s"}, "must not be negative"},
		{"pending below body", []string{"--max-body-bytes=2000", "--max-pending-bytes=1000"}, "--max-pending-bytes 1000 must be at least --max-body-bytes 2000"},
		{"negative budget", []string{"--upstream-requests-per-minute=-1"}, "--upstream-requests-per-minute and --upstream-tokens-per-minute must not be negative"},
		{"zero inputs per call", []string{"--max-inputs-per-call=0"}, "--max-inputs-per-call and --max-tokens-per-call must be positive"},
		{"zero tokens per call", []string{"--max-tokens-per-call=0"}, "--max-inputs-per-call and --max-tokens-per-call must be positive"},
		{"log level", []string{"--log-level=loud"}, "--log-level"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
		{"unknown flag", []string{"--max-inflight=3"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := Parse(tt.args, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestHelpListsEveryFlagWithItsDefault(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := Parse([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	for _, want := range []string{"-" + contract.FlagMaxInFlight + " int", "(default 8)", "-" + contract.FlagQueueTimeout + " duration", "(default " + (5 * time.Second).String() + ")"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr.String())
		}
	}
}
