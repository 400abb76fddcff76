// Package openai is the embedding server's provider for any OpenAI-compatible
// upstream. One shared http.Client pools connections sized to the server's
// concurrency; each attempt has its own timeout; failures worth retrying (429,
// 5xx, timeouts, broken connections) are retried with exponential backoff and
// jitter, honouring the upstream's Retry-After, never past the request's deadline.
// Large requests are split into calls of at most MaxBatchSize inputs, and small
// concurrent requests are coalesced into one call (see batcher.go).
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
)

// DefaultLinger is the default ceiling of the coalescing wait, which is
// otherwise 1/80 of the recent upstream latency (see linger.go).
const DefaultLinger = contract.DefaultCoalesceLinger

// Config configures the client. Zero values get the server's defaults
// (internal/contract), as noted.
type Config struct {
	BaseURL        string        // including /v1
	APIKey         string        // sent as Auth says when set
	Auth           string        // contract.UpstreamAuthBearer (default) or contract.UpstreamAuthAzureAPIKey
	APIVersion     string        // when set, the api-version query parameter of every call
	Model          string        // upstream model name
	MaxInFlight    int           // sizes the connection pool; default 8
	MaxBatchSize   int           // inputs per upstream call; default 64
	AttemptTimeout time.Duration // per upstream attempt; default 10s
	MaxAttempts    int           // including the first; default 3
	InitialBackoff time.Duration // default 100ms; doubles per retry
	MaxBackoff     time.Duration // default 5s
	Linger         time.Duration // ceiling of the coalescing wait while a call is in flight (see linger.go); default 2ms, <0 disables
	// The upstream's limits (internal/budget): this pod's share of a budget
	// per minute (0: not declared; then learned from the upstream's headers),
	// and what one call may carry (0: OpenAI's 2048 inputs, 300000 tokens).
	RequestsPerMinute int
	TokensPerMinute   int
	MaxInputsPerCall  int
	MaxTokensPerCall  int
	// Observer is told every upstream call's size, attempt and retry; nil: nobody.
	Observer provider.Observer
}

// Client is the provider. Create it with New; Close releases idle connections.
type Client struct {
	cfg     Config
	budget  *budget.Limiter
	lim     budget.CallLimits
	http    *http.Client
	url     string
	batcher *batcher
	dims    atomic.Int64 // size of the last vector answered for a request naming no dimensions
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("openai provider: upstream URL is required")
	}
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("openai provider: upstream URL %q must start with http:// or https://", cfg.BaseURL)
	}
	switch cfg.Auth {
	case "":
		cfg.Auth = contract.DefaultUpstreamAuth
	case contract.UpstreamAuthBearer, contract.UpstreamAuthAzureAPIKey:
	default:
		return nil, fmt.Errorf("openai provider: upstream auth %q must be %s or %s", cfg.Auth, contract.UpstreamAuthBearer, contract.UpstreamAuthAzureAPIKey)
	}
	endpoint := strings.TrimSuffix(cfg.BaseURL, "/") + "/embeddings"
	if cfg.APIVersion != "" {
		u, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("openai provider: upstream URL %q: %w", cfg.BaseURL, err)
		}
		q := u.Query()
		q.Set(contract.APIVersionParam, cfg.APIVersion)
		u.RawQuery = q.Encode()
		endpoint = u.String()
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = contract.DefaultMaxInFlight
	}
	if cfg.MaxBatchSize <= 0 {
		cfg.MaxBatchSize = contract.DefaultMaxBatchSize
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = contract.DefaultUpstreamTimeout
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = contract.DefaultMaxAttempts
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = contract.DefaultInitialBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Linger == 0 {
		cfg.Linger = DefaultLinger
	}
	if cfg.MaxInputsPerCall <= 0 {
		cfg.MaxInputsPerCall = contract.DefaultMaxInputsPerCall
	}
	if cfg.MaxTokensPerCall <= 0 {
		cfg.MaxTokensPerCall = contract.DefaultMaxTokensPerCall
	}
	// The pool holds as many connections as requests can run at once, so steady
	// load reuses connections instead of dialling; MaxConnsPerHost bounds what a
	// burst (split requests) can open against the upstream.
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          cfg.MaxInFlight,
		MaxIdleConnsPerHost:   cfg.MaxInFlight,
		MaxConnsPerHost:       2 * cfg.MaxInFlight,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	c := &Client{cfg: cfg, http: &http.Client{Transport: tr}, url: endpoint,
		budget: budget.New(budget.Share{RequestsPerMinute: cfg.RequestsPerMinute, TokensPerMinute: cfg.TokensPerMinute}, time.Now()),
		lim:    budget.CallLimits{MaxInputs: min(cfg.MaxBatchSize, cfg.MaxInputsPerCall), MaxTokens: cfg.MaxTokensPerCall}}
	c.batcher = newBatcher(c.lim, cfg.Linger, c.call, c.budget, cfg.Observer)
	return c, nil
}

