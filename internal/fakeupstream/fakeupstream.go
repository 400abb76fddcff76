// Package fakeupstream is an OpenAI-compatible embeddings server for tests and
// benchmarks whose faults are chosen: latency distribution, error rate, 429 with
// Retry-After, requests that hang, and counters of what it received. Its vectors
// are the builtin hash model's, so a caller can check every vector came back at
// its own index.
package fakeupstream

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
)

// Latency is the time taken to answer: Base, plus PerInput for each input of
// the call (a model's work grows with the batch), plus a uniform extra in
// [0, Jitter), plus Tail with probability TailProb (a slow minority, as real
// APIs have).
type Latency struct {
	Base     time.Duration
	PerInput time.Duration
	Jitter   time.Duration
	TailProb float64
	Tail     time.Duration
}

// Encodings of the answer's vectors (Config.Encoding).
const (
	// EncodingAsAsked honours the request's encoding_format, as OpenAI does.
	EncodingAsAsked = ""
	// EncodingFloat answers float arrays whatever encoding_format says, as
	// Ollama, LocalAI and several TEI versions do.
	EncodingFloat = "float"
)

// Config is the upstream's behaviour. It can be changed while serving.
type Config struct {
	Latency       Latency
	ErrorRate     float64       // fraction answered 500
	RateLimitRate float64       // fraction answered 429 with Retry-After
	RetryAfter    time.Duration // the 429's Retry-After; 0 means 1s
	HangRate      float64       // fraction never answered (until the caller leaves or Close)
	Script        []int         // statuses for the first calls, in order (200 = normal), before the rates apply
	Dims          int           // vector size when the request has no dimensions; 0 means 8
	Encoding      string        // EncodingAsAsked or EncodingFloat
	MaxBatch      int           // more inputs per call is a 400; 0 means no limit
	APIKey        string        // when set, calls need "Authorization: Bearer <key>"
	// QuotaExhausted answers every call 429 insufficient_quota after its
	// latency, as OpenAI does for an account out of credit: no retry helps.
	QuotaExhausted bool
	// RequestsPerMinute is a budget of calls, as OpenAI's: enforced in
	// one-second slices (a bucket holding a second's worth, refilled
	// continuously), reported on every answer in x-ratelimit-limit-requests,
	// -remaining-requests and -reset-requests (Go durations: "10ms", "6m0s"),
	// and answered beyond it with 429 rate_limit_exceeded, Retry-After and
	// retry-after-ms. 0: no budget.
	RequestsPerMinute int
	// Azure, when its Key is set, authenticates as Azure OpenAI's key mode does
	// and answers its failures in Azure's error shape (see azure).
	Azure Azure
	// Space, when set, makes the vectors come from this space (see Space);
	// nil: the builtin hash model.
	Space *Space
}

// Azure is Azure OpenAI's key authentication: an "api-key" header and an
// "api-version" query parameter on every call, and a Bearer header refused.
type Azure struct {
	Key        string // the key the api-key header must carry
	APIVersion string // the api-version every call must name
}

// Stats counts what the upstream received.
type Stats struct {
	Calls       int64         `json:"calls"`
	Inputs      int64         `json:"inputs"`
	LargestCall int64         `json:"largest_call"`
	Hung        int64         `json:"hung"`
	InFlight    int64         `json:"in_flight"`
	MaxInFlight int64         `json:"max_in_flight"`
	ByStatus    map[int]int64 `json:"by_status"`
	CallTimes   []time.Time   `json:"-"` // arrival of the most recent calls, at most maxCallTimes
	// MaxPerMinute is the most calls admitted by the budget in any minute.
	MaxPerMinute int64 `json:"max_per_minute"`
}

// maxCallTimes bounds Stats.CallTimes, so a long benchmark keeps memory flat.
const maxCallTimes = 1024

// Server is the fake upstream; it is an http.Handler.
type Server struct {
	cfg    atomic.Pointer[Config]
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	rng      *rand.Rand
	stats    Stats
	scriptAt int
	level    float64 // calls left in the budget's bucket
	levelAt  time.Time
	window   []time.Time // calls admitted in the last minute, for MaxPerMinute
}

// New returns a fake upstream with cfg.
func New(cfg Config) *Server {
	s := &Server{closed: make(chan struct{}), rng: rand.New(rand.NewPCG(1, 2))}
	s.stats.ByStatus = map[int]int64{}
	s.SetConfig(cfg)
	return s
}

