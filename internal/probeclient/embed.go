// Package probeclient talks to embedding servers the way a client does, for
// the operator's own checks: Embed sends a probe set in one request for the
// embedding-space comparison, and Traffic sends synthetic requests spread over
// an analysis interval so that a service without clients still gets a verdict.
package probeclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/ragops/rag-operator/internal/openaiapi"
)

// Defaults of Client.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultMaxAnswerBytes = 32 << 20 // 1024 probes of 1536 floats as JSON fit
)

// maxErrorBody bounds what is read of an answer that is not a 2xx.
const maxErrorBody = 64 << 10

// defaultHTTP is the client used when none is given. It takes no proxy from
// the environment: the operator talks to pod IPs, which a proxy cannot reach
// or should not see.
var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:               nil,
	DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	MaxIdleConns:        64,
	MaxIdleConnsPerHost: 4,
	IdleConnTimeout:     30 * time.Second,
}}

// Client sends probe sets. The zero value is ready to use.
type Client struct {
	HTTP           *http.Client  // nil: a client of the package's own, without proxy
	Timeout        time.Duration // bounds a whole request, answer read included; 0: DefaultTimeout
	MaxAnswerBytes int64         // a longer answer is an error; 0: DefaultMaxAnswerBytes
}

// Embed sends texts in one OpenAI-style request, POST {baseURL}/v1/embeddings
// with encoding_format "float" (model omitted when empty), and returns one
// vector per text in order. It accepts base64 answers too, since several
// OpenAI-compatible servers answer in the encoding they like. Every error
// starts with "probe <baseURL>: " and names the problem: the HTTP status with
// the server's error message, no answer within the timeout, an answer over the
// size limit, cut short, with another number of vectors than texts, or vectors
// of mixed lengths. Vectors with NaN or zero components are returned as they
// are: judging them is embeddingspace's job.
func (c Client) Embed(ctx context.Context, baseURL, model string, texts []string) ([][]float32, error) {
	baseURL = strings.TrimRight(baseURL, "/")
	fail := func(format string, args ...any) error {
		return fmt.Errorf("probe %s: "+format, append([]any{baseURL}, args...)...)
	}
	if len(texts) == 0 {
		return nil, fail("no probe texts")
	}
	body, err := requestBody(model, texts)
	if err != nil {
		return nil, fail("%w", err)
	}
	limit := positiveOr(c.MaxAnswerBytes, DefaultMaxAnswerBytes)
	ctx, cancel := withTimeout(ctx, positiveOr(c.Timeout, DefaultTimeout))
	defer cancel()

	resp, err := post(ctx, c.HTTP, baseURL, body)
	if err != nil {
		return nil, fail("%w", requestError(ctx, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fail("%w", &StatusError{Code: resp.StatusCode, Message: statusError(resp)})
	}
	if resp.ContentLength > limit {
		return nil, fail("answer of %d bytes is over the limit of %d", resp.ContentLength, limit)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	switch {
	case err != nil:
		return nil, fail("reading the answer: %w", requestError(ctx, err))
	case int64(len(raw)) > limit:
		return nil, fail("answer is over the limit of %d bytes", limit)
	}
	vecs, _, err := openaiapi.DecodeResponse(raw, len(texts))
	if err != nil {
		return nil, fail("answer for %d probes: %w", len(texts), err)
	}
	for i, v := range vecs {
		switch {
		case len(v) == 0:
			return nil, fail("vector %d is empty", i)
		case len(v) != len(vecs[0]):
			return nil, fail("vector %d has %d dimensions, vector 0 has %d", i, len(v), len(vecs[0]))
		}
	}
	return vecs, nil
}

// StatusError is an answer that is not a 2xx.
type StatusError struct {
	Code    int    // the HTTP status
	Message string // "HTTP 400 (code): the server's message"
}

func (e *StatusError) Error() string { return e.Message }

// refusesInput reports whether err is an answer that refuses the input
// itself (400, 413, 422): what a server that does not truncate answers for a
// text longer than its window.
func refusesInput(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == http.StatusBadRequest || se.Code == http.StatusRequestEntityTooLarge || se.Code == http.StatusUnprocessableEntity
}

// EmbedProbes is Embed for a probe set that holds long probes (isLong tells
// them): a server that refuses inputs longer than its window (OpenAI past
// 8,191 tokens, TEI without auto-truncate) answers the whole request 400,
// 413 or 422, so the set is sent again without its longest long probe, until
// an answer comes or no long probe is left. Refused probes get a nil vector:
// that server serves no vector for such a text, which is a fact of its space
// to compare, not a failure. One request when nothing is refused; at most one
// more per long probe. statuses are the HTTP statuses of the requests sent,
// in order (0 for one that got no answer), for the probe metrics.
func (c Client) EmbedProbes(ctx context.Context, baseURL, model string, texts []string, isLong func(string) bool) (vecs [][]float32, statuses []int, err error) {
	keep := make([]int, 0, len(texts)) // indexes of texts still sent
	var longs []int
	for i, t := range texts {
		keep = append(keep, i)
		if isLong != nil && isLong(t) {
			longs = append(longs, i)
		}
	}
	// Longest first.
	slices.SortStableFunc(longs, func(a, b int) int { return len(texts[b]) - len(texts[a]) })
	for {
		sent := make([]string, len(keep))
		for j, i := range keep {
			sent[j] = texts[i]
		}
		got, err := c.Embed(ctx, baseURL, model, sent)
		statuses = append(statuses, statusOf(err))
		if err == nil {
			out := make([][]float32, len(texts))
			for j, i := range keep {
				out[i] = got[j]
			}
			return out, statuses, nil
		}
		if !refusesInput(err) || len(longs) == 0 || ctx.Err() != nil {
			return nil, statuses, err
		}
		drop := longs[0]
		longs = longs[1:]
		keep = slices.DeleteFunc(keep, func(i int) bool { return i == drop })
	}
}

// statusOf is the HTTP status behind Embed's outcome: 200 for a success, the
// status of an answer that is not a 2xx, 0 for anything else (no answer, or
// one that could not be used).
func statusOf(err error) int {
	var se *StatusError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &se):
		return se.Code
	}
	return 0
}

// requestBody encodes an embeddings request without escaping <, > and & (which
// would make a probe set of code up to six times larger on the wire).
func requestBody(model string, texts []string) ([]byte, error) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(texts); err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	var out bytes.Buffer
	enc = json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	req := openaiapi.EmbeddingRequest{Input: bytes.TrimSpace(in.Bytes()), Model: model, EncodingFormat: "float"}
	if err := enc.Encode(req); err != nil {
		return nil, fmt.Errorf("encoding the request: %w", err)
	}
	return out.Bytes(), nil
}

