package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Provider names an embedding backend of the server.
// +kubebuilder:validation:Enum=builtin;openai
type Provider string

const (
	// ProviderBuiltin is the in-process hash-<dims> model: no network, deterministic.
	ProviderBuiltin Provider = "builtin"
	// ProviderOpenAI is any OpenAI-compatible endpoint (OpenAI, Azure, TEI, vLLM, Ollama).
	ProviderOpenAI Provider = "openai"
)

// UpstreamAuth is how the API key reaches an OpenAI-compatible upstream.
// +kubebuilder:validation:Enum=Bearer;AzureAPIKey
type UpstreamAuth string

const (
	// UpstreamAuthBearer sends "Authorization: Bearer <key>": OpenAI, TEI, vLLM,
	// Ollama and most gateways.
	UpstreamAuthBearer UpstreamAuth = "Bearer"
	// UpstreamAuthAzureAPIKey sends the key in the "api-key" header and no
	// Authorization header, as Azure OpenAI's key authentication wants.
	UpstreamAuthAzureAPIKey UpstreamAuth = "AzureAPIKey"
)

// RAGServiceSpec declares an embedding service and how changes to it roll out.
type RAGServiceSpec struct {
	// Replicas is the size of the stable track. It is the scale subresource's
	// field: kubectl scale and HorizontalPodAutoscalers drive it.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Image of the embedding server. Empty means the manager's --embedserver-image.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Embedding selects the provider and the model.
	Embedding EmbeddingSpec `json:"embedding"`

	// Concurrency bounds the work of each pod.
	// +kubebuilder:default={}
	// +optional
	Concurrency ConcurrencySpec `json:"concurrency,omitempty,omitzero"`

	// Timeouts bound every wait of each pod.
	// +kubebuilder:default={}
	// +optional
	Timeouts TimeoutsSpec `json:"timeouts,omitempty,omitzero"`

	// Retry governs retries of failed upstream calls.
	// +kubebuilder:default={}
	// +optional
	Retry RetrySpec `json:"retry,omitempty,omitzero"`

	// Rollout says how a change of the pod template reaches the fleet.
	// +kubebuilder:default={}
	// +optional
	Rollout RolloutSpec `json:"rollout,omitempty,omitzero"`

	// Pod settings passed through to the pods of both tracks.
	// +optional
	Pod PodOverrides `json:"pod,omitempty,omitzero"`
}

