// Package embedserver is the embedding server's HTTP side: the OpenAI-compatible
// API behind admission control, the admin port (health, readiness, metrics) that
// never waits behind it, and graceful drain.
//
// The drain, on SIGTERM: readiness goes false at once, and for DrainDelay the
// server goes on answering new requests as usual (through the limiter), each
// answer asking its client to reconnect (Connection: close), so that clients
// whose endpoint list still names the pod are served while the Service's
// endpoints converge; then the listener closes and the requests already
// inside finish within DrainTimeout; the ones still running then are answered
// 503 draining with Retry-After, and the connections are closed.
package embedserver

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/limiter"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
)

// Config is the server's behaviour; cmd/embedserver fills it from flags. Zero
// values get the contract's defaults (internal/contract), except DrainTimeout
// and DrainDelay, whose zero means what it says: no wait.
type Config struct {
	Model        string // the one model served
	Dimensions   int    // vector size when a request names none; 0: the model's own
	Space        string // the vector space served, named in GET /v1/models
	MaxInFlight  int    // requests running at once
	MaxQueue     int    // requests waiting for a slot
	MaxInputs    int    // inputs per request; more is 413
	MaxBodyBytes int64  // request body; more is 413
	// MaxPendingBytes bounds the bodies being read or held by requests not yet
	// answered; a request that would pass it is shed (429, reason memory).
	MaxPendingBytes int64
	RequestTimeout  time.Duration // whole request, queue wait included; 504 past it
	QueueTimeout    time.Duration // longest wait for a slot; 503 past it
	// DrainTimeout is the longest wait, once the listener is closed, for the
	// requests inside to finish; the ones still running then are answered 503
	// draining. 0: no wait.
	DrainTimeout time.Duration
	// DrainDelay is how long after shutdown begins (readiness false) new
	// requests are still served as usual, even when idle, before the listener
	// closes: clients that have not yet seen the pod leave the Service's
	// endpoints get their answer, not an error. 0: none. The whole drain
	// takes at most DrainDelay + DrainTimeout + contract.DrainCutoffGrace.
	DrainDelay time.Duration
	RetryAfter time.Duration // Retry-After on 429 and 503
	// Metrics are the server's metrics, which the provider was also handed as
	// its observer; nil: the server makes its own.
	Metrics *Metrics
	Logger  *slog.Logger
	Pprof   bool // serve /debug/pprof/ on the admin port
	// Budget is the provider's upstream budget, served at /budget on the admin
	// port; nil: none (builtin). BudgetToken is the bearer token that may
	// change its share (contract.BudgetTokenEnv); empty: nobody may.
	Budget      *budget.Limiter
	BudgetToken string
}

// Causes that end a request's context, so answers can tell them apart.
var (
	errRequestTimeout = errors.New("request deadline exceeded")
	errQueueTimeout   = errors.New("queue wait exceeded")
	errDrainTimeout   = errors.New("drain timeout passed")
)

// Server serves one model through a provider.
type Server struct {
	cfg      Config
	provider provider.Provider
	limiter  *limiter.Limiter
	pending  *limiter.Bytes // body bytes held by requests not yet answered
	metrics  *Metrics
	log      *slog.Logger
	draining atomic.Bool
	active   atomic.Int64 // embedding requests inside the handler

	// baseCtx is every API request's parent; cutOff ends it, with
	// errDrainTimeout, when the drain timeout passes with requests inside.
	baseCtx context.Context
	cutOff  context.CancelCauseFunc

	queueFull *openaiapi.PreparedError // the flood answer, encoded once
}

// New returns a server; Run serves it.
func New(cfg Config, p provider.Provider) *Server {
	if cfg.MaxInFlight < 1 {
		cfg.MaxInFlight = contract.DefaultMaxInFlight
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = contract.DefaultMaxBodyBytes
	}
	if cfg.MaxPendingBytes <= 0 {
		cfg.MaxPendingBytes = contract.DefaultMaxPendingBytes
	}
	if cfg.MaxInputs <= 0 {
		cfg.MaxInputs = contract.DefaultMaxInputs
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = contract.DefaultRequestTimeout
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = contract.DefaultQueueTimeout
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = contract.DefaultRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	lim := limiter.New(cfg.MaxInFlight, cfg.MaxQueue)
	pending := limiter.NewBytes(cfg.MaxPendingBytes)
	cfg.Metrics.lim.Store(lim)
	cfg.Metrics.pending.Store(pending)
	s := &Server{cfg: cfg, provider: p, limiter: lim, pending: pending, metrics: cfg.Metrics, log: cfg.Logger}
	s.baseCtx, s.cutOff = context.WithCancelCause(context.Background())
	s.queueFull = openaiapi.NewPreparedError(&provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "queue_full",
		Message: fmt.Sprintf("server busy: %d requests running and %d waiting", lim.MaxInFlight(), lim.MaxQueue()), RetryAfter: cfg.RetryAfter})
	return s
}

