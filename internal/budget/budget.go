// Package budget paces the calls one embedding server makes to its upstream
// so that it never spends more than its share of the upstream's limits, and
// learns those limits from the upstream's answers (x-ratelimit-* headers,
// 429 with Retry-After). It is pure: every method takes now, and nothing in
// it sleeps or talks to the network.
//
// A share is requests and tokens per minute. Each is a token bucket refilled
// at the share's rate that holds at most half a second of it: upstreams
// enforce per-minute limits in smaller slices (OpenAI documents 60,000 a
// minute as 1,000 a second), so a bucket that could hold a whole minute would
// spend it in one burst and be refused. A call needs one request and its
// estimated tokens; a call larger than the bucket waits for a full bucket and
// leaves it in debt.
package budget

import (
	"math"
	"sync"
	"time"
)

// Share is what one pod may spend per minute; 0: not limited.
type Share struct {
	RequestsPerMinute int
	TokensPerMinute   int
}

// burst is how much of a second's rate a bucket holds.
const burst = 500 * time.Millisecond

type bucket struct {
	perSec float64 // 0: unlimited
	level  float64
	at     time.Time
}

func (b *bucket) capacity() float64 { return max(1, b.perSec*burst.Seconds()) }

func (b *bucket) refill(now time.Time) {
	if b.perSec == 0 {
		return
	}
	// Callers read the clock before the lock, so now may lag b.at: time
	// never runs back.
	if now.After(b.at) {
		b.level = min(b.capacity(), b.level+now.Sub(b.at).Seconds()*b.perSec)
		b.at = now
	}
}

// setRate changes the rate keeping the level (clipped to the new capacity).
func (b *bucket) setRate(perMinute float64, now time.Time) {
	b.refill(now)
	if b.perSec == 0 && perMinute > 0 {
		// A new limit starts empty, not with a full burst: the upstream may
		// already be spent (a pod restarting, a limit learned from an answer).
		b.level = 0
		b.at = now
	}
	b.perSec = perMinute / 60
	if b.perSec > 0 {
		b.level = min(b.level, b.capacity())
	}
}

// readyAt is when n can be taken: now if the level allows, else when the
// refill brings it to min(n, capacity).
func (b *bucket) readyAt(n float64, now time.Time) time.Time {
	if b.perSec == 0 {
		return now
	}
	b.refill(now)
	need := min(n, b.capacity())
	if b.level >= need {
		return now
	}
	return now.Add(time.Duration(math.Ceil((need - b.level) / b.perSec * float64(time.Second))))
}

func (b *bucket) take(n float64, now time.Time) {
	if b.perSec == 0 {
		return
	}
	b.refill(now)
	b.level -= n
}

// Limiter is one pod's budget for its upstream calls. Safe for concurrent use.
type Limiter struct {
	mu       sync.Mutex
	declared Share // the operator's (or the flags') share; 0 fields: not declared
	learned  Share // per-minute limits the upstream announced
	req, tok bucket
	pause    time.Time // no call before this (the upstream asked to wait)
	pauses   int64
}

// New returns a limiter spending at most share.
func New(share Share, now time.Time) *Limiter {
	l := &Limiter{}
	l.SetShare(share, now)
	return l
}

// SetShare changes the declared share, keeping what was spent.
func (l *Limiter) SetShare(s Share, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.declared = s
	l.applyLocked(now)
}

// applyLocked sets the buckets' rates: the declared share where there is one,
// else what the upstream announced.
func (l *Limiter) applyLocked(now time.Time) {
	rpm, tpm := l.declared.RequestsPerMinute, l.declared.TokensPerMinute
	if rpm == 0 {
		rpm = l.learned.RequestsPerMinute
	}
	if tpm == 0 {
		tpm = l.learned.TokensPerMinute
	}
	l.req.setRate(float64(rpm), now)
	l.tok.setRate(float64(tpm), now)
}

// Share is the share in force: declared, else learned (0: unknown).
func (l *Limiter) Share() Share {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Share{RequestsPerMinute: int(math.Round(l.req.perSec * 60)), TokensPerMinute: int(math.Round(l.tok.perSec * 60))}
}

// Bound says whether calls must be paced: a limit is known or a pause holds.
// When not, calls go out as the server's own concurrency allows.
func (l *Limiter) Bound(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.req.perSec > 0 || l.tok.perSec > 0 || now.Before(l.pause)
}