// EmbeddingSpec selects the embedding provider and model.
// +kubebuilder:validation:XValidation:rule="self.provider != 'openai' || (has(self.endpoint) && size(self.endpoint) > 0)",message="spec.embedding.endpoint is required when provider is openai",fieldPath=".endpoint"
// The builtin model's bounds are builtinmodel.MinDims and MaxDims: a spec the server would refuse must never be admitted (TestCRDAdmitsTheBuiltinModelsTheServerServes).
// +kubebuilder:validation:XValidation:rule="self.provider != 'builtin' || (self.model.matches('^hash-[0-9]{1,4}$') && int(self.model.substring(5)) >= 2 && int(self.model.substring(5)) <= 8192)",message="spec.embedding.model must be hash-<dimensions> with 2 to 8192 dimensions (for example hash-384) when provider is builtin",fieldPath=".model"
// +kubebuilder:validation:XValidation:rule="self.provider != 'builtin' || !has(self.dimensions) || !self.model.matches('^hash-[0-9]{1,4}$') || self.dimensions <= int(self.model.substring(5))",message="spec.embedding.dimensions must not exceed the builtin model's dimensions",fieldPath=".dimensions"
// +kubebuilder:validation:XValidation:rule="self.provider != 'builtin' || !has(self.apiKeySecretRef)",message="spec.embedding.apiKeySecretRef is only used by the openai provider",fieldPath=".apiKeySecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.auth) || self.auth != 'AzureAPIKey' || (has(self.apiVersion) && size(self.apiVersion) > 0)",message="spec.embedding.apiVersion is required when spec.embedding.auth is AzureAPIKey (Azure OpenAI answers 404 without one), for example 2024-10-21",fieldPath=".apiVersion"
// +kubebuilder:validation:XValidation:rule="self.provider != 'builtin' || ((!has(self.auth) || self.auth == 'Bearer') && !has(self.apiVersion))",message="spec.embedding.auth and spec.embedding.apiVersion are only used by the openai provider",fieldPath=".auth"
// +kubebuilder:validation:XValidation:rule="self.provider != 'builtin' || !has(self.upstream) || !has(self.upstream.requestsPerMinute) || self.upstream.requestsPerMinute == 0",message="spec.embedding.upstream.requestsPerMinute is only used by the openai provider (the builtin model calls no upstream)",fieldPath=".upstream.requestsPerMinute"
// +kubebuilder:validation:XValidation:rule="self.provider != 'builtin' || !has(self.upstream) || !has(self.upstream.tokensPerMinute) || self.upstream.tokensPerMinute == 0",message="spec.embedding.upstream.tokensPerMinute is only used by the openai provider (the builtin model calls no upstream)",fieldPath=".upstream.tokensPerMinute"
type EmbeddingSpec struct {
	// Provider is builtin (no network) or openai (any OpenAI-compatible endpoint).
	// +kubebuilder:default=builtin
	// +optional
	Provider Provider `json:"provider,omitempty"`

	// Model is the builtin model name (hash-<dims>) or the upstream model name.
	// +kubebuilder:default="hash-384"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Model string `json:"model,omitempty"`

	// Dimensions asks for shortened embeddings. Empty means the model's own.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=8192
	// +optional
	Dimensions *int32 `json:"dimensions,omitempty"`

	// Endpoint is the upstream base URL including /v1. Required for openai.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.matches('^https?://[^ ]+$')",message="spec.embedding.endpoint must be an http:// or https:// URL"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// APIKeySecretRef names the Secret key holding the upstream API key. It reaches
	// the server as an environment variable, never in args, logs or status.
	// +optional
	APIKeySecretRef *corev1.SecretKeySelector `json:"apiKeySecretRef,omitempty"`

	// Auth is how the API key reaches the upstream: Bearer (an Authorization
	// header, the default) or AzureAPIKey (an api-key header, for Azure OpenAI's
	// key authentication, which needs apiVersion too).
	// +kubebuilder:default=Bearer
	// +optional
	Auth UpstreamAuth `json:"auth,omitempty"`

	// APIVersion is added as the api-version query parameter to every upstream
	// call, whatever auth is (Azure OpenAI wants one, also with Microsoft Entra
	// bearer tokens and behind API gateways). Required with auth AzureAPIKey.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][-A-Za-z0-9._]*$')",message="spec.embedding.apiVersion must be a version such as 2024-10-21 or 2025-01-01-preview: letters, digits, '-', '.' and '_'"
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`

	// Space names the vector space the service's index lives in: vectors of one
	// space are comparable, of two spaces are not. Changing it declares a new
	// space and turns the rollout into a cutover (the new revision is previewed
	// on the canary Service for re-indexing, and takes all traffic at once on
	// promote); leaving it unchanged promises the same space, which every
	// canary must prove on probe texts before a client reaches it.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="spec.embedding.space must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit"
	// +optional
	Space string `json:"space,omitempty"`

	// MaxBatchSize is the most inputs sent in one upstream call: larger requests
	// are split, small concurrent ones coalesced.
	// +kubebuilder:default=64
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2048
	// +optional
	MaxBatchSize int32 `json:"maxBatchSize,omitempty"`

	// Upstream describes the upstream's limits on one call (openai provider).
	// +optional
	Upstream UpstreamSpec `json:"upstream,omitempty,omitzero"`
}

// UpstreamSpec is the upstream's budget for the whole service and what one
// upstream call may carry. A request over the per-call limits is split into
// several calls, never refused for them.
type UpstreamSpec struct {
	// RequestsPerMinute is the upstream's budget of calls per minute for the
	// whole service: all pods of both tracks together. The operator hands each
	// pod a share so that the shares never add up to more (docs/embedserver.md,
	// "The service's budget"). 0 or absent: not declared (each pod learns the
	// upstream's limit from its x-ratelimit-* headers). Changing it restarts
	// no pod. openai provider only.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000000
	// +optional
	RequestsPerMinute int64 `json:"requestsPerMinute,omitempty"`

	// TokensPerMinute is the upstream's budget of tokens per minute for the
	// whole service, shared out like requestsPerMinute. 0 or absent: not
	// declared. openai provider only.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000000000
	// +optional
	TokensPerMinute int64 `json:"tokensPerMinute,omitempty"`

	// MaxInputsPerCall is the upstream's limit of inputs per call (OpenAI's
	// is 2048); a call carries at most the smaller of it and maxBatchSize.
	// +kubebuilder:default=2048
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxInputsPerCall int32 `json:"maxInputsPerCall,omitempty"`

	// MaxTokensPerCall is the upstream's limit of tokens per call (OpenAI's is
	// 300000), counted by a conservative estimate (a text's byte length).
	// +kubebuilder:default=300000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000000
	// +optional
	MaxTokensPerCall int32 `json:"maxTokensPerCall,omitempty"`
}

// ConcurrencySpec bounds the requests of each pod.
type ConcurrencySpec struct {
	// MaxInFlight is how many requests a pod executes at once.
	// +kubebuilder:default=8
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxInFlight int32 `json:"maxInFlight,omitempty"`

	// MaxQueue is how many requests may wait for a slot; beyond it a pod answers
	// 429 with Retry-After.
	// +kubebuilder:default=32
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxQueue *int32 `json:"maxQueue,omitempty"`
}

// TimeoutsSpec bounds every wait of a pod.
// +kubebuilder:validation:XValidation:rule="!has(self.queue) || !has(self.request) || duration(self.queue) <= duration(self.request)",message="spec.timeouts.queue must not be longer than spec.timeouts.request",fieldPath=".queue"
// +kubebuilder:validation:XValidation:rule="!has(self.upstream) || !has(self.request) || duration(self.upstream) <= duration(self.request)",message="spec.timeouts.upstream must not be longer than spec.timeouts.request",fieldPath=".upstream"
type TimeoutsSpec struct {
	// Request is the deadline of a whole request; past it the answer is 504.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1h')",message="spec.timeouts.request must be between 10ms and 1h"
	// +optional
	Request metav1.Duration `json:"request,omitempty,omitzero"`

	// Queue is the longest wait for a slot; past it the answer is 503 with Retry-After.
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('1h')",message="spec.timeouts.queue must be between 1ms and 1h"
	// +optional
	Queue metav1.Duration `json:"queue,omitempty,omitzero"`

	// Upstream is the deadline of each upstream attempt.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1h')",message="spec.timeouts.upstream must be between 10ms and 1h"
	// +optional
	Upstream metav1.Duration `json:"upstream,omitempty,omitzero"`

	// Drain is how long a stopping pod finishes its work: after SIGTERM it
	// turns not ready and still serves new requests for 3s while it leaves the
	// Service's endpoints, then closes its listener and gives the requests
	// inside up to Drain; those still running then are answered 503 draining.
	// It sets the pods' terminationGracePeriodSeconds (Drain + 5s).
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="spec.timeouts.drain must be between 0s and 1h"
	// +optional
	Drain metav1.Duration `json:"drain,omitempty,omitzero"`
}

// RetrySpec governs retries of upstream calls (429, 5xx, timeouts).
type RetrySpec struct {
	// MaxAttempts counts the first attempt: 1 means no retry.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	MaxAttempts int32 `json:"maxAttempts,omitempty"`

	// InitialBackoff is the first wait; each retry doubles it, with jitter.
	// +kubebuilder:default="100ms"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('1m')",message="spec.retry.initialBackoff must be between 1ms and 1m"
	// +optional
	InitialBackoff metav1.Duration `json:"initialBackoff,omitempty,omitzero"`
}

// RolloutStrategy is how a template change reaches the fleet.
// +kubebuilder:validation:Enum=Canary;RollingUpdate
type RolloutStrategy string

const (
	// StrategyCanary ships a change to a slice of pods first and analyses it.
	StrategyCanary RolloutStrategy = "Canary"
	// StrategyRollingUpdate updates the stable track in place.
	StrategyRollingUpdate RolloutStrategy = "RollingUpdate"
)

// RolloutSpec says how a template change reaches the fleet.
type RolloutSpec struct {
	// Strategy is Canary or RollingUpdate.
	// +kubebuilder:default=Canary
	// +optional
	Strategy RolloutStrategy `json:"strategy,omitempty"`

	// Steps of a canary, in order. Each has exactly one of setWeight or pause.
	// With no steps the canary goes to full weight in one step.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Steps []RolloutStep `json:"steps,omitempty"`

	// ProgressDeadline is how long a step may wait for its canary pods to become
	// ready before the rollout fails.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="spec.rollout.progressDeadline must be between 1s and 24h"
	// +optional
	ProgressDeadline metav1.Duration `json:"progressDeadline,omitempty,omitzero"`

	// ScaleDownDelay is how long the previous stable revision keeps its pods
	// after a promotion handed the service over to the canary's, so
	// endpoints converge and connections drain before its pods go.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="spec.rollout.scaleDownDelay must be between 0s and 1h"
	// +optional
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`

	// AutoRollback rolls a failed canary back; without it the rollout holds as Degraded.
	// +kubebuilder:default=true
	// +optional
	AutoRollback *bool `json:"autoRollback,omitempty"`

	// Paused holds the rollout where it is.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// SpaceCheck proves, before any client reaches a canary, that it embeds in
	// the same vector space as stable: both tracks embed the same probe texts
	// and their vectors are compared. On by default.
	// +kubebuilder:default={}
	// +optional
	SpaceCheck SpaceCheckSpec `json:"spaceCheck,omitempty,omitzero"`

	// Analysis judges the canary on live metrics. Without it steps advance on
	// readiness alone.
	// +optional
	Analysis *AnalysisSpec `json:"analysis,omitempty"`
}