// Handler is the API port's handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/embeddings", s.embeddings)
	mux.HandleFunc("/v1/models", s.models)
	mux.HandleFunc("/v1/models/{id}", s.models)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		openaiapi.WriteError(w, &provider.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
			Message: fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// AdminHandler is the admin port's handler: /healthz, /readyz, /metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/budget", s.budgetHandler)
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	openaiapi.WriteError(w, &provider.Error{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed", Message: "use " + allow})
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, http.MethodGet)
		return
	}
	m := openaiapi.Model{ID: s.cfg.Model, Object: "model", OwnedBy: "ragops",
		Ragops: &openaiapi.ModelSpace{Space: s.cfg.Space, Dimensions: s.defaultDimensions()}}
	var body any = openaiapi.ModelList{Object: "list", Data: []openaiapi.Model{m}}
	if id := r.PathValue("id"); id != "" {
		if id != s.cfg.Model {
			openaiapi.WriteError(w, &provider.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "model_not_found", Param: "model",
				Message: fmt.Sprintf("model %q is not served here; this server serves %q", id, s.cfg.Model)})
			return
		}
		body = m
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// defaultDimensions is the vector size of an answer to a request that names
// none: --dimensions, or else the provider's own when it knows it.
func (s *Server) defaultDimensions() int {
	if s.cfg.Dimensions > 0 {
		return s.cfg.Dimensions
	}
	if d, ok := s.provider.(provider.Dimensioner); ok {
		return d.Dimensions()
	}
	return 0
}

// statusClientClosed is recorded when the client left first. The answer
// written then (408 client_closed) reaches nobody, unless the client only
// closed its sending side and still reads.
const statusClientClosed = 499

// answerWriter remembers whether an answer was written, so that no path can end
// in net/http's implicit 200 with an empty body.
type answerWriter struct {
	http.ResponseWriter
	answered bool
}

func (a *answerWriter) WriteHeader(code int) {
	a.answered = true
	a.ResponseWriter.WriteHeader(code)
}

func (a *answerWriter) Write(b []byte) (int, error) {
	a.answered = true
	return a.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (a *answerWriter) Unwrap() http.ResponseWriter { return a.ResponseWriter }

func (s *Server) embeddings(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status := http.StatusOK
	w := &answerWriter{ResponseWriter: rw}
	dropBody := false // a shed upload: read the rest of it once answered and counted
	defer func() {
		if !w.answered {
			s.log.Error("no answer was written; answering 500", "status", status)
			status = http.StatusInternalServerError
			openaiapi.WriteError(w, &provider.Error{Status: status, Type: "server_error", Message: "internal error: no answer"})
		}
		s.metrics.countRequest(status)
		s.metrics.duration.Observe(time.Since(start).Seconds())
		if dropBody {
			s.dropBody(w, r)
		}
	}()
	fail := func(e *provider.Error) {
		status = e.Status
		openaiapi.WriteError(w, e)
	}
	if r.Method != http.MethodPost {
		status = http.StatusMethodNotAllowed
		methodNotAllowed(w, http.MethodPost)
		return
	}
	s.active.Add(1)
	defer s.active.Add(-1)
	if s.draining.Load() {
		// Served as usual; then a keep-alive client reconnects, which through
		// the Service lands it on a pod that stays.
		w.Header().Set("Connection", "close")
	}

	// A declared body over the limit is refused before a byte of it is read.
	if r.ContentLength > s.cfg.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		fail(s.bodyTooLarge())
		return
	}
	// Under overload most requests are refused: refuse them before reading or
	// decoding anything, so a flood costs little CPU and memory.
	if s.limiter.Full() {
		s.shedQueueFull(w, &status)
		return
	}

	ctx, cancel := context.WithTimeoutCause(r.Context(), s.cfg.RequestTimeout, errRequestTimeout)
	defer cancel()

	body, held, err := s.readBody(r)
	defer s.pending.Release(held)
	if err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.Is(err, errPendingFull):
			s.shedMemory(w, r, &status)
			dropBody = true
		case errors.As(err, &tooBig):
			w.Header().Set("Connection", "close")
			fail(s.bodyTooLarge())
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The connection's read deadline (the request timeout) passed with the
			// body still arriving.
			w.Header().Set("Connection", "close")
			fail(&provider.Error{Status: http.StatusRequestTimeout, Type: "invalid_request_error", Code: "request_timeout",
				Message: fmt.Sprintf("the request body did not arrive within the request timeout of %v", s.cfg.RequestTimeout)})
		case errors.Is(err, io.ErrUnexpectedEOF):
			fail(provider.BadRequest("", "the request body ended before its Content-Length of %d bytes", r.ContentLength))
		case r.Context().Err() != nil:
			s.answerContextEnd(r, &status, fail)
		default:
			fail(provider.BadRequest("", "could not read the request body: %v", err))
		}
		return
	}
	req, err := openaiapi.DecodeRequest(body, openaiapi.Limits{MaxInputs: s.cfg.MaxInputs})
	if err != nil {
		pe, _ := provider.AsError(err)
		fail(pe)
		return
	}
	if req.Model != "" && req.Model != s.cfg.Model {
		fail(&provider.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "model_not_found", Param: "model",
			Message: fmt.Sprintf("model %q is not served here; this server serves %q", req.Model, s.cfg.Model)})
		return
	}

	release, err := s.admit(ctx)
	if err != nil {
		switch {
		case errors.Is(err, limiter.ErrQueueFull):
			s.shedQueueFull(w, &status)
		case errors.Is(err, errQueueTimeout):
			s.metrics.shed.WithLabelValues(contract.ShedQueueTimeout).Inc()
			fail(&provider.Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "queue_timeout",
				Message: fmt.Sprintf("no free slot within the queue timeout of %v", s.cfg.QueueTimeout), RetryAfter: s.cfg.RetryAfter})
		default:
			s.answerContextEnd(r, &status, fail)
		}
		return
	}
	defer release()

	// Work held back for the upstream's budget waits inside the queue
	// deadline too, counted from arrival like the wait for a slot.
	resp, err := s.provider.Embed(provider.WithQueueDeadline(ctx, start.Add(s.cfg.QueueTimeout)), provider.Request{Model: s.cfg.Model, Inputs: req.Inputs, Dimensions: cmp.Or(req.Dimensions, s.cfg.Dimensions), User: req.User})
	if err != nil {
		if pe, ok := provider.AsError(err); ok {
			if pe.Code == contract.ShedBudget {
				s.metrics.shed.WithLabelValues(contract.ShedBudget).Inc()
			}
			if pe.Status >= 500 {
				s.log.Warn("embedding failed", "status", pe.Status, "err", err)
			}
			fail(pe)
			return
		}
		// A shared upstream call may hit the same deadline a moment before this
		// request's own timer fires: both are this request running out of time.
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			s.answerContextEnd(r, &status, fail)
			return
		}
		s.log.Error("embedding failed", "err", err)
		fail(&provider.Error{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error"})
		return
	}
	if len(resp.Embeddings) != len(req.Inputs) {
		s.log.Error("provider returned the wrong number of vectors", "got", len(resp.Embeddings), "want", len(req.Inputs))
		fail(&provider.Error{Status: http.StatusInternalServerError, Type: "server_error", Message: "internal error: wrong number of vectors"})
		return
	}
	bufp := responseBuffers.Get().(*[]byte)
	out := openaiapi.AppendResponse((*bufp)[:0], s.cfg.Model, resp.Embeddings, resp.PromptTokens, req.Base64)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	_, _ = w.Write(out) // Write does not keep out, so the buffer can go back
	if cap(out) <= maxPooledResponse {
		*bufp = out
		responseBuffers.Put(bufp)
	}
}

