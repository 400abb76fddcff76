// Package contract is what the operator and the embedding server agree on: the
// server's flag names and defaults, its ports, the environment variable of the
// API key, and the metric names and shed reasons the canary analysis reads
// (docs/embedserver.md lists them). Both binaries import it, so none of these is a string
// written twice. The CRD's kubebuilder defaults are literal markers; a test in
// internal/podtemplate checks that the generated CRD defaults to these values.
package contract

import "time"

// Ports of the embedding server. The admin port is never behind the limiter, so
// probes and metrics answer under any load.
const (
	HTTPPort  = 8080
	AdminPort = 9090
)

// APIKeyEnv carries the upstream API key into the server; never an argument.
const APIKeyEnv = "EMBEDSERVER_API_KEY"

// BudgetTokenEnv carries the token that may change a pod's share of the
// upstream budget (PUT /budget on the admin port): the operator's, from the
// per-service Secret. Unset: nobody may change it.
const BudgetTokenEnv = "EMBEDSERVER_BUDGET_TOKEN"

// The safe share a pod starts with, before the operator tells it its share:
// set from the per-service budget Secret (optional keys), read once at start
// when --upstream-requests-per-minute / --upstream-tokens-per-minute are 0.
// Being environment from a Secret, not arguments, a new value reaches every
// pod that starts from then on without changing the pod template.
const (
	BudgetStartRequestsEnv = "EMBEDSERVER_BUDGET_START_REQUESTS_PER_MINUTE"
	BudgetStartTokensEnv   = "EMBEDSERVER_BUDGET_START_TOKENS_PER_MINUTE"
)

// Keys of the per-service budget Secret (<service>-budget) the operator
// writes and the pods read through secretKeyRef.
const (
	BudgetSecretTokenKey    = "token"
	BudgetSecretRequestsKey = "startRequestsPerMinute"
	BudgetSecretTokensKey   = "startTokensPerMinute"
)

// Providers the server offers (--provider).
const (
	ProviderBuiltin = "builtin"
	ProviderOpenAI  = "openai"
)

// How the server authenticates to an OpenAI-compatible upstream (--upstream-auth).
const (
	// UpstreamAuthBearer sends the key as "Authorization: Bearer <key>" (OpenAI,
	// TEI, vLLM, Ollama and most gateways).
	UpstreamAuthBearer = "bearer"
	// UpstreamAuthAzureAPIKey sends it in the "api-key" header, and no
	// Authorization header, as Azure OpenAI's key authentication wants.
	UpstreamAuthAzureAPIKey = "azure-api-key"
)

// APIVersionParam is the query parameter that --upstream-api-version sets on
// every upstream call (Azure OpenAI requires one).
const APIVersionParam = "api-version"

// Flag names of the embedding server, without the leading dashes.
const (
	FlagAddr            = "addr"
	FlagAdminAddr       = "admin-addr"
	FlagProvider        = "provider"
	FlagModel           = "model"
	FlagDimensions      = "dimensions"
	FlagSpace           = "space"
	FlagUpstreamURL     = "upstream-url"
	FlagUpstreamAuth    = "upstream-auth"
	FlagUpstreamAPIVer  = "upstream-api-version"
	FlagMaxInFlight     = "max-in-flight"
	FlagMaxQueue        = "max-queue"
	FlagMaxBatchSize    = "max-batch-size"
	FlagRequestTimeout  = "request-timeout"
	FlagQueueTimeout    = "queue-timeout"
	FlagUpstreamTimeout = "upstream-timeout"
	FlagMaxAttempts     = "max-attempts"
	FlagInitialBackoff  = "initial-backoff"
	FlagDrainTimeout    = "drain-timeout"
	FlagDrainDelay      = "drain-delay"
	FlagMaxBodyBytes    = "max-body-bytes"
	FlagMaxPendingBytes = "max-pending-bytes"
	FlagMaxInputs       = "max-inputs"
	FlagCoalesceLinger  = "coalesce-linger"
	// The upstream's limits (spec.embedding.upstream).
	FlagUpstreamRPM      = "upstream-requests-per-minute"
	FlagUpstreamTPM      = "upstream-tokens-per-minute"
	FlagMaxInputsPerCall = "max-inputs-per-call"
	FlagMaxTokensPerCall = "max-tokens-per-call"
	FlagRetryAfter       = "retry-after"
	FlagFailRate         = "fail-rate"
	FlagLogLevel         = "log-level"
	FlagPprof            = "pprof"
)