// admit spends one call of the budget, or says how long until one is free.
// It reports the budget's state for the x-ratelimit headers.
func (s *Server) admit(cfg *Config, now time.Time) (ok bool, remaining int, reset, retry time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	perSec := float64(cfg.RequestsPerMinute) / 60
	capacity := max(1, perSec)
	if s.levelAt.IsZero() {
		s.level = capacity
	} else {
		s.level = min(capacity, s.level+now.Sub(s.levelAt).Seconds()*perSec)
	}
	s.levelAt = now
	if s.level >= 1 {
		s.level--
		ok = true
		s.window = append(s.window, now)
		for len(s.window) > 0 && now.Sub(s.window[0]) >= time.Minute {
			s.window = s.window[1:]
		}
		s.stats.MaxPerMinute = max(s.stats.MaxPerMinute, int64(len(s.window)))
	} else {
		retry = time.Duration((1 - s.level) / perSec * float64(time.Second))
	}
	reset = time.Duration((capacity - s.level) / perSec * float64(time.Second)).Round(time.Millisecond)
	return ok, int(s.level), reset, retry
}

// SetConfig changes the behaviour for calls that arrive from now on.
func (s *Server) SetConfig(cfg Config) {
	s.mu.Lock()
	s.scriptAt = 0
	s.mu.Unlock()
	s.cfg.Store(&cfg)
}

// Close releases every hanging request (so servers can shut down) and makes new
// hangs return at once.
func (s *Server) Close() { s.once.Do(func() { close(s.closed) }) }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByStatus = make(map[int]int64, len(s.stats.ByStatus))
	for k, v := range s.stats.ByStatus {
		st.ByStatus[k] = v
	}
	st.CallTimes = append([]time.Time(nil), s.stats.CallTimes...)
	return st
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{ByStatus: map[int]int64{}}
}

// outcome picks what this call gets and how long it waits, under one lock.
func (s *Server) outcome(cfg *Config, inputs int) (status int, wait time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	status = http.StatusOK
	if s.scriptAt < len(cfg.Script) {
		status = cfg.Script[s.scriptAt]
		s.scriptAt++
	} else {
		r := s.rng.Float64()
		switch {
		case r < cfg.HangRate:
			status = 0 // hang
		case r < cfg.HangRate+cfg.ErrorRate:
			status = http.StatusInternalServerError
		case r < cfg.HangRate+cfg.ErrorRate+cfg.RateLimitRate:
			status = http.StatusTooManyRequests
		}
	}
	l := cfg.Latency
	wait = l.Base + time.Duration(inputs)*l.PerInput
	if l.Jitter > 0 {
		wait += time.Duration(s.rng.Int64N(int64(l.Jitter)))
	}
	if l.TailProb > 0 && s.rng.Float64() < l.TailProb {
		wait += l.Tail
	}
	return status, wait
}

func (s *Server) count(inputs int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Inputs += int64(inputs)
	s.stats.LargestCall = max(s.stats.LargestCall, int64(inputs))
	s.stats.ByStatus[status]++
}

// azureDeployment is Azure OpenAI's embeddings route.
var azureDeployment = regexp.MustCompile(`^/openai/deployments/[^/]+/embeddings$`)

