// Package provider defines what the embedding server asks of a model backend, and
// the errors a backend returns so the server can answer with the right status.
package provider

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Input is one item of an embeddings request: a text, or a list of token ids.
type Input struct {
	Text     string
	Tokens   []int
	IsTokens bool
}

// Request is what the server hands a provider, after validation.
type Request struct {
	Model      string
	Inputs     []Input
	Dimensions int // 0: the model's own
	User       string
}

// Response holds one vector per input, in input order.
type Response struct {
	Embeddings   [][]float32
	PromptTokens int
}

// Provider turns inputs into vectors. It must return when ctx ends.
type Provider interface {
	Embed(ctx context.Context, req Request) (Response, error)
}

// Dimensioner is a provider that knows the vector size it answers when a
// request names none (0 while it does not know yet).
type Dimensioner interface {
	Dimensions() int
}

// Observer receives what a provider does, for the server's metrics. The
// embedding server's Metrics implements it; providers take it as nil when
// nobody watches.
type Observer interface {
	Batch(inputs int)                      // one model call's size
	Upstream(code string, d time.Duration) // one upstream attempt: "200", "429", "timeout", "error", ...
	Retry()                                // one upstream retry scheduled
}

// BudgetObserver is an Observer that also watches the upstream budget
// (internal/budget); providers that pace their calls tell it.
type BudgetObserver interface {
	HeldBack(wait time.Duration) // calls waited for the budget, about this long
	Paused(d time.Duration)      // the upstream asked the pod to pause (429, nothing remaining)
	RateLimited()                // an upstream 429 that was a rate limit, not a final error
}

type queueDeadlineKey struct{}

// WithQueueDeadline tells a provider how long the request may wait before its
// work starts: a provider that holds requests back (for the upstream's
// budget) refuses at once those it could not start by then.
func WithQueueDeadline(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, queueDeadlineKey{}, t)
}

// WaitDeadline is the latest time the request's work may start: its queue
// deadline when the server set one, else its own deadline.
func WaitDeadline(ctx context.Context) (time.Time, bool) {
	dl, ok := ctx.Deadline()
	if q, qok := ctx.Value(queueDeadlineKey{}).(time.Time); qok && (!ok || q.Before(dl)) {
		return q, true
	}
	return dl, ok
}

// Error is a failure with the HTTP answer it deserves. Providers return it (or
// wrap it) so the server does not guess.
type Error struct {
	Status     int    // HTTP status for the client
	Type       string // OpenAI error type, e.g. "invalid_request_error"
	Code       string
	Param      string
	Message    string
	RetryAfter time.Duration // 0: none
	// Final marks an answer no retry can change (an upstream's exhausted quota,
	// a refused input): the answer tells the client's SDK not to retry.
	Final bool
	Err   error // the cause, for logs
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}

// BadRequest is a 400 naming the offending parameter.
func BadRequest(param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: "invalid_value", Message: fmt.Sprintf(format, args...)}
}

// FailRate wraps p so that a fraction rate of calls fail with 500 before reaching
// p. It exists for fault-injection drills (the server's --fail-rate flag): a
// deliberately bad deployment that really errors, so canary analysis can be seen
// rolling it back.
func FailRate(p Provider, rate float64, seed uint64) Provider {
	if rate <= 0 {
		return p
	}
	return &failRate{next: p, rate: rate, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

type failRate struct {
	next Provider
	rate float64
	mu   sync.Mutex
	rng  *rand.Rand
}

// Dimensions passes the wrapped provider's on (Dimensioner).
func (f *failRate) Dimensions() int {
	if d, ok := f.next.(Dimensioner); ok {
		return d.Dimensions()
	}
	return 0
}

func (f *failRate) Embed(ctx context.Context, req Request) (Response, error) {
	f.mu.Lock()
	fail := f.rng.Float64() < f.rate
	f.mu.Unlock()
	if fail {
		return Response{}, &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "injected_fault", Message: "injected fault (--fail-rate drill)"}
	}
	return f.next.Embed(ctx, req)
}