// Close drops idle upstream connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Budget is the pod's budget for upstream calls; SetShare on it changes the
// share while serving.
func (c *Client) Budget() *budget.Limiter { return c.budget }

// Embed splits req into chunks that each fit one call (MaxBatchSize,
// MaxInputsPerCall and MaxTokensPerCall), hands them to the batcher (which
// may share an upstream call with other requests) and puts the vectors back
// in input order. A request over the per-call limits is split, never refused.
func (c *Client) Embed(ctx context.Context, req provider.Request) (provider.Response, error) {
	key := batchKey{dims: req.Dimensions, user: req.User, tokens: len(req.Inputs) > 0 && req.Inputs[0].IsTokens}
	est := make([]int, len(req.Inputs))
	for i, in := range req.Inputs {
		if in.IsTokens {
			est[i] = max(1, len(in.Tokens))
		} else {
			est[i] = budget.EstimateTokens(in.Text)
		}
	}
	var members []*member
	off := 0
	for _, end := range budget.Split(est, c.lim) {
		tokens := 0
		for _, t := range est[off:end] {
			tokens += t
		}
		// The last chunk's call, when it goes out at once, runs here: this
		// goroutine would only wait for it.
		m, run, err := c.batcher.submit(ctx, key, req.Inputs[off:end], tokens, end == len(req.Inputs))
		if err != nil {
			return provider.Response{}, err
		}
		members = append(members, m)
		if run != nil {
			c.batcher.run(run)
		}
		off = end
	}
	out := provider.Response{Embeddings: make([][]float32, 0, len(req.Inputs))}
	for _, m := range members {
		select {
		case r := <-m.done:
			if r.err != nil {
				if _, ok := provider.AsError(r.err); !ok && ctx.Err() != nil {
					// The call ended because this request did (its deadline, or its
					// client left; a call run here returns only then): say which.
					return provider.Response{}, fmt.Errorf("waiting for upstream: %w", context.Cause(ctx))
				}
				return provider.Response{}, r.err
			}
			out.Embeddings = append(out.Embeddings, r.vectors...)
			out.PromptTokens += r.tokens
		case <-ctx.Done():
			return provider.Response{}, fmt.Errorf("waiting for upstream: %w", context.Cause(ctx))
		}
	}
	if req.Dimensions == 0 && len(out.Embeddings) > 0 {
		c.dims.Store(int64(len(out.Embeddings[0])))
	}
	return out, nil
}

// Dimensions is the upstream's own vector size, as its last answer to a
// request naming no dimensions showed; 0 before one (provider.Dimensioner).
func (c *Client) Dimensions() int { return int(c.dims.Load()) }

// upstreamError is one failed attempt.
type upstreamError struct {
	status     int // 0: no HTTP answer
	typ, code  string
	param      string
	message    string
	retryAfter time.Duration
	retryable  bool
	timeout    bool // no answer within the attempt timeout
}

func (e *upstreamError) Error() string {
	if e.status == 0 {
		return "upstream: " + e.message
	}
	// Azure's codes repeat the status ("404"): say it once.
	if e.code != "" && e.code != strconv.Itoa(e.status) {
		return fmt.Sprintf("upstream answered %d %s: %s", e.status, e.code, e.message)
	}
	return fmt.Sprintf("upstream answered %d: %s", e.status, e.message)
}

