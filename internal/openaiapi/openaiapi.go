// Package openaiapi is the wire format of the OpenAI embeddings API: decoding and
// validating requests, encoding responses (float or base64), and the error shape.
// Both the server and the upstream client use it, so the two cannot drift apart.
package openaiapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ragops/rag-operator/internal/provider"
)

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Input          bodyView `json:"input"`
	Model          string   `json:"model,omitempty"`
	EncodingFormat string   `json:"encoding_format,omitempty"`
	Dimensions     *int     `json:"dimensions,omitempty"`
	User           string   `json:"user,omitempty"`
}

// bodyView is a JSON value as it stands in the body json.Unmarshal reads: a
// view, not a copy (json.RawMessage copies). json.Unmarshal hands an
// Unmarshaler a slice of its own input, so keeping it is safe for as long as
// that input is neither freed nor changed: DecodeRequest's callers promise so.
type bodyView []byte

func (v *bodyView) UnmarshalJSON(b []byte) error {
	*v = b
	return nil
}

// MarshalJSON writes the value as it is, as json.RawMessage does, so that a
// client can build a request around an input it encoded itself.
func (v bodyView) MarshalJSON() ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	return v, nil
}

// Request is a decoded, validated embeddings request.
type Request struct {
	Model      string
	Inputs     []provider.Input
	Base64     bool
	Dimensions int
	User       string
}

// Limits bound what a request may carry.
type Limits struct {
	MaxInputs int // inputs per request; more is 413
}

// DecodeRequest parses and validates a request body. Every error is a
// *provider.Error with status 400 or 413 and the offending parameter.
//
// The texts it returns are views of body where the JSON needs no unescaping
// (the usual case), so a large upload is not held twice: the caller must not
// change body afterwards.
func DecodeRequest(body []byte, lim Limits) (Request, error) {
	var raw EmbeddingRequest
	if err := json.Unmarshal(body, &raw); err != nil {
		return Request{}, provider.BadRequest("", "could not parse the JSON body: %v", err)
	}
	r := Request{Model: raw.Model, User: raw.User}
	switch raw.EncodingFormat {
	case "", "float":
	case "base64":
		r.Base64 = true
	default:
		return Request{}, provider.BadRequest("encoding_format", "encoding_format must be \"float\" or \"base64\", not %q", raw.EncodingFormat)
	}
	if raw.Dimensions != nil {
		if *raw.Dimensions < 1 {
			return Request{}, provider.BadRequest("dimensions", "dimensions must be at least 1")
		}
		r.Dimensions = *raw.Dimensions
	}
	inputs, err := decodeInput(raw.Input, lim)
	if err != nil {
		return Request{}, err
	}
	r.Inputs = inputs
	return r, nil
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

func tooMany(n, limit int) error {
	return &provider.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Param: "input", Code: "too_many_inputs",
		Message: fmt.Sprintf("input has %d items; at most %d are allowed per request", n, limit)}
}

// text reads a JSON string literal (known to be valid JSON): a view of raw
// when it holds no escapes and is valid UTF-8, else a copy decoded by
// encoding/json (which also replaces invalid UTF-8, as it would anyway).
func text(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' {
		inner := raw[1 : len(raw)-1]
		if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return unsafeString(inner), nil
		}
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// items splits a JSON array (known to be valid JSON) into views of its elements.
func items(raw []byte) [][]byte {
	s := scanner{b: raw}
	s.expect('[')
	var out [][]byte
	if s.peek() == ']' {
		return out
	}
	for s.err == nil {
		s.ws()
		start := s.i
		s.skip(0)
		out = append(out, raw[start:s.i])
		if s.peek() != ',' {
			break
		}
		s.i++
	}
	return out
}

