package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/ragops/rag-operator/internal/provider"
)

// Error codes an upstream sends that no retry can fix, whatever its status:
// OpenAI answers an exhausted quota as a 429 and a text too long for the model
// as a 400, but some OpenAI-compatible servers answer the latter as a 5xx.
const (
	codeInsufficientQuota = "insufficient_quota"
	codeContextLength     = "context_length_exceeded"
)

// retryable says whether an upstream answer with this status and error body is
// worth another attempt. Retried: rate limits without a final code, 408, 409
// (the official clients retry it) and 5xx. Final: an exhausted quota, a
// context-length error, and every other 4xx (400, 401, 403, 404, 413, 422...):
// asking again gets the same answer.
func retryable(status int, typ, code, message string) bool {
	if code == codeInsufficientQuota || typ == codeInsufficientQuota || contextLengthError(code, message) {
		return false
	}
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status == http.StatusConflict:
		return true
	case status >= 500:
		return true
	}
	return false
}

// contextLengthError recognises "text too long for the model" however a server
// words it (OpenAI's code, vLLM's and TEI's messages).
func contextLengthError(code, message string) bool {
	if code == codeContextLength {
		return true
	}
	m := strings.ToLower(message)
	return strings.Contains(m, "maximum context length") || strings.Contains(m, "context length exceeded") ||
		strings.Contains(m, "must have less than") && strings.Contains(m, "tokens")
}

// finalAnswer is the client's answer to an upstream answer that no retry can
// fix: the upstream's own status, type and code, so the client's SDK behaves
// as it would against the upstream. Statuses a client could not act on (a
// redirect not followed, a 5xx carrying a context-length error) become what
// they mean: 400 for the input, 502 otherwise.
func finalAnswer(ue *upstreamError) *provider.Error {
	status, typ, code := ue.status, ue.typ, ue.code
	switch {
	case contextLengthError(code, ue.message) && (status < 400 || status >= 500):
		status, typ, code = http.StatusBadRequest, "invalid_request_error", codeContextLength
	case status < 400 || status >= 500:
		return &provider.Error{Status: http.StatusBadGateway, Type: "server_error", Code: "upstream_error", Final: true,
			Message: fmt.Sprintf("upstream gave an answer that is not retried: %v", ue), Err: ue}
	}
	if typ == "" {
		typ = defaultType(status)
	}
	return &provider.Error{Status: status, Type: typ, Code: code, Param: ue.param, Final: true,
		Message: "upstream: " + ue.message, Err: ue}
}

// defaultType is OpenAI's error type for a status, for upstreams that send none.
func defaultType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	return "invalid_request_error"
}

// exhaustedAnswer is the client's answer once the retries ran out (or the next
// would pass the deadline) on an answer that was worth retrying: 504 when the
// upstream did not answer in time, 503 with Retry-After when it was rate
// limiting, 502 otherwise. The message names what the upstream said.
func exhaustedAnswer(ue *upstreamError, attempts int, extra string) *provider.Error {
	msg := fmt.Sprintf("upstream failed after %d attempt(s): %v%s", attempts, ue, extra)
	switch {
	case ue.timeout:
		return &provider.Error{Status: http.StatusGatewayTimeout, Type: "server_error", Code: "upstream_timeout", Message: msg, Err: ue}
	case ue.status == http.StatusTooManyRequests:
		return &provider.Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "upstream_rate_limited", RetryAfter: ue.retryAfter, Message: msg, Err: ue}
	}
	return &provider.Error{Status: http.StatusBadGateway, Type: "server_error", Code: "upstream_error", RetryAfter: ue.retryAfter, Message: msg, Err: ue}
}

// errorFields reads type, code and param from an error body in the OpenAI shape.
// Some servers send the code as a number (vLLM sends the HTTP status there):
// only a string code is a code.
func errorFields(data []byte) (typ, code, param string) {
	var eb struct {
		Error struct {
			Type  string          `json:"type"`
			Code  json.RawMessage `json:"code"`
			Param json.RawMessage `json:"param"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &eb) != nil {
		return "", "", ""
	}
	_ = json.Unmarshal(eb.Error.Code, &code)
	_ = json.Unmarshal(eb.Error.Param, &param)
	return eb.Error.Type, code, param
}