// call runs one upstream call with retries; ctx carries the latest deadline of
// the requests sharing it, tokens is the call's estimate (already taken from
// the budget for the first attempt). Retries spend the budget too, and wait
// for it: a rate-limited answer sets the pod-wide pause (budget.Learn), so
// every call waits out one cooldown instead of each retrying on its own.
func (c *Client) call(ctx context.Context, key batchKey, inputs []provider.Input, tokens int) ([][]float32, int, error) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.Batch(len(inputs))
	}
	body, err := c.body(key, inputs)
	if err != nil {
		return nil, 0, fmt.Errorf("encoding upstream request: %w", err)
	}
	// A call sent without pacing may meet a pause that began after it was
	// batched: it waits the pause out like the others.
	if until := c.budget.PausedUntil(time.Now()); !until.IsZero() {
		if dl, ok := ctx.Deadline(); ok && !until.Before(dl) {
			wait := time.Until(until)
			return nil, 0, &provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: contract.ShedBudget, RetryAfter: wait,
				Message: fmt.Sprintf("the upstream asked for a pause of %v, past the request deadline", wait.Round(time.Millisecond))}
		}
		if err := c.waitBudget(ctx, until, 0); err != nil {
			return nil, 0, err
		}
	}
	for attempt := 1; ; attempt++ {
		vecs, used, err := c.attempt(ctx, body, len(inputs))
		if err == nil {
			if used > 0 {
				c.budget.Refund(time.Now(), tokens-used)
			}
			return vecs, used, nil
		}
		if ctx.Err() != nil {
			return nil, 0, fmt.Errorf("upstream call: %w", context.Cause(ctx))
		}
		var ue *upstreamError
		if !errors.As(err, &ue) {
			return nil, 0, err
		}
		if !ue.retryable {
			return nil, 0, finalAnswer(ue)
		}
		if attempt >= c.cfg.MaxAttempts {
			return nil, 0, exhaustedAnswer(ue, attempt, "")
		}
		now := time.Now()
		next := now.Add(Backoff(c.cfg.InitialBackoff, c.cfg.MaxBackoff, attempt, rand.Float64()))
		if ue.status == http.StatusTooManyRequests {
			next = now // the pause the answer set is the wait
		} else if ue.retryAfter > 0 {
			next = now.Add(ue.retryAfter)
		}
		if ready := c.budget.ReadyAt(next, tokens); ready.After(next) {
			next = ready
		}
		if dl, ok := ctx.Deadline(); ok && !next.Before(dl) {
			// Waiting would outlive the request: answer now instead of at the deadline.
			wait := next.Sub(now)
			if ue.status == http.StatusTooManyRequests {
				return nil, 0, &provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: contract.ShedBudget, RetryAfter: wait,
					Message: fmt.Sprintf("the upstream is rate limiting (%v); it can be asked again in %v, past the request deadline", ue, wait.Round(time.Millisecond)), Err: ue}
			}
			return nil, 0, exhaustedAnswer(ue, attempt, fmt.Sprintf("; the next retry (in %v) would pass the request deadline", wait.Round(time.Millisecond)))
		}
		if c.cfg.Observer != nil {
			c.cfg.Observer.Retry()
		}
		if err := c.waitBudget(ctx, next, tokens); err != nil {
			return nil, 0, err
		}
	}
}

// waitBudget waits until from, then until the budget allows the call, and
// spends it.
func (c *Client) waitBudget(ctx context.Context, from time.Time, tokens int) error {
	for {
		if d := time.Until(from); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("upstream call: %w", context.Cause(ctx))
			}
		}
		ok, at := c.budget.TryTake(time.Now(), tokens)
		if ok {
			return nil
		}
		from = at
	}
}

// Backoff is the wait before retry number attempt (1-based): initial*2^(attempt-1)
// capped at maxWait, with jitter r in [0,1) spreading it over [d/2, d).
func Backoff(initial, maxWait time.Duration, attempt int, r float64) time.Duration {
	d := initial
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + time.Duration(r*float64(d/2))
}

// requestBody is one upstream call's body as pieces written in order (with
// writev where the connection allows). A long text that needs no escaping in
// JSON (the usual case) is sent from its own bytes, which for the embedding
// server are a view of the client's request body: a large upload is not
// copied again for the upstream. Everything else is encoded into small glue
// buffers between them.
type requestBody struct {
	pieces net.Buffers
	size   int64
}

// reader returns a fresh reader over the body, for each attempt.
func (b requestBody) reader() io.ReadCloser {
	pieces := append(net.Buffers(nil), b.pieces...) // Read consumes its receiver
	return io.NopCloser(&pieces)
}

// zeroCopyMin is the length from which a text is sent from its own bytes;
// shorter ones are cheaper to copy into the glue.
const zeroCopyMin = 512

func (c *Client) body(key batchKey, inputs []provider.Input) (requestBody, error) {
	// base64 is what the official clients ask for by default, so any upstream they
	// work with supports it, and it decodes faster than JSON floats; an upstream
	// that ignores it and sends floats is understood too.
	var b requestBody
	glue := make([]byte, 0, 256)
	glue = openaiapi.AppendJSONString(append(glue, `{"model":`...), c.cfg.Model)
	glue = append(glue, `,"encoding_format":"base64"`...)
	if key.dims > 0 {
		glue = strconv.AppendInt(append(glue, `,"dimensions":`...), int64(key.dims), 10)
	}
	if key.user != "" {
		glue = openaiapi.AppendJSONString(append(glue, `,"user":`...), key.user)
	}
	glue = append(glue, `,"input":[`...)
	for i, in := range inputs {
		if i > 0 {
			glue = append(glue, ',')
		}
		switch {
		case key.tokens:
			ids, err := json.Marshal(in.Tokens)
			if err != nil {
				return b, err
			}
			glue = append(glue, ids...)
		case len(in.Text) >= zeroCopyMin && openaiapi.PlainJSON(in.Text):
			b.pieces = append(b.pieces, append(glue, '"'), unsafe.Slice(unsafe.StringData(in.Text), len(in.Text)))
			glue = append(make([]byte, 0, 64), '"')
		default:
			glue = openaiapi.AppendJSONString(glue, in.Text)
		}
	}
	b.pieces = append(b.pieces, append(glue, "]}"...))
	for _, p := range b.pieces {
		b.size += int64(len(p))
	}
	return b, nil
}

