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

	"github.com/ragops/rag-operator/internal/provider"
)

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Input          json.RawMessage `json:"input"`
	Model          string          `json:"model,omitempty"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
	Dimensions     *int            `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`
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

func tooMany(n, max int) error {
	return &provider.Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Param: "input", Code: "too_many_inputs",
		Message: fmt.Sprintf("input has %d items; at most %d are allowed per request", n, max)}
}

func decodeInput(raw json.RawMessage, lim Limits) ([]provider.Input, error) {
	switch firstByte(raw) {
	case 0, 'n':
		return nil, provider.BadRequest("input", "input is required")
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
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
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, provider.BadRequest("input", "input: %v", err)
	}
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
			if err := json.Unmarshal(it, &out[i].Text); err != nil || firstByte(it) != '"' {
				return nil, provider.BadRequest("input", "input[%d] must be a string like the other items", i)
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

func tokenIDs(raw json.RawMessage, where string) ([]int, error) {
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
	var raw []byte // one vector's little-endian bytes, reused
	if b64 && len(vectors) > 0 {
		raw = make([]byte, 0, 4*len(vectors[0]))
	}
	for i, v := range vectors {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"object":"embedding","index":`...)
		dst = strconv.AppendInt(dst, int64(i), 10)
		dst = append(dst, `,"embedding":`...)
		if b64 {
			raw = raw[:0]
			for _, x := range v {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
			}
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, raw)
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
	mj, _ := json.Marshal(model)
	dst = append(dst, mj...)
	dst = append(dst, `,"usage":{"prompt_tokens":`...)
	dst = strconv.AppendInt(dst, int64(promptTokens), 10)
	dst = append(dst, `,"total_tokens":`...)
	dst = strconv.AppendInt(dst, int64(promptTokens), 10)
	dst = append(dst, "}}\n"...)
	return dst
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
	body       []byte
}

// NewPreparedError encodes e.
func NewPreparedError(e *provider.Error) *PreparedError {
	typ := e.Type
	if typ == "" {
		typ = "server_error"
	}
	body, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Message: e.Message, Type: typ, Param: strOrNil(e.Param), Code: strOrNil(e.Code)}})
	p := &PreparedError{status: e.Status, body: append(body, '\n')}
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
