// Package serverflags is the embedding server's command line: its flag set,
// with the names and defaults of internal/contract, and every check the binary
// makes of its flags before it starts. It is importable so that the operator's
// tests can parse the arguments the operator writes exactly as the server will.
package serverflags

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/contract"
)

// Options are the parsed, validated flags.
type Options struct {
	Addr, AdminAddr string
	Provider        string // contract.ProviderBuiltin or contract.ProviderOpenAI
	Model           string // never empty: the builtin default is filled in
	Dimensions      int
	Space           string // the vector space served: a DNS label, or empty
	UpstreamURL     string
	UpstreamAuth    string // contract.UpstreamAuthBearer or contract.UpstreamAuthAzureAPIKey
	UpstreamAPIVer  string // api-version query parameter of every upstream call, or empty

	MaxInFlight, MaxQueue, MaxBatchSize, MaxAttempts, MaxInputs int
	// The upstream's limits: this pod's share per minute (0: not declared,
	// learned from the upstream) and what one call may carry.
	UpstreamRPM, UpstreamTPM, MaxInputsPerCall, MaxTokensPerCall int
	MaxBodyBytes, MaxPendingBytes                                int64

	RequestTimeout, QueueTimeout, UpstreamTimeout time.Duration
	InitialBackoff, DrainTimeout, DrainDelay      time.Duration
	Linger, RetryAfter                            time.Duration

	FailRate float64
	LogLevel slog.Level
	Pprof    bool
	Version  bool // --version: print the version and exit; nothing else is checked
}

// Usage is the help text around the flag list.
const (
	usageHead = `embedserver is the bounded-concurrency, OpenAI-compatible embedding server
that the ragops operator deploys. POST /v1/embeddings and GET /v1/models on
--addr; /healthz, /readyz and /metrics on --admin-addr. A bounded number of
requests run at once, a bounded queue waits in front of them with its own
deadline, and every request ends with an answer: 429 or 503 with Retry-After
when overloaded, 504 past its deadline, 502 when the upstream failed.

Usage:
  embedserver [--provider builtin] [--model hash-384] [flags]
  EMBEDSERVER_API_KEY=... embedserver --provider openai --upstream-url URL --model NAME [flags]

Flags:
`
	usageTail = `
Environment:
  EMBEDSERVER_API_KEY  the upstream's API key (openai), sent as --upstream-auth
                       says; never logged. The operator sets it from
                       spec.embedding.apiKeySecretRef.
  EMBEDSERVER_BUDGET_TOKEN
                       the token PUT /budget on the admin port needs to
                       change this pod's share (openai); unset: nobody may.
  EMBEDSERVER_BUDGET_START_REQUESTS_PER_MINUTE
  EMBEDSERVER_BUDGET_START_TOKENS_PER_MINUTE
                       the share to start with when the
                       --upstream-*-per-minute flags are 0 (openai). The
                       operator sets all three from the service's budget
                       Secret.
  GOMEMLIMIT, GOGC     when neither is set, the collector is tuned to
                       --max-pending-bytes plus headroom

Exit codes:
  0  stopped after a clean drain (SIGTERM or SIGINT), or --help, --version
  1  a listener failed, or the drain timed out with requests unfinished
     (they were answered 503 draining)
  2  bad flags
`
)