// learn hands what an answer said about the upstream's limits to the budget,
// and tells the observer of rate limits and pauses.
func (c *Client) learn(sig budget.Signal) {
	now := time.Now()
	before := c.budget.PausedUntil(now)
	c.budget.Learn(now, sig)
	bo, ok := c.cfg.Observer.(provider.BudgetObserver)
	if !ok {
		return
	}
	if sig.RateLimited {
		bo.RateLimited()
	}
	if after := c.budget.PausedUntil(now); after.After(before) {
		from := now
		if before.After(now) {
			from = before
		}
		bo.Paused(after.Sub(from))
	}
}

const maxResponseBytes = 256 << 20

func (c *Client) attempt(ctx context.Context, body requestBody, n int) ([][]float32, int, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
	defer cancel()
	start := time.Now()
	code := "error"
	defer func() {
		if c.cfg.Observer != nil {
			c.cfg.Observer.Upstream(code, time.Since(start))
		}
	}()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.url, body.reader())
	if err != nil {
		return nil, 0, fmt.Errorf("building upstream request: %w", err)
	}
	req.ContentLength = body.size
	req.GetBody = func() (io.ReadCloser, error) { return body.reader(), nil }
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		if c.cfg.Auth == contract.UpstreamAuthAzureAPIKey {
			req.Header.Set("api-key", c.cfg.APIKey)
		} else {
			req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			code = "timeout"
			return nil, 0, &upstreamError{message: fmt.Sprintf("attempt timed out after %v", c.cfg.AttemptTimeout), retryable: true, timeout: true}
		}
		return nil, 0, &upstreamError{message: err.Error(), retryable: true}
	}
	defer resp.Body.Close()
	code = strconv.Itoa(resp.StatusCode)
	sig := budget.ParseHeaders(resp.Header)
	buf := bodyBuffers.Get().(*bytes.Buffer)
	defer putBodyBuffer(buf)
	data, err := readBody(resp, buf)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			code = "timeout"
			return nil, 0, &upstreamError{message: fmt.Sprintf("attempt timed out after %v reading the answer", c.cfg.AttemptTimeout), retryable: true, timeout: true}
		}
		return nil, 0, &upstreamError{status: resp.StatusCode, message: "reading answer: " + err.Error(), retryable: true}
	}
	if resp.StatusCode != http.StatusOK {
		ue := &upstreamError{status: resp.StatusCode, message: errorMessage(data)}
		ue.typ, ue.code, ue.param = errorFields(data)
		ue.retryable = retryable(ue.status, ue.typ, ue.code, ue.message)
		if ra, ok := openaiapi.ParseRetryAfter(resp.Header, time.Now()); ok {
			ue.retryAfter = ra
		}
		sig.RateLimited = ue.status == http.StatusTooManyRequests && ue.retryable
		sig.RetryAfter = ue.retryAfter
		c.learn(sig)
		return nil, 0, ue
	}
	c.learn(sig)
	vecs, tokens, err := openaiapi.DecodeResponse(data, n)
	if err != nil {
		return nil, 0, &upstreamError{status: resp.StatusCode, message: "answer is not an embeddings response: " + err.Error()}
	}
	return vecs, tokens, nil
}

// maxPresize bounds how much an upstream's Content-Length alone can make us
// allocate before any byte arrives; a 64 x 3072 float answer is about 3 MiB.
const maxPresize = 4 << 20

// bodyBuffers recycles answer buffers: a batched answer is tens of kilobytes,
// read once per upstream call and never kept (the vectors and error messages
// taken from it are copies), so reusing them spares the collector most of the
// client's garbage. Buffers grown past maxPresize are dropped, not kept.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBodyBuffer(buf *bytes.Buffer) {
	if buf.Cap() <= maxPresize {
		buf.Reset()
		bodyBuffers.Put(buf)
	}
}

// readBody reads at most maxResponseBytes of the answer into buf, grown once to
// the Content-Length when the upstream sends one. The result aliases buf.
func readBody(resp *http.Response, buf *bytes.Buffer) ([]byte, error) {
	if resp.ContentLength > 0 {
		buf.Grow(int(min(resp.ContentLength, maxPresize)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes))
	return buf.Bytes(), err
}

func errorMessage(data []byte) string {
	var eb openaiapi.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Message != "" {
		return eb.Error.Message
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