func decodeInput(raw []byte, lim Limits) ([]provider.Input, error) {
	raw = bytes.TrimSpace(raw)
	switch firstByte(raw) {
	case 0, 'n':
		return nil, provider.BadRequest("input", "input is required")
	case '"':
		s, err := text(raw)
		if err != nil {
			return nil, provider.BadRequest("input", "input: %v", err)
		}
		if s == "" {
			return nil, provider.BadRequest("input", "input must not be an empty string")
		}
		return []provider.Input{{Text: s}}, nil
	case '[':
	default:
		return nil, provider.BadRequest("input", "input must be a string, an array of strings, an array of token ids or an array of arrays of token ids")
	}
	items := items(raw)
	if len(items) == 0 {
		return nil, provider.BadRequest("input", "input must not be an empty array")
	}
	switch c := firstByte(items[0]); {
	case c == '"':
		if lim.MaxInputs > 0 && len(items) > lim.MaxInputs {
			return nil, tooMany(len(items), lim.MaxInputs)
		}
		out := make([]provider.Input, len(items))
		for i, it := range items {
			if firstByte(it) != '"' {
				return nil, provider.BadRequest("input", "input[%d] must be a string like the other items", i)
			}
			var err error
			if out[i].Text, err = text(it); err != nil {
				return nil, provider.BadRequest("input", "input[%d]: %v", i, err)
			}
			if out[i].Text == "" {
				return nil, provider.BadRequest("input", "input[%d] must not be an empty string", i)
			}
		}
		return out, nil
	case c == '-' || c >= '0' && c <= '9':
		// One token-id sequence: a single input.
		ids, err := tokenIDs(raw, "input")
		if err != nil {
			return nil, err
		}
		return []provider.Input{{Tokens: ids, IsTokens: true}}, nil
	case c == '[':
		if lim.MaxInputs > 0 && len(items) > lim.MaxInputs {
			return nil, tooMany(len(items), lim.MaxInputs)
		}
		out := make([]provider.Input, len(items))
		for i, it := range items {
			if firstByte(it) != '[' {
				return nil, provider.BadRequest("input", "input[%d] must be an array of token ids like the other items", i)
			}
			ids, err := tokenIDs(it, fmt.Sprintf("input[%d]", i))
			if err != nil {
				return nil, err
			}
			out[i] = provider.Input{Tokens: ids, IsTokens: true}
		}
		return out, nil
	default:
		return nil, provider.BadRequest("input", "input[0] must be a string, a token id or an array of token ids")
	}
}

func tokenIDs(raw []byte, where string) ([]int, error) {
	var ids []int
	if err := json.Unmarshal(raw, &ids); err != nil {
		return nil, provider.BadRequest("input", "%s must be an array of integer token ids", where)
	}
	if len(ids) == 0 {
		return nil, provider.BadRequest("input", "%s must not be empty", where)
	}
	for _, id := range ids {
		if id < 0 || id > math.MaxInt32 {
			return nil, provider.BadRequest("input", "%s has token id %d out of range", where, id)
		}
	}
	return ids, nil
}

// AppendResponse appends the JSON response for vectors to dst. Encoding by hand
// keeps a 64x1536 response from allocating a float64 per value.
func AppendResponse(dst []byte, model string, vectors [][]float32, promptTokens int, b64 bool) []byte {
	if len(vectors) > 0 {
		// One allocation for the whole answer in the common case: base64 size
		// exactly, floats about 15 bytes each ("-0.012345678,").
		per := 48 + base64.StdEncoding.EncodedLen(4*len(vectors[0]))
		if !b64 {
			per = 48 + 15*len(vectors[0])
		}
		dst = slices.Grow(dst, 160+len(model)+len(vectors)*per)
	}
	dst = append(dst, `{"object":"list","data":[`...)
	for i, v := range vectors {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"object":"embedding","index":`...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, `,"embedding":`...)
		if b64 {
			dst = append(dst, '"')
			dst = appendBase64Floats(dst, v)
			dst = append(dst, '"')
		} else {
			dst = append(dst, '[')
			for j, x := range v {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = strconv.AppendFloat(dst, float64(x), 'g', -1, 32)
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `],"model":`...)
	dst = AppendJSONString(dst, model)
	dst = append(dst, `,"usage":{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(promptTokens), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(promptTokens), 10)
	dst = append(dst, "}}\n"...)
	return dst
}

// appendBase64Floats appends the base64 of v's little-endian float32 bytes,
// twelve floats (48 bytes, whole base64 groups) at a time through a buffer on
// the stack, so that no vector needs a byte copy of its own.
func appendBase64Floats(dst []byte, v []float32) []byte {
	var chunk [48]byte
	for len(v) > 0 {
		n := min(len(v), 12)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(chunk[4*i:], math.Float32bits(x))
		}
		dst = base64.StdEncoding.AppendEncode(dst, chunk[:4*n])
		v = v[n:]
	}
	return dst
}

// PlainJSON reports whether s can stand between quotes in JSON as it is: valid
// UTF-8 without quotes, backslashes or control characters.
func PlainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.ValidString(s)
}

// AppendJSONString appends s as a JSON string: as it is between quotes when
// it is PlainJSON (a model name or a text, as a rule), else as encoding/json
// writes it.
func AppendJSONString(dst []byte, s string) []byte {
	if PlainJSON(s) {
		return append(append(append(dst, '"'), s...), '"')
	}
	q, _ := json.Marshal(s)
	return append(dst, q...)
}