func (s *Server) bodyTooLarge() *provider.Error {
	return &provider.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "body_too_large",
		Message: fmt.Sprintf("request body is over the limit of %d bytes", s.cfg.MaxBodyBytes)}
}

// errPendingFull: the body would pass --max-pending-bytes.
var errPendingFull = errors.New("pending bytes full")

// readChunk is how much more of a body without Content-Length is reserved at
// a time, as it arrives.
const readChunk = 64 << 10

// readBody reads the request body into memory reserved from the byte budget
// and returns it with the number of bytes reserved, which the caller releases
// once the request is answered (also on error). A declared length is reserved
// whole before the first byte is read; a body without one (chunked) reserves
// as it arrives, buffer by buffer as the buffer doubles. The buffers it
// outgrew stay reserved too: they are garbage, but resident until the
// collector runs, and the budget is what the process holds. Neither can pass
// MaxBodyBytes (*http.MaxBytesError).
func (s *Server) readBody(r *http.Request) (body []byte, held int64, err error) {
	if n := r.ContentLength; n >= 0 {
		if !s.pending.TryReserve(n) {
			return nil, 0, errPendingFull
		}
		body = make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, n, err
		}
		return body, n, nil
	}
	limit := s.cfg.MaxBodyBytes
	for {
		if len(body) == cap(body) {
			if int64(len(body)) > limit {
				return nil, held, &http.MaxBytesError{Limit: limit}
			}
			// Grow to twice the size (at least readChunk), one byte past the
			// limit at most, reserving the new buffer before making it.
			grow := min(max(int64(cap(body)), readChunk), limit+1-int64(len(body)))
			next := int64(cap(body)) + grow
			if !s.pending.TryReserve(next) {
				return nil, held, errPendingFull
			}
			body = append(make([]byte, 0, next), body...)
			held += next
		}
		n, err := r.Body.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		if err == io.EOF {
			if int64(len(body)) > limit {
				return nil, held, &http.MaxBytesError{Limit: limit}
			}
			return body, held, nil
		}
		if err != nil {
			return nil, held, err
		}
	}
}