// positiveOr is v, or def when v is not positive (a zero field).
func positiveOr[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// withTimeout bounds ctx by d, with a cause that says so in the error.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, fmt.Errorf("no answer within %v", d))
}

func post(ctx context.Context, client *http.Client, baseURL string, body []byte) (*http.Response, error) {
	if client == nil {
		client = defaultHTTP
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/embeddings", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "ragops-probe")
	return client.Do(req)
}

// requestError says why a request failed: the timeout's own message when it
// fired, the caller's context error when that ended first, else err.
func requestError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
			return cause
		}
		return ctx.Err()
	}
	var uerr *url.Error // repeats the method and URL the message already names
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// statusError describes an answer that is not a 2xx: "HTTP 503 (draining): the
// server is shutting down", from the OpenAI error shape when the body has it,
// else from the start of the body.
func statusError(resp *http.Response) string {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := fmt.Sprintf("HTTP %d", resp.StatusCode)
	var e openaiapi.ErrorBody
	if err := json.Unmarshal(raw, &e); err == nil && e.Error.Message != "" {
		if e.Error.Code != nil && *e.Error.Code != "" {
			msg += " (" + *e.Error.Code + ")"
		}
		return msg + ": " + oneLine(e.Error.Message, 300)
	}
	if s := oneLine(string(raw), 200); s != "" {
		return msg + ": " + s
	}
	return msg
}

// oneLine makes s fit a status message: control characters and runs of space
// become one space, and it is cut to n bytes at a character boundary.
func oneLine(s string, n int) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