// EmbeddingResponse is the decoded response body.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  Usage       `json:"usage"`
}

// Embedding is one vector; Embedding is a float array or a base64 string.
type Embedding struct {
	Object    string          `json:"object"`
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// Vector decodes e's embedding in either encoding.
func (e Embedding) Vector() ([]float32, error) {
	switch firstByte(e.Embedding) {
	case '"':
		var s string
		if err := json.Unmarshal(e.Embedding, &s); err != nil {
			return nil, fmt.Errorf("embedding %d: %w", e.Index, err)
		}
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw)%4 != 0 {
			return nil, fmt.Errorf("embedding %d: bad base64 float32 data", e.Index)
		}
		v := make([]float32, len(raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return v, nil
	default:
		var v []float32
		if err := json.Unmarshal(e.Embedding, &v); err != nil {
			return nil, fmt.Errorf("embedding %d: %w", e.Index, err)
		}
		return v, nil
	}
}

// Vectors returns the vectors ordered by their index, checking that every index
// from 0 to n-1 appears exactly once.
func (r EmbeddingResponse) Vectors(n int) ([][]float32, error) {
	if len(r.Data) != n {
		return nil, fmt.Errorf("got %d embeddings, want %d", len(r.Data), n)
	}
	out := make([][]float32, n)
	for _, e := range r.Data {
		if e.Index < 0 || e.Index >= n || out[e.Index] != nil {
			return nil, fmt.Errorf("embedding index %d out of range or repeated", e.Index)
		}
		v, err := e.Vector()
		if err != nil {
			return nil, err
		}
		out[e.Index] = v
	}
	return out, nil
}

// ErrorBody is the OpenAI error shape.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody; Param and Code are null when empty.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func strOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// WriteError answers with e in the OpenAI error shape, and a Retry-After header
// (whole seconds, at least 1) when e.RetryAfter is set.
func WriteError(w http.ResponseWriter, e *provider.Error) {
	NewPreparedError(e).Write(w)
}

// PreparedError is an error answer encoded once, for answers sent in floods
// (429 under overload) where encoding each time would cost CPU when it is
// scarcest.
type PreparedError struct {
	status     int
	retryAfter string
	final      bool
	body       []byte
}

// NewPreparedError encodes e.
func NewPreparedError(e *provider.Error) *PreparedError {
	typ := e.Type
	if typ == "" {
		typ = "server_error"
	}
	body, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Message: e.Message, Type: typ, Param: strOrNil(e.Param), Code: strOrNil(e.Code)}})
	p := &PreparedError{status: e.Status, final: e.Final, body: append(body, '\n')}
	if e.RetryAfter > 0 {
		p.retryAfter = strconv.Itoa(RetryAfterSeconds(e.RetryAfter))
	}
	return p
}

// Write sends the answer.
func (p *PreparedError) Write(w http.ResponseWriter) {
	h := w.Header()
	if p.retryAfter != "" {
		h["Retry-After"] = []string{p.retryAfter}
	}
	if p.final {
		// The official OpenAI clients read this header before their own rules
		// (which retry every 429): a final answer is not asked again.
		h["X-Should-Retry"] = []string{"false"}
	}
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(p.body))}
	w.WriteHeader(p.status)
	_, _ = w.Write(p.body)
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1: the header has no
// fractions and 0 would invite an immediate retry storm.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// ParseRetryAfter reads a Retry-After header in seconds or as an HTTP date; the
// "retry-after-ms" header some OpenAI-compatible servers send wins when present.
func ParseRetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	if ms := h.Get("Retry-After-Ms"); ms != "" {
		if v, err := strconv.ParseFloat(ms, 64); err == nil && v >= 0 {
			return time.Duration(v * float64(time.Millisecond)), true
		}
	}
	ra := h.Get("Retry-After")
	if ra == "" {
		return 0, false
	}
	if v, err := strconv.ParseFloat(ra, 64); err == nil && v >= 0 {
		return time.Duration(v * float64(time.Second)), true
	}
	if t, err := http.ParseTime(ra); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// ModelList is the body of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// Model is one entry of ModelList.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Ragops is what the embedding server adds: the vector space it serves.
	Ragops *ModelSpace `json:"ragops,omitempty"`
}

// ModelSpace tells indexers which vector space a server's vectors live in.
type ModelSpace struct {
	Space string `json:"space"` // --space; empty when the server names none
	// Dimensions of the vectors the server answers when a request names none;
	// omitted while unknown (an openai upstream before its first answer).
	Dimensions int `json:"dimensions,omitempty"`
}