// responseBuffers recycles encoded answers (about 6 KB for one 384-dimension
// float vector), which were a quarter of the bytes the server allocated under
// load; answers above maxPooledResponse are left to the collector.
var responseBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledResponse = 1 << 20

// admit takes a free slot at once, or waits for one no longer than the queue
// timeout (and never past the request deadline, which qctx inherits). The wait's
// own deadline is only built when there is a wait. A client already gone takes
// nothing, so its work never starts.
func (s *Server) admit(ctx context.Context) (release func(), err error) {
	if ctx.Err() == nil {
		if release, ok := s.limiter.TryAcquire(); ok {
			return release, nil
		}
	}
	qctx, qcancel := context.WithTimeoutCause(ctx, s.cfg.QueueTimeout, errQueueTimeout)
	defer qcancel()
	return s.limiter.Acquire(qctx)
}

func (s *Server) shedQueueFull(w http.ResponseWriter, status *int) {
	s.metrics.shedQueueFull.Inc()
	*status = http.StatusTooManyRequests
	// Under overload, free the connection (its goroutine and buffers) at once; a
	// client that honours Retry-After reconnects a second later at little cost.
	w.Header()["Connection"] = []string{"close"}
	s.queueFull.Write(w)
}

// answerContextEnd answers a request that ran out of time: 504, or, when the
// client left first, 499 (see statusClientClosed), or, when the drain timeout
// cut it off, 503 draining.
func (s *Server) answerContextEnd(r *http.Request, status *int, fail func(*provider.Error)) {
	if errors.Is(context.Cause(r.Context()), errDrainTimeout) {
		s.metrics.shed.WithLabelValues(contract.ShedDraining).Inc()
		fail(&provider.Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: contract.ShedDraining, RetryAfter: s.cfg.RetryAfter,
			Message: fmt.Sprintf("the server is shutting down and its drain timeout of %v passed before this request was answered; retry on another replica", s.cfg.DrainTimeout)})
		return
	}
	if r.Context().Err() != nil {
		s.answerClientGone(status, fail)
		return
	}
	fail(&provider.Error{Status: http.StatusGatewayTimeout, Type: "server_error", Code: "request_timeout",
		Message: fmt.Sprintf("no answer within the request timeout of %v", s.cfg.RequestTimeout)})
}