// SpaceCheckSpec configures the embedding-space check of every canary.
type SpaceCheckSpec struct {
	// Enabled turns the check on (the default) or off.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// Probes are the texts both tracks embed. Empty: a built-in set of varied
	// texts (topics, lengths, scripts).
	// +optional
	Probes *ProbeSource `json:"probes,omitempty"`

	// MinCosine is the lowest cosine similarity, over the probes, between a
	// probe's canary vector and its stable vector; a decimal in [0,1].
	// +kubebuilder:default="0.999"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0([.][0-9]{1,6})?|1([.]0{1,6})?)$')",message="spec.rollout.spaceCheck.minCosine must be a decimal between 0 and 1, such as \"0.999\""
	// +optional
	MinCosine string `json:"minCosine,omitempty"`

	// MinNeighborOverlap is the lowest mean overlap of each probe's k nearest
	// probes in stable's vectors and in the canary's; a decimal in [0,1].
	// +kubebuilder:default="0.9"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0([.][0-9]{1,6})?|1([.]0{1,6})?)$')",message="spec.rollout.spaceCheck.minNeighborOverlap must be a decimal between 0 and 1, such as \"0.9\""
	// +optional
	MinNeighborOverlap string `json:"minNeighborOverlap,omitempty"`

	// K is how many nearest probes the neighbour overlap compares.
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	// +optional
	K int32 `json:"k,omitempty"`

	// WatchInterval is how often, between rollouts, the operator probes one
	// ready stable pod and compares its answer with the fingerprint of
	// stable's space (status.spaceWatch): an upstream that changed under a
	// running service (another model behind the same URL) shows within one
	// interval. 0 turns the watch off.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || (duration(self) >= duration('1s') && duration(self) <= duration('24h'))",message="spec.rollout.spaceCheck.watchInterval must be 0 (off) or between 1s and 24h"
	// +optional
	WatchInterval *metav1.Duration `json:"watchInterval,omitempty"`

	// OnDrift is what the watch does when stable's space changed: Alert
	// (condition SpaceDrifted, a Warning event, a metric) or StopTraffic
	// (the same, and the shared Service selects no pod until the upstream is
	// back in the recorded space, the change is accepted with the
	// rag.ragops.io/accept-space annotation, or onDrift is Alert again).
	// +kubebuilder:validation:Enum=Alert;StopTraffic
	// +kubebuilder:default=Alert
	// +optional
	OnDrift DriftAction `json:"onDrift,omitempty"`
}