// Parse reads args (without the program name). Usage and flag errors are
// written to stderr as well as returned; -h gives flag.ErrHelp.
func Parse(args []string, stderr io.Writer) (Options, error) {
	var o Options
	var logLevel string
	fs := flag.NewFlagSet("embedserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Addr, contract.FlagAddr, fmt.Sprintf(":%d", contract.HTTPPort), "API listen address (POST /v1/embeddings, GET /v1/models)")
	fs.StringVar(&o.AdminAddr, contract.FlagAdminAddr, fmt.Sprintf(":%d", contract.AdminPort), "admin listen address (/healthz, /readyz, /metrics); never behind the limiter")
	fs.StringVar(&o.Provider, contract.FlagProvider, contract.DefaultProvider, "builtin (hash-<dims>, no network) or openai (any OpenAI-compatible upstream)")
	fs.StringVar(&o.Model, contract.FlagModel, "", "model served: hash-<dims> for builtin (default "+contract.DefaultBuiltinModel+"), the upstream's model name for openai")
	fs.IntVar(&o.Dimensions, contract.FlagDimensions, 0, "vector size when a request names none (0: the model's own)")
	fs.StringVar(&o.Space, contract.FlagSpace, "", "name of the vector space served (a DNS label), shown in GET /v1/models; the operator sets it from spec.embedding.space")
	fs.StringVar(&o.UpstreamURL, contract.FlagUpstreamURL, "", "openai: upstream base URL including /v1")
	fs.StringVar(&o.UpstreamAuth, contract.FlagUpstreamAuth, contract.DefaultUpstreamAuth, "openai: how the key ($"+contract.APIKeyEnv+") reaches the upstream: "+
		contract.UpstreamAuthBearer+" (Authorization: Bearer) or "+contract.UpstreamAuthAzureAPIKey+" (api-key header, as Azure OpenAI wants)")
	fs.StringVar(&o.UpstreamAPIVer, contract.FlagUpstreamAPIVer, "", "openai: api-version query parameter added to every upstream call (Azure OpenAI requires one)")
	fs.IntVar(&o.MaxInFlight, contract.FlagMaxInFlight, contract.DefaultMaxInFlight, "requests running at once")
	fs.IntVar(&o.MaxQueue, contract.FlagMaxQueue, contract.DefaultMaxQueue, "requests waiting for a slot; beyond it 429")
	fs.IntVar(&o.MaxBatchSize, contract.FlagMaxBatchSize, contract.DefaultMaxBatchSize, "openai: inputs per upstream call (larger requests are split, small ones coalesced)")
	fs.IntVar(&o.UpstreamRPM, contract.FlagUpstreamRPM, 0, "openai: upstream calls this pod may make per minute (0: not declared; learned from the upstream's x-ratelimit-* headers)")
	fs.IntVar(&o.UpstreamTPM, contract.FlagUpstreamTPM, 0, "openai: upstream tokens this pod may send per minute (0: not declared; learned from the upstream's headers)")
	fs.IntVar(&o.MaxInputsPerCall, contract.FlagMaxInputsPerCall, contract.DefaultMaxInputsPerCall, "openai: the upstream's limit of inputs per call (larger requests are split)")
	fs.IntVar(&o.MaxTokensPerCall, contract.FlagMaxTokensPerCall, contract.DefaultMaxTokensPerCall, "openai: the upstream's limit of tokens per call, counted by a conservative estimate (larger requests are split)")
	fs.DurationVar(&o.RequestTimeout, contract.FlagRequestTimeout, contract.DefaultRequestTimeout, "whole-request deadline, queue wait included; 504 past it")
	fs.DurationVar(&o.QueueTimeout, contract.FlagQueueTimeout, contract.DefaultQueueTimeout, "longest wait for a slot; 503 past it")
	fs.DurationVar(&o.UpstreamTimeout, contract.FlagUpstreamTimeout, contract.DefaultUpstreamTimeout, "openai: timeout of one upstream attempt")
	fs.IntVar(&o.MaxAttempts, contract.FlagMaxAttempts, contract.DefaultMaxAttempts, "openai: upstream attempts per call, first included")
	fs.DurationVar(&o.InitialBackoff, contract.FlagInitialBackoff, contract.DefaultInitialBackoff, "openai: backoff before the first retry; doubles, with jitter")
	fs.DurationVar(&o.DrainTimeout, contract.FlagDrainTimeout, contract.DefaultDrainTimeout, "on SIGTERM, once the listener is closed (after --drain-delay), the longest wait for the requests inside; the ones still running then are answered 503 draining (0: no wait)")
	fs.DurationVar(&o.DrainDelay, contract.FlagDrainDelay, contract.DefaultDrainDelay, "on SIGTERM, readiness goes false at once and new requests are still served as usual this long, so clients still routed here by a stale endpoint list get their answer; then the listener closes")
	fs.Int64Var(&o.MaxBodyBytes, contract.FlagMaxBodyBytes, contract.DefaultMaxBodyBytes, "request body limit; 413 beyond")
	fs.Int64Var(&o.MaxPendingBytes, contract.FlagMaxPendingBytes, contract.DefaultMaxPendingBytes, "bodies being read or held by requests not yet answered, in bytes; a request that would pass it is shed with 429 (reason memory) before its body is read")
	fs.IntVar(&o.MaxInputs, contract.FlagMaxInputs, contract.DefaultMaxInputs, "inputs per request; 413 beyond")
	fs.DurationVar(&o.Linger, contract.FlagCoalesceLinger, contract.DefaultCoalesceLinger, "openai: the most a small request waits for others to share an upstream call while one is in flight; the wait is 1/80 of the recent upstream latency, at least 100µs, at most this (negative: never wait)")
	fs.DurationVar(&o.RetryAfter, contract.FlagRetryAfter, contract.DefaultRetryAfter, "Retry-After sent with 429 and 503")
	fs.Float64Var(&o.FailRate, contract.FlagFailRate, 0, "DRILL ONLY: fraction of requests answered 500 on purpose (fault injection)")
	fs.StringVar(&logLevel, contract.FlagLogLevel, contract.DefaultLogLevel, "debug, info, warn or error")
	fs.BoolVar(&o.Pprof, contract.FlagPprof, false, "serve Go profiles at /debug/pprof/ on the admin port")
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), usageTail)
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.Version {
		return o, nil
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := o.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return o, fmt.Errorf("--%s: %w", contract.FlagLogLevel, err)
	}
	return o, o.validate()
}