// ReadyAt is the earliest time a call carrying tokens may start.
func (l *Limiter) ReadyAt(now time.Time, tokens int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyAtLocked(now, tokens)
}

func (l *Limiter) readyAtLocked(now time.Time, tokens int) time.Time {
	t := now
	if l.pause.After(t) {
		t = l.pause
	}
	if r := l.req.readyAt(1, now); r.After(t) {
		t = r
	}
	if r := l.tok.readyAt(float64(tokens), now); r.After(t) {
		t = r
	}
	return t
}

// TryTake spends one call of tokens if it may start at now, and says so; else
// it returns when it may.
func (l *Limiter) TryTake(now time.Time, tokens int) (ok bool, readyAt time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.readyAtLocked(now, tokens); t.After(now) {
		return false, t
	}
	l.req.take(1, now)
	l.tok.take(float64(tokens), now)
	return true, now
}

// FreeAt is when the budget could start calls carrying the given tokens
// after those already waiting: a queue of `calls` calls, each needing one
// request, with `tokens` between them. It is the Retry-After of a client
// that cannot be served within its deadline.
func (l *Limiter) FreeAt(now time.Time, calls, tokens int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.readyAtLocked(now, 0)
	if l.req.perSec > 0 && calls > 1 {
		t = t.Add(time.Duration(float64(calls-1) / l.req.perSec * float64(time.Second)))
	}
	if l.tok.perSec > 0 {
		l.tok.refill(now)
		if debt := float64(tokens) - l.tok.level; debt > 0 {
			if tt := now.Add(time.Duration(debt / l.tok.perSec * float64(time.Second))); tt.After(t) {
				t = tt
			}
		}
	}
	return t
}

// Refund gives back tokens estimated for a call beyond what it used (the
// estimate is an upper bound; the upstream's usage is the truth).
func (l *Limiter) Refund(now time.Time, tokens int) {
	if tokens <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tok.take(-float64(tokens), now)
	if l.tok.perSec > 0 {
		l.tok.level = min(l.tok.level, l.tok.capacity())
	}
}

// PausedUntil is the end of the pause the upstream asked for (zero: none).
func (l *Limiter) PausedUntil(now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.pause) {
		return l.pause
	}
	return time.Time{}
}

// Pauses counts the pauses the upstream set.
func (l *Limiter) Pauses() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pauses
}

// Learn takes in what one upstream answer said about its limits.
//
//   - Announced per-minute limits pace the calls when no share is declared.
//   - The remaining counts cap what the buckets hold: the upstream is shared
//     with other pods and clients, and its count is the truth.
//   - Nothing remaining pauses calls until the next one is free: one
//     request's worth of the announced limit, or the reset the upstream
//     named when it announced no limit.
//   - A rate-limited answer (429 without a final code) pauses every call of
//     the pod until its Retry-After (or reset); without either, one second.
//
// The pause is pod-wide: one cooldown for all calls, not a retry timer per request.
func (l *Limiter) Learn(now time.Time, s Signal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.Requests.Limit > 0 || s.Tokens.Limit > 0 {
		learned := Share{RequestsPerMinute: s.Requests.Limit, TokensPerMinute: s.Tokens.Limit}
		if learned != l.learned {
			l.learned = learned
			l.applyLocked(now)
		}
	}
	var until time.Time
	for _, w := range []struct {
		win Window
		b   *bucket
	}{{s.Requests, &l.req}, {s.Tokens, &l.tok}} {
		if !w.win.Known {
			continue
		}
		if w.b.perSec > 0 {
			w.b.refill(now)
			w.b.level = min(w.b.level, float64(w.win.Remaining))
		}
		if w.win.Remaining <= 0 {
			wait := w.win.Reset
			if w.win.Limit > 0 && w.b == &l.req {
				wait = min(wait, time.Minute/time.Duration(w.win.Limit))
			}
			if t := now.Add(wait); t.After(until) {
				until = t
			}
		}
	}
	if s.RateLimited {
		wait := s.RetryAfter
		if wait <= 0 {
			wait = max(s.Requests.Reset, s.Tokens.Reset)
		}
		if wait <= 0 {
			wait = time.Second
		}
		if t := now.Add(wait); t.After(until) {
			until = t
		}
	}
	if until.After(l.pause) {
		if !now.Before(l.pause) {
			l.pauses++
		}
		l.pause = until
	}
}
