package budget

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Window is one x-ratelimit-*-{requests,tokens} triple.
type Window struct {
	Known     bool // the remaining count was sent
	Limit     int  // per minute; 0: not sent
	Remaining int
	Reset     time.Duration // until the window is whole again
}

// Signal is what one upstream answer says about its limits.
type Signal struct {
	Requests, Tokens Window
	RateLimited      bool          // a 429 worth retrying (not a final quota error)
	RetryAfter       time.Duration // retry-after-ms or Retry-After; 0: none
}

// ParseHeaders reads x-ratelimit-limit/remaining/reset-requests and -tokens.
// Retry-After is the caller's to set (it also parses HTTP dates).
func ParseHeaders(h http.Header) Signal {
	return Signal{Requests: window(h, "requests"), Tokens: window(h, "tokens")}
}

func window(h http.Header, kind string) Window {
	var w Window
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Ratelimit-Limit-" + kind))); err == nil && v > 0 {
		w.Limit = v
	}
	if v, err := strconv.Atoi(strings.TrimSpace(h.Get("X-Ratelimit-Remaining-" + kind))); err == nil && v >= 0 {
		w.Known, w.Remaining = true, v
	}
	if d, ok := ParseReset(h.Get("X-Ratelimit-Reset-" + kind)); ok {
		w.Reset = d
	}
	return w
}

// ParseReset reads a reset as OpenAI sends it ("12ms", "1s", "6m0s",
// "1h2m3.5s") or as plain seconds ("20", "0.5").
func ParseReset(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, true
	}
	if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v < 1e9 {
		return time.Duration(v * float64(time.Second)), true
	}
	return 0, false
}