// ServeHTTP serves POST /v1/embeddings (and Azure's
// /openai/deployments/<name>/embeddings), GET /v1/models and GET /stats.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/models" && r.Method == http.MethodGet:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(openaiapi.ModelList{Object: "list", Data: []openaiapi.Model{{ID: "fake-embedding", Object: "model", OwnedBy: "fakeupstream"}}})
	case r.URL.Path == "/stats":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	case r.URL.Path == "/v1/embeddings" && r.Method == http.MethodPost:
		s.embeddings(w, r)
	case azureDeployment.MatchString(r.URL.Path) && r.Method == http.MethodPost:
		s.embeddings(w, r) // Azure's route: one path per deployment

	default:
		openaiapi.WriteError(w, &provider.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Message: "not found"})
	}
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	cfg := s.cfg.Load()
	s.mu.Lock()
	s.stats.Calls++
	s.stats.InFlight++
	s.stats.MaxInFlight = max(s.stats.MaxInFlight, s.stats.InFlight)
	if len(s.stats.CallTimes) >= maxCallTimes {
		s.stats.CallTimes = s.stats.CallTimes[1:]
	}
	s.stats.CallTimes = append(s.stats.CallTimes, time.Now())
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.stats.InFlight--
		s.mu.Unlock()
	}()

	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if cfg.Azure.Key != "" && !s.azure(w, r, cfg.Azure) {
		return
	}
	if cfg.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+cfg.APIKey {
		s.count(0, http.StatusUnauthorized)
		openaiapi.WriteError(w, &provider.Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key", Message: "bad api key"})
		return
	}
	req, err := openaiapi.DecodeRequest(body, openaiapi.Limits{})
	if err != nil {
		pe, _ := provider.AsError(err)
		s.count(0, pe.Status)
		openaiapi.WriteError(w, pe)
		return
	}
	if cfg.MaxBatch > 0 && len(req.Inputs) > cfg.MaxBatch {
		s.count(len(req.Inputs), http.StatusBadRequest)
		openaiapi.WriteError(w, provider.BadRequest("input", "at most %d inputs per call", cfg.MaxBatch))
		return
	}
	if cfg.RequestsPerMinute > 0 && !cfg.QuotaExhausted {
		ok, remaining, reset, retry := s.admit(cfg, time.Now())
		h := w.Header()
		h.Set("X-Ratelimit-Limit-Requests", strconv.Itoa(cfg.RequestsPerMinute))
		h.Set("X-Ratelimit-Remaining-Requests", strconv.Itoa(remaining))
		h.Set("X-Ratelimit-Reset-Requests", reset.String())
		if !ok {
			s.count(len(req.Inputs), http.StatusTooManyRequests)
			h.Set("Retry-After-Ms", strconv.FormatInt(max(1, retry.Milliseconds()), 10))
			h.Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
			openaiapi.WriteError(w, &provider.Error{Status: http.StatusTooManyRequests, Type: "requests", Code: "rate_limit_exceeded",
				Message: fmt.Sprintf("Rate limit reached for requests: Limit %d, Used %d, Requested 1. (fake)", cfg.RequestsPerMinute, cfg.RequestsPerMinute)})
			return
		}
	}
	status, wait := s.outcome(cfg, len(req.Inputs))
	quota := cfg.QuotaExhausted && status == http.StatusOK
	if quota {
		status = http.StatusTooManyRequests
	}
	if status == 0 {
		s.mu.Lock()
		s.stats.Hung++
		s.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		return
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			s.count(len(req.Inputs), 499)
			return
		case <-s.closed:
		}
	}
	s.count(len(req.Inputs), status)
	switch status {
	case http.StatusOK:
	case http.StatusTooManyRequests:
		if quota {
			openaiapi.WriteError(w, &provider.Error{Status: status, Type: "insufficient_quota", Code: "insufficient_quota",
				Message: "You exceeded your current quota, please check your plan and billing details. (fake)"})
			return
		}
		ra := cfg.RetryAfter
		if ra <= 0 {
			ra = time.Second
		}
		// Seconds in Retry-After (fractions allowed, as some servers send) and the
		// exact value in retry-after-ms.
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(ra.Milliseconds(), 10))
		w.Header().Set("Retry-After", strconv.FormatFloat(ra.Seconds(), 'f', -1, 64))
		openaiapi.WriteError(w, &provider.Error{Status: status, Type: "rate_limit_error", Code: "rate_limit_exceeded", Message: "rate limited (fake)"})
		return
	default:
		openaiapi.WriteError(w, &provider.Error{Status: status, Type: "server_error", Message: "failure (fake)"})
		return
	}

	dims := cfg.Dims
	if dims == 0 {
		dims = 8
	}
	if req.Dimensions > 0 {
		dims = req.Dimensions
	}
	m, err := builtinmodel.Parse("hash-" + strconv.Itoa(dims))
	if err != nil {
		openaiapi.WriteError(w, provider.BadRequest("dimensions", "%v", err))
		return
	}
	var resp provider.Response
	if cfg.Space != nil {
		resp, err = cfg.Space.answer(m, req.Inputs)
		if err != nil {
			pe, _ := provider.AsError(err)
			openaiapi.WriteError(w, pe)
			return
		}
	} else if resp, err = (builtinmodel.Provider{Model: m}).Embed(r.Context(), provider.Request{Inputs: req.Inputs}); err != nil {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	model := req.Model
	if model == "" {
		model = "fake-embedding"
	}
	bufp := answers.Get().(*[]byte)
	*bufp = openaiapi.AppendResponse((*bufp)[:0], model, resp.Embeddings, resp.PromptTokens, req.Base64 && cfg.Encoding != EncodingFloat)
	_, _ = w.Write(*bufp)
	answers.Put(bufp)
}

// answers recycles encoded answers, so that in benchmarks the fake upstream,
// which shares the machine with the server under test, costs what a lean
// server would.
var answers = sync.Pool{New: func() any { return new([]byte) }}

// azure checks a call as Azure OpenAI does with key authentication, and
// answers a refused one as Azure does: a missing api-version is 404 "Resource
// not found" (the route does not exist without one), an unknown one 400, and a
// missing or wrong api-key (a Bearer header is no key) 401, each as
// {"error":{"code":"<status>","message":...}}, without OpenAI's type and param.
func (s *Server) azure(w http.ResponseWriter, r *http.Request, az Azure) bool {
	status, msg := 0, ""
	switch v := r.URL.Query().Get("api-version"); {
	case v == "":
		status, msg = http.StatusNotFound, "Resource not found"
	case v != az.APIVersion:
		status, msg = http.StatusBadRequest, "API version not supported"
	case r.Header.Get("Authorization") != "" || r.Header.Get("api-key") != az.Key:
		status, msg = http.StatusUnauthorized, "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
	default:
		return true
	}
	s.count(0, status)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": strconv.Itoa(status), "message": msg}})
	return false
}