// Defaults of the embedding server's flags. The ones the RAGService spec carries
// are also the CRD's defaults.
const (
	DefaultProvider         = ProviderBuiltin
	DefaultBuiltinModel     = "hash-384" // --model when the provider is builtin and none is named
	DefaultUpstreamAuth     = UpstreamAuthBearer
	DefaultMaxInFlight      = 8
	DefaultMaxQueue         = 32
	DefaultMaxBatchSize     = 64
	DefaultMaxInputsPerCall = 2048   // OpenAI's limit of inputs per embeddings call
	DefaultMaxTokensPerCall = 300000 // OpenAI's limit of tokens per embeddings call
	DefaultRequestTimeout   = 30 * time.Second
	DefaultQueueTimeout     = 5 * time.Second
	DefaultUpstreamTimeout  = 10 * time.Second
	DefaultMaxAttempts      = 3
	DefaultInitialBackoff   = 100 * time.Millisecond
	DefaultDrainTimeout     = 30 * time.Second
	DefaultDrainDelay       = 3 * time.Second
	DefaultMaxBodyBytes     = 4 << 20
	DefaultMaxPendingBytes  = 64 << 20
	DefaultMaxInputs        = 2048
	DefaultCoalesceLinger   = 2 * time.Millisecond
	DefaultRetryAfter       = time.Second
	DefaultLogLevel         = "info"
)

// DrainCutoffGrace is how long the requests still running when the drain
// timeout passes get to send their answer (503 draining) before the server
// closes their connections. A stopping server takes at most --drain-delay +
// --drain-timeout + DrainCutoffGrace, and a little more to exit; the
// operator's terminationGracePeriodSeconds covers all of it.
const DrainCutoffGrace = time.Second

// Metric names of the embedding server.
const (
	MetricRequests         = "embedserver_requests_total"            // counter, label code
	MetricRequestDuration  = "embedserver_request_duration_seconds"  // histogram
	MetricInFlight         = "embedserver_in_flight"                 // gauge
	MetricQueueDepth       = "embedserver_queue_depth"               // gauge
	MetricShed             = "embedserver_shed_total"                // counter, label reason
	MetricUpstreamRequests = "embedserver_upstream_requests_total"   // counter, label code
	MetricUpstreamDuration = "embedserver_upstream_duration_seconds" // histogram
	MetricUpstreamRetries  = "embedserver_upstream_retries_total"    // counter
	MetricBatchSize        = "embedserver_batch_size"                // histogram
	MetricMaxInFlight      = "embedserver_max_in_flight"             // gauge
	MetricMaxQueue         = "embedserver_max_queue"                 // gauge
	MetricPendingBytes     = "embedserver_pending_bytes"             // gauge
	MetricMaxPendingBytes  = "embedserver_max_pending_bytes"         // gauge
	// The upstream's budget (internal/budget).
	MetricBudgetShare         = "embedserver_budget_share_per_minute"          // gauge, label kind (requests, tokens): the share in force, declared or learned; 0: unknown
	MetricCallsHeldBack       = "embedserver_upstream_calls_held_back_total"   // counter: times calls waited for the budget
	MetricThrottledSeconds    = "embedserver_upstream_throttled_seconds_total" // counter: time calls were held back or paused
	MetricUpstreamRateLimited = "embedserver_upstream_rate_limited_total"      // counter: upstream 429s that were rate limits (not final errors)
	MetricUpstreamPauses      = "embedserver_upstream_pauses_total"            // counter: pod-wide pauses the upstream asked for
)

// Shed reasons, the values of embedserver_shed_total{reason}: requests refused
// to protect the server, which the analysis does not count as errors.
const (
	ShedQueueFull    = "queue_full"    // answered 429: every slot busy and the queue full
	ShedQueueTimeout = "queue_timeout" // answered 503: no slot within the queue timeout
	ShedDraining     = "draining"      // answered 503: still running when the server's drain timeout passed
	ShedMemory       = "memory"        // answered 429: the body would pass --max-pending-bytes
	ShedBudget       = "budget"        // answered 429: the upstream budget cannot send the request before its deadline
)

// ShedReasons lists every reason, so each series can exist from the start.
var ShedReasons = []string{ShedQueueFull, ShedQueueTimeout, ShedDraining, ShedMemory, ShedBudget}