// DriftAction is what the space watch does on a drift.
type DriftAction string

// Drift actions.
const (
	DriftAlert       DriftAction = "Alert"
	DriftStopTraffic DriftAction = "StopTraffic"
)

// ProbeSource says where probe texts come from.
type ProbeSource struct {
	// ConfigMapRef names a key of a ConfigMap in the service's namespace that
	// holds one probe text per line (empty lines and lines starting with # are
	// skipped).
	// +optional
	ConfigMapRef *ConfigMapKeyRef `json:"configMapRef,omitempty"`
}

// ConfigMapKeyRef names one key of a ConfigMap in the same namespace.
type ConfigMapKeyRef struct {
	// Name of the ConfigMap.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in its data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// RolloutStep is one step of a canary: exactly one of SetWeight or Pause.
// +kubebuilder:validation:XValidation:rule="has(self.setWeight) != has(self.pause)",message="each spec.rollout.steps[] entry must have exactly one of setWeight or pause"
type RolloutStep struct {
	// SetWeight is the canary's share of the fleet, in percent.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	SetWeight *int32 `json:"setWeight,omitempty"`

	// Pause waits for a duration, or without one for a manual promote.
	// +optional
	Pause *PauseStep `json:"pause,omitempty"`
}

// PauseStep waits before the next step.
type PauseStep struct {
	// Duration of the pause. Empty waits for the promote annotation.
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('168h')",message="spec.rollout.steps[].pause.duration must be between 0s and 168h"
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// AnalysisProvider is where analysis reads metrics.
// +kubebuilder:validation:Enum=Builtin;Prometheus
type AnalysisProvider string

const (
	// AnalysisBuiltin scrapes each pod's /metrics on the admin port.
	AnalysisBuiltin AnalysisProvider = "Builtin"
	// AnalysisPrometheus queries an existing Prometheus server.
	AnalysisPrometheus AnalysisProvider = "Prometheus"
)

// NoDataPolicy is what an inconclusive interval (too few requests) does.
// +kubebuilder:validation:Enum=Pause;Fail;Continue
type NoDataPolicy string

const (
	// NoDataPause holds the rollout until an interval is conclusive.
	NoDataPause NoDataPolicy = "Pause"
	// NoDataFail counts an inconclusive interval as failed.
	NoDataFail NoDataPolicy = "Fail"
	// NoDataContinue counts an inconclusive interval as passed.
	NoDataContinue NoDataPolicy = "Continue"
)

// AnalysisSpec judges a canary on live metrics, interval by interval.
// +kubebuilder:validation:XValidation:rule="self.provider != 'Prometheus' || (has(self.prometheus) && size(self.prometheus.address) > 0)",message="spec.rollout.analysis.prometheus.address is required when provider is Prometheus",fieldPath=".prometheus"
type AnalysisSpec struct {
	// Provider is Builtin (scrape the pods) or Prometheus.
	// +kubebuilder:default=Builtin
	// +optional
	Provider AnalysisProvider `json:"provider,omitempty"`

	// Prometheus is the server the Prometheus provider queries.
	// +optional
	Prometheus *PrometheusSpec `json:"prometheus,omitempty"`

	// Interval between verdicts.
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="spec.rollout.analysis.interval must be between 1s and 1h"
	// +optional
	Interval metav1.Duration `json:"interval,omitempty,omitzero"`

	// MinRequests an interval needs to be conclusive.
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000000
	// +optional
	MinRequests *int64 `json:"minRequests,omitempty"`

	// OnNoData is what an inconclusive interval does: Pause, Fail or Continue.
	// +kubebuilder:default=Pause
	// +optional
	OnNoData NoDataPolicy `json:"onNoData,omitempty"`

	// FailureLimit is how many failed intervals are tolerated; one more rolls
	// the canary back (or holds it as Degraded without autoRollback).
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailureLimit *int32 `json:"failureLimit,omitempty"`

	// MaxErrorRate is the highest (5xx + timeouts) / requests that passes, a
	// decimal in [0,1]. Shed requests are not errors.
	// +kubebuilder:default="0.01"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0([.][0-9]{1,6})?|1([.]0{1,6})?)$')",message="spec.rollout.analysis.maxErrorRate must be a decimal between 0 and 1, such as \"0.01\""
	// +optional
	MaxErrorRate string `json:"maxErrorRate,omitempty"`

	// MaxShedRate is the highest (429 + queue-timeout 503) / requests that passes,
	// a decimal in [0,1].
	// +kubebuilder:default="0.10"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0([.][0-9]{1,6})?|1([.]0{1,6})?)$')",message="spec.rollout.analysis.maxShedRate must be a decimal between 0 and 1, such as \"0.10\""
	// +optional
	MaxShedRate string `json:"maxShedRate,omitempty"`

	// MaxLatencyP99 is the highest 99th-percentile request latency that passes.
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1h')",message="spec.rollout.analysis.maxLatencyP99 must be between 0s (exclusive) and 1h"
	// +optional
	MaxLatencyP99 metav1.Duration `json:"maxLatencyP99,omitempty,omitzero"`

	// Baseline is what the canary is compared with, interval by interval:
	// Stable (the stable track over the same interval) or None (thresholds only).
	// +kubebuilder:default=Stable
	// +optional
	Baseline BaselineMode `json:"baseline,omitempty"`

	// MaxFailureRateIncrease is the most the canary's failure rate may exceed
	// stable's, a decimal in [0,1]. A failure is any answer that is neither 2xx
	// nor shed (4xx and 5xx alike).
	// +kubebuilder:default="0.01"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^(0([.][0-9]{1,6})?|1([.]0{1,6})?)$')",message="spec.rollout.analysis.maxFailureRateIncrease must be a decimal between 0 and 1, such as \"0.01\""
	// +optional
	MaxFailureRateIncrease string `json:"maxFailureRateIncrease,omitempty"`

	// MaxLatencyRatio is the most the canary's p99 may be, as a multiple of
	// stable's, when both tracks served at least minRequests; a decimal >= 1.
	// +kubebuilder:default="2"
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,4}([.][0-9]{1,6})?$') && double(self) >= 1.0",message="spec.rollout.analysis.maxLatencyRatio must be a decimal of at least 1, such as \"2\" or \"1.5\""
	// +optional
	MaxLatencyRatio string `json:"maxLatencyRatio,omitempty"`

	// ProbeRequests is how many synthetic requests (probe texts) the operator
	// sends to each track's ready pods per interval, spread over it, so a
	// service with little traffic still gets conclusive verdicts. They count
	// like any request. 0: none.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	ProbeRequests *int32 `json:"probeRequests,omitempty"`
}

// BaselineMode is what analysis compares the canary with.
// +kubebuilder:validation:Enum=Stable;None
type BaselineMode string

const (
	// BaselineStable compares the canary with the stable track over the same interval.
	BaselineStable BaselineMode = "Stable"
	// BaselineNone judges the canary on the absolute thresholds only.
	BaselineNone BaselineMode = "None"
)

// PrometheusSpec addresses a Prometheus server.
type PrometheusSpec struct {
	// Address is the server's base URL.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^ ]+$')",message="spec.rollout.analysis.prometheus.address must be an http:// or https:// URL"
	Address string `json:"address"`
}

// PodOverrides are passed through to the pods of both tracks.
type PodOverrides struct {
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`
	// Annotations added to the pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
	// Labels added to the pods; the operator's own labels win.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// +kubebuilder:validation:MaxLength=253
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`
	// ImagePullSecrets name Secrets in the RAGService's namespace that the kubelet
	// uses to pull the embedding server's image from a private registry.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ImagePullSecrets []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// Phase is a one-word summary of a RAGService, derived from its conditions.
type Phase string

// Phases, for display only: decisions read conditions and the rollout fields.
const (
	PhasePending     Phase = "Pending"
	PhaseProgressing Phase = "Progressing"
	PhasePaused      Phase = "Paused"
	PhaseHealthy     Phase = "Healthy"
	PhaseDegraded    Phase = "Degraded"
	PhaseRolledBack  Phase = "RolledBack"
)

// Verdict of one analysis interval.
type Verdict string

// Verdicts of an analysis interval.
const (
	VerdictPass         Verdict = "Pass"
	VerdictFail         Verdict = "Fail"
	VerdictInconclusive Verdict = "Inconclusive"
)

// Condition types, kstatus-compatible: Reconciling and Stalled are present only
// when true.
const (
	ConditionReady       = "Ready"
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
	ConditionAvailable   = "Available"
	ConditionRolledBack  = "RolledBack"
	// ConditionSpaceDrifted is True while stable answers the space watch in
	// another space than its fingerprint (reason UpstreamSpaceChanged);
	// absent otherwise.
	ConditionSpaceDrifted = "SpaceDrifted"
)

// RAGServiceStatus is what the operator observed and decided. Everything the
// rollout needs to continue after a restart lives here, in RolloutStatus.
type RAGServiceStatus struct {
	// ObservedGeneration is the last generation the operator acted on: a rollout
	// decision made from it with everything read, a clean pass, or Stalled (a
	// spec it cannot act on until it is edited). A step that fails after the
	// decision leaves it set and says so in the conditions (Reconciling True,
	// reason ReconcileFailed).
	// +kubebuilder:default=0
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase summarises the conditions for display; nothing decides on it.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Replicas counts the pods of both tracks.
	// +optional
	Replicas int32 `json:"replicas"`
	// ReadyReplicas counts the ready pods of both tracks.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// Selector selects the pods of both tracks, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// RolloutStatus is the rollout planner's memory, written whole from its
	// decision; its fields sit at the top level of status.
	RolloutStatus `json:",inline"`

	// SpaceWatch is the fingerprint of the space stable serves and what the
	// space watch last found; absent while the watch is off.
	// +optional
	SpaceWatch *SpaceWatchStatus `json:"spaceWatch,omitempty"`

	// Budget is the upstream budget declared for the service and the share
	// each pod was told; absent when no budget is declared. Written by the
	// budget hand-out, not by the rollout planner.
	// +optional
	Budget *BudgetStatus `json:"budget,omitempty"`

	// FleetRollout is the service's part in a fleet-wide rollout: the spec
	// the operator last read (to tell a user's own change from one the
	// operator causes) and the revision the operator itself caused, when a
	// new default embedding-server image changed the pod template.
	// +optional
	FleetRollout *FleetRolloutStatus `json:"fleetRollout,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, Available, RolledBack,
	// SpaceDrifted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// FleetRolloutStatus records what the fleet-wide rollout of a new default
// embedding-server image needs to know of one service, so that a restarted
// operator counts the fleet's canaries and failures from status alone.
type FleetRolloutStatus struct {
	// SpecGeneration and SpecHash are the spec as the operator last read it:
	// its metadata.generation and the hash of the pod template it makes
	// with the manager's default image left out. A pass that finds both
	// changed is a user's own change, which never waits for the fleet.
	// +optional
	SpecGeneration int64 `json:"specGeneration,omitempty"`
	// +optional
	SpecHash string `json:"specHash,omitempty"`
	// Revision is the revision the operator itself caused (the spec
	// unchanged, the manager's default image new): waiting for its turn,
	// running as a canary, or done. Empty when the last change was the
	// user's.
	// +optional
	Revision string `json:"revision,omitempty"`
	// Image is the manager's default embedding-server image that Revision
	// carries.
	// +optional
	Image string `json:"image,omitempty"`
	// RolledBackImage is the default image of an operator-caused canary this
	// service rolled back: a failure of that image's fleet rollout, until
	// the service promotes that revision after all (kubectl rag retry).
	// +optional
	RolledBackImage string `json:"rolledBackImage,omitempty"`
}

// BudgetStatus is the service's upstream budget and how it is shared out.
type BudgetStatus struct {
	// RequestsPerMinute and TokensPerMinute are the declared budget of the
	// whole service (spec.embedding.upstream).
	// +optional
	RequestsPerMinute int64 `json:"requestsPerMinute"`
	// +optional
	TokensPerMinute int64 `json:"tokensPerMinute"`
	// Pods is how many pods the budget is divided among: every pod of the
	// service that exists (both tracks, ready or not, draining too) and the
	// ones its Deployments may still start (replicas and surge).
	// +optional
	Pods int32 `json:"pods"`
	// PerPod is each pod's share: the budget divided by pods, rounded down.
	// +optional
	PerPod BudgetShare `json:"perPod"`
	// PodsTold counts the pods that confirmed PerPod; the others run on the
	// safe share they started with, or the last one they confirmed.
	// +optional
	PodsTold int32 `json:"podsTold"`
}

// BudgetShare is one pod's share of the upstream budget, per minute.
type BudgetShare struct {
	// +optional
	RequestsPerMinute int64 `json:"requestsPerMinute"`
	// +optional
	TokensPerMinute int64 `json:"tokensPerMinute"`
}

// RolloutStatus is what the rollout planner remembers between passes. The
// planner returns it whole and the controller stores it as it is, so a field
// added here persists without anyone copying it.
type RolloutStatus struct {
	// StableRevision is the hash of the stable pod template.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// CanaryRevision is the hash of the canary's pod template; empty when no
	// canary runs.
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// CurrentStep is the index of the canary step in progress.
	// +optional
	CurrentStep int32 `json:"currentStep"`
	// CanaryWeight is the desired share of the canary, in percent.
	// +optional
	CanaryWeight int32 `json:"canaryWeight"`
	// EffectiveWeight is the share of ready pods that run the canary, in percent.
	// +optional
	EffectiveWeight int32 `json:"effectiveWeight"`
	// StepStartTime is when the current step began; it times pauses and the
	// progress deadline.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`
	// Analysis is the last verdict on the canary.
	// +optional
	Analysis *AnalysisStatus `json:"analysis,omitempty"`
	// Rollback is the last rollback.
	// +optional
	Rollback *RollbackStatus `json:"rollback,omitempty"`
	// EmbeddingSpace is the space stable serves and the last check of a
	// canary's space.
	// +optional
	EmbeddingSpace *EmbeddingSpaceStatus `json:"embeddingSpace,omitempty"`
	// LastHandled is the last token of each command annotation the operator
	// handled (acted on or ignored with an event). A token equal to the one
	// recorded here is never acted on again.
	// +optional
	LastHandled *HandledCommands `json:"lastHandled,omitempty"`
	// Promoting is true while the canary's Deployment grows to full size
	// before it takes over as stable (the handover).
	// +optional
	Promoting bool `json:"promoting,omitempty"`
	// Retiring is the previous stable revision, whose Deployment keeps its
	// pods after a handover until spec.rollout.scaleDownDelay has passed
	// (or, under strategy RollingUpdate, shrinks as the new one grows).
	// +optional
	Retiring *RetiringRevision `json:"retiring,omitempty"`
}

// RetiringRevision is a revision on its way out after it stopped being stable.
type RetiringRevision struct {
	// Revision is the pod-template hash of the revision.
	Revision string `json:"revision"`
	// Since is when it stopped being stable; its Deployment is removed at
	// since + spec.rollout.scaleDownDelay. Unset under strategy RollingUpdate,
	// where it shrinks as the new revision's pods become ready.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// HandledCommands records, per command annotation, the last value (token) the
// operator handled, the way Flux records reconcile.fluxcd.io/requestedAt in
// status.lastHandledReconcileAt: the annotation stays where it was written
// (in Git, say), and the operator acts once per value.
type HandledCommands struct {
	// Promote is the last rag.ragops.io/promote token handled.
	// +optional
	Promote string `json:"promote,omitempty"`
	// PromoteFull is the last rag.ragops.io/promote-full token handled.
	// +optional
	PromoteFull string `json:"promoteFull,omitempty"`
	// Abort is the last rag.ragops.io/abort token handled.
	// +optional
	Abort string `json:"abort,omitempty"`
	// Retry is the last rag.ragops.io/retry token handled.
	// +optional
	Retry string `json:"retry,omitempty"`
	// Result says what the last handled command did, or why it was ignored,
	// naming its token.
	// +optional
	Result string `json:"result,omitempty"`
}

// SpaceVerdict is the result of an embedding-space check.
type SpaceVerdict string

// Verdicts of an embedding-space check.
const (
	// SpacePending: not checked yet (or the probes have not been answered yet).
	SpacePending SpaceVerdict = "Pending"
	// SpaceCompatible: the canary embeds in stable's space.
	SpaceCompatible SpaceVerdict = "Compatible"
	// SpaceChanged: the canary embeds in another space.
	SpaceChanged SpaceVerdict = "Changed"
	// SpaceUnverified: the check could not complete by the progress deadline
	// (probes unanswered, errors, timeouts); nothing was compared.
	SpaceUnverified SpaceVerdict = "Unverified"
)

// EmbeddingSpaceStatus records the space stable serves and the check of the
// canary's space, per revision, so a restarted operator does not probe again.
type EmbeddingSpaceStatus struct {
	// Name is the space stable serves: spec.embedding.space when it was
	// promoted.
	// +optional
	Name string `json:"name,omitempty"`
	// CanarySpace is the space the canary declares (spec.embedding.space when
	// it started); a value other than Name makes its rollout a cutover.
	// +optional
	CanarySpace string `json:"canarySpace,omitempty"`
	// Revision is the canary revision checked.
	// +optional
	Revision string `json:"revision,omitempty"`
	// Verdict of the check: Pending, Compatible, Changed or Unverified.
	// +optional
	Verdict SpaceVerdict `json:"verdict,omitempty"`
	// MinCosine and MeanCosine are over the probes, cosine(canary, stable).
	// +optional
	MinCosine string `json:"minCosine,omitempty"`
	// +optional
	MeanCosine string `json:"meanCosine,omitempty"`
	// NeighborOverlap is the mean overlap of each probe's nearest probes.
	// +optional
	NeighborOverlap string `json:"neighborOverlap,omitempty"`
	// StableDimensions and CanaryDimensions are the vector sizes each track answered.
	// +optional
	StableDimensions int32 `json:"stableDimensions,omitempty"`
	// +optional
	CanaryDimensions int32 `json:"canaryDimensions,omitempty"`
	// Probes is the number of probe texts compared.
	// +optional
	Probes int32 `json:"probes,omitempty"`
	// Attempts counts the failed probe attempts of this revision (retried
	// with backoff).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Time of the last check or attempt.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// Message says why, with the numbers.
	// +optional
	Message string `json:"message,omitempty"`
}

// SpaceWatchStatus is the space watch's memory. It is written when its
// verdict changes, never for a watch that found what the last one did, so an
// idle service costs no write; the time of the last watch is in the metric
// ragops_space_watch_last_time_seconds.
type SpaceWatchStatus struct {
	// Fingerprint of stable's space, recorded from one ready stable pod when
	// the service first became stable, after a declared cutover, when the
	// probe set changed, or when a drift was accepted.
	// +optional
	Fingerprint *SpaceFingerprint `json:"fingerprint,omitempty"`
	// Verdict of the last watch: Compatible (the recorded space), Changed
	// (drifted) or Pending (the pod could not be probed; the verdict before
	// stands for the condition).
	// +optional
	Verdict SpaceVerdict `json:"verdict,omitempty"`
	// Since is when the verdict became what it is.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// DriftedSince is when the drift that still stands was found; absent
	// when stable serves the recorded space.
	// +optional
	DriftedSince *metav1.Time `json:"driftedSince,omitempty"`
	// MinCosine and NeighborOverlap are the numbers of the watch that set
	// the verdict (projected vectors against the fingerprint).
	// +optional
	MinCosine string `json:"minCosine,omitempty"`
	// +optional
	NeighborOverlap string `json:"neighborOverlap,omitempty"`
	// Message says what the watch found, with the numbers.
	// +optional
	Message string `json:"message,omitempty"`
	// AcceptedToken is the last rag.ragops.io/accept-space token handled.
	// +optional
	AcceptedToken string `json:"acceptedToken,omitempty"`
}

// SpaceFingerprint is a compact record of a space (internal/embeddingspace).
type SpaceFingerprint struct {
	// Revision of stable it was recorded from.
	Revision string `json:"revision"`
	// Space is status.embeddingSpace.name when it was recorded.
	// +optional
	Space string `json:"space,omitempty"`
	// Time it was recorded.
	Time metav1.Time `json:"time"`
	// ProbeSet identifies the probe texts it answers.
	ProbeSet string `json:"probeSet"`
	// Dimensions of the vectors.
	Dimensions int32 `json:"dimensions"`
	// Probes answered (refused long probes included).
	Probes int32 `json:"probes"`
	// Data is the fingerprint: per probe the vector's length, its nearest
	// probes and a projection to 16 dimensions, base64 (about 3.5 KB).
	Data string `json:"data"`
}

// AnalysisStatus is the result of one analysis interval.
type AnalysisStatus struct {
	// Time the interval ended.
	Time metav1.Time `json:"time"`
	// Revision analysed.
	// +optional
	Revision string `json:"revision,omitempty"`
	// Requests answered by the canary during the interval.
	Requests int64 `json:"requests"`
	// ErrorRate is (5xx + timeouts) / requests, as a decimal string.
	// +optional
	ErrorRate string `json:"errorRate,omitempty"`
	// ShedRate is (429 + queue-timeout 503) / requests, as a decimal string.
	// +optional
	ShedRate string `json:"shedRate,omitempty"`
	// LatencyP99 of the interval's requests.
	// +optional
	LatencyP99 *metav1.Duration `json:"latencyP99,omitempty"`
	// FailureRate is (answers neither 2xx nor shed) / requests, as a decimal string.
	// +optional
	FailureRate string `json:"failureRate,omitempty"`
	// Baseline is the stable track over the same interval, when compared.
	// +optional
	Baseline *BaselineStatus `json:"baseline,omitempty"`
	// Verdict of the interval: Pass, Fail or Inconclusive.
	Verdict Verdict `json:"verdict"`
	// Failures counts the failed intervals of this canary so far.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// Message says why, in words.
	// +optional
	Message string `json:"message,omitempty"`
}

// BaselineStatus is the stable track's interval that a canary was compared with.
type BaselineStatus struct {
	// Requests answered by the stable track during the interval.
	Requests int64 `json:"requests"`
	// FailureRate is (answers neither 2xx nor shed) / requests, as a decimal string.
	// +optional
	FailureRate string `json:"failureRate,omitempty"`
	// LatencyP99 of the stable track's requests.
	// +optional
	LatencyP99 *metav1.Duration `json:"latencyP99,omitempty"`
}

// RollbackStatus records a rollback.
type RollbackStatus struct {
	// Revision that was rolled back; it is not tried again until the spec changes
	// or the retry annotation asks for it.
	Revision string `json:"revision"`
	// Reason in CamelCase: AnalysisFailed, ProgressDeadlineExceeded, Aborted,
	// EmbeddingSpaceChanged (vectors compared and different), SpaceCheckFailed
	// (the space check could not complete: probes unanswered).
	Reason string `json:"reason"`
	// Message says why, in words.
	// +optional
	Message string `json:"message,omitempty"`
	// Time of the rollback.
	Time metav1.Time `json:"time"`
}

// Annotations of manual control. Each value is a token: the operator acts once
// per value, records it in status.lastHandled with an event, and never removes
// or rewrites the annotation, so a GitOps tool may keep it in Git. Promote
// moves the canary past its current step; promote-full skips every remaining
// step.
const (
	AnnotationPromote     = "rag.ragops.io/promote"
	AnnotationPromoteFull = "rag.ragops.io/promote-full"
	AnnotationAbort       = "rag.ragops.io/abort"
	AnnotationRetry       = "rag.ragops.io/retry"
	// AnnotationAcceptSpace accepts the space stable serves now as the one
	// to watch (a drift a person decided to keep): the fingerprint is
	// recorded again. Its value is a token, handled once
	// (status.spaceWatch.acceptedToken); the annotation is never removed.
	AnnotationAcceptSpace = "rag.ragops.io/accept-space"
)

// Labels on everything the operator owns.
const (
	LabelInstance = "app.kubernetes.io/instance"
	LabelName     = "app.kubernetes.io/name"
	LabelManaged  = "app.kubernetes.io/managed-by"
	LabelTrack    = "rag.ragops.io/track"
	LabelRevision = "rag.ragops.io/revision"

	// NameEmbedServer is the app.kubernetes.io/name of the pods.
	NameEmbedServer = "embedserver"
	// TrackStable and TrackCanary are the values of LabelTrack.
	TrackStable = "stable"
	TrackCanary = "canary"
)

// RAGService runs a fleet of embedding servers and ships every change as a canary.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=ragsvc,categories=rag
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Stable",type=string,JSONPath=`.status.stableRevision`
// +kubebuilder:printcolumn:name="Canary",type=string,JSONPath=`.status.canaryRevision`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.effectiveWeight`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RAGService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RAGServiceSpec `json:"spec,omitempty"`
	// +kubebuilder:default={observedGeneration: 0}
	Status RAGServiceStatus `json:"status,omitempty"`
}

// RAGServiceList is a list of RAGServices.
// +kubebuilder:object:root=true
type RAGServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RAGService `json:"items"`
}