// validate checks the flags as a whole, naming the flag at fault.
func (o *Options) validate() error {
	if o.FailRate < 0 || o.FailRate > 1 {
		return fmt.Errorf("--fail-rate must be in [0,1], not %v", o.FailRate)
	}
	if o.MaxInFlight < 1 || o.MaxQueue < 0 || o.MaxBatchSize < 1 || o.MaxAttempts < 1 || o.MaxInputs < 1 || o.MaxBodyBytes < 1 {
		return errors.New("--max-in-flight, --max-batch-size, --max-attempts, --max-inputs and --max-body-bytes must be positive, --max-queue not negative")
	}
	if o.UpstreamRPM < 0 || o.UpstreamTPM < 0 || o.MaxInputsPerCall < 1 || o.MaxTokensPerCall < 1 {
		return fmt.Errorf("--%s and --%s must not be negative, --%s and --%s must be positive",
			contract.FlagUpstreamRPM, contract.FlagUpstreamTPM, contract.FlagMaxInputsPerCall, contract.FlagMaxTokensPerCall)
	}
	for name, d := range map[string]time.Duration{contract.FlagRequestTimeout: o.RequestTimeout, contract.FlagQueueTimeout: o.QueueTimeout,
		contract.FlagUpstreamTimeout: o.UpstreamTimeout, contract.FlagInitialBackoff: o.InitialBackoff, contract.FlagRetryAfter: o.RetryAfter} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive", name)
		}
	}
	if o.MaxPendingBytes < o.MaxBodyBytes {
		return fmt.Errorf("--max-pending-bytes %d must be at least --max-body-bytes %d, or a body of the largest size could never be read", o.MaxPendingBytes, o.MaxBodyBytes)
	}
	if o.DrainTimeout < 0 || o.DrainDelay < 0 {
		return errors.New("--drain-timeout and --drain-delay must not be negative")
	}
	if o.Dimensions < 0 {
		return errors.New("--dimensions must not be negative")
	}
	if o.Space != "" && !isDNSLabel(o.Space) {
		return fmt.Errorf("--space %q must be a DNS label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit", o.Space)
	}
	if o.UpstreamAuth != contract.UpstreamAuthBearer && o.UpstreamAuth != contract.UpstreamAuthAzureAPIKey {
		return fmt.Errorf("--%s must be %s or %s, not %q", contract.FlagUpstreamAuth, contract.UpstreamAuthBearer, contract.UpstreamAuthAzureAPIKey, o.UpstreamAuth)
	}
	switch o.Provider {
	case contract.ProviderBuiltin:
		if o.Model == "" {
			o.Model = contract.DefaultBuiltinModel
		}
		m, err := builtinmodel.Parse(o.Model)
		if err != nil {
			return fmt.Errorf("--model: %w", err)
		}
		if o.Dimensions > m.Dims {
			return fmt.Errorf("--dimensions %d is more than model %s has", o.Dimensions, m.Name())
		}
	case contract.ProviderOpenAI:
		if o.Model == "" {
			return errors.New("--model is required with --provider openai")
		}
		if o.UpstreamURL == "" {
			return errors.New("--upstream-url: the upstream URL is required with --provider openai")
		}
		if !strings.HasPrefix(o.UpstreamURL, "http://") && !strings.HasPrefix(o.UpstreamURL, "https://") {
			return fmt.Errorf("--upstream-url %q must start with http:// or https://", o.UpstreamURL)
		}
		if o.UpstreamAuth == contract.UpstreamAuthAzureAPIKey && o.UpstreamAPIVer == "" {
			return fmt.Errorf("--%s is required with --%s=%s: Azure OpenAI answers 404 to a call without one", contract.FlagUpstreamAPIVer, contract.FlagUpstreamAuth, contract.UpstreamAuthAzureAPIKey)
		}
	default:
		return fmt.Errorf("--provider must be builtin or openai, not %q", o.Provider)
	}
	return nil
}

// isDNSLabel reports whether s is an RFC 1123 label, as spec.embedding.space is.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}