// answerClientGone records 499 and still answers, so that a client that only
// closed its sending side gets an error rather than an empty 200.
func (s *Server) answerClientGone(status *int, fail func(*provider.Error)) {
	fail(&provider.Error{Status: http.StatusRequestTimeout, Type: "invalid_request_error", Code: "client_closed",
		Message: "the client closed the connection before the request was answered"})
	*status = statusClientClosed
}

// shedMemory refuses a request whose body would pass --max-pending-bytes,
// before reading it (or, without Content-Length, as soon as it would). The
// client is likely still sending that body: closing at once would reset the
// connection and lose the answer, so the caller then drops the rest of the
// body (dropBody).
func (s *Server) shedMemory(w http.ResponseWriter, r *http.Request, status *int) {
	s.metrics.shed.WithLabelValues(contract.ShedMemory).Inc()
	*status = http.StatusTooManyRequests
	w.Header()["Connection"] = []string{"close"}
	size := "its body"
	if r.ContentLength >= 0 {
		size = fmt.Sprintf("its %d bytes", r.ContentLength)
	}
	openaiapi.WriteError(w, &provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: contract.ShedMemory, RetryAfter: s.cfg.RetryAfter,
		Message: fmt.Sprintf("server busy: the bodies of requests in progress hold %d bytes, and %s would pass --max-pending-bytes %d",
			s.pending.Used(), size, s.pending.Max())})
}

// dropBody sends the answer written so far, then reads the rest of the body
// (at most --max-body-bytes) through a small pooled buffer and drops it, for
// at most lingerTimeout, so that a client still uploading reads the answer
// instead of a reset connection. Memory stays bounded; only time is spent.
func (s *Server) dropBody(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(min(lingerTimeout, s.cfg.RequestTimeout)))
	_, _ = io.CopyN(io.Discard, r.Body, s.cfg.MaxBodyBytes+1)
}

// lingerTimeout bounds how long a shed upload is read and dropped so that its
// sender can read the answer.
const lingerTimeout = 5 * time.Second

// Draining reports whether shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Run serves the API on apiLn and the admin handler on adminLn until ctx ends,
// then drains (see the package comment). It returns nil after a clean drain,
// or an error when work was cut off or a listener failed.
func (s *Server) Run(ctx context.Context, apiLn, adminLn net.Listener) error {
	api := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.cfg.RequestTimeout,
		WriteTimeout: s.cfg.RequestTimeout + 5*time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return s.baseCtx }}
	admin := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(apiLn) }()
	go func() { errc <- admin.Serve(adminLn) }()

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	drainErr := s.drain(api)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := admin.Shutdown(sctx); err != nil {
		_ = admin.Close()
	}
	for range 2 - btoi(serveErr != nil) {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && serveErr == nil {
			serveErr = err
		}
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serving: %w", serveErr)
	}
	return drainErr
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// drain turns readiness off and keeps serving for the drain delay, then
// closes the listener and waits up to the drain timeout for the requests
// inside. Requests still inside then are answered 503 draining (their
// context ends with errDrainTimeout) and get contract.DrainCutoffGrace to
// send that answer before their connections are closed.
func (s *Server) drain(api *http.Server) error {
	s.draining.Store(true)
	defer s.cutOff(context.Canceled)
	s.log.Info("draining: not ready; serving until the drain delay has passed", "delay", s.cfg.DrainDelay,
		"in_flight", s.limiter.InFlight(), "queued", s.limiter.QueueDepth())
	time.Sleep(s.cfg.DrainDelay)

	s.log.Info("draining: listener closed; waiting for the requests inside", "timeout", s.cfg.DrainTimeout,
		"in_flight", s.limiter.InFlight(), "queued", s.limiter.QueueDepth())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	if err := api.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		s.log.Info("drained")
		return nil
	}
	// Connections are still open: requests inside, or a client still
	// sending its headers (bounded by ReadHeaderTimeout).
	left := s.active.Load()
	s.cutOff(errDrainTimeout)
	gctx, gcancel := context.WithTimeout(context.Background(), contract.DrainCutoffGrace)
	defer gcancel()
	if err := api.Shutdown(gctx); err != nil {
		_ = api.Close()
	}
	if left > 0 {
		return fmt.Errorf("drain timeout %v passed with %d requests unfinished; they were answered 503 %s", s.cfg.DrainTimeout, left, contract.ShedDraining)
	}
	s.log.Info("drained")
	return nil
}
