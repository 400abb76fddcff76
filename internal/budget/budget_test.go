package budget

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// Calls at the fastest pace the limiter allows: how many start in a span, and
// never more than the share in any minute.
func TestPacing(t *testing.T) {
	tests := []struct {
		name      string
		share     Share
		tokens    int // per call
		span      time.Duration
		wantCalls int // started within span (inclusive of the first at t0)
	}{
		{"6000 a minute: one call each 10 ms", Share{RequestsPerMinute: 6000}, 1, time.Second, 100},
		{"60 a minute", Share{RequestsPerMinute: 60}, 1, 10 * time.Second, 10},
		{"tokens bind: 60,000 a minute, 1,000 a call", Share{RequestsPerMinute: 6000, TokensPerMinute: 60000}, 1000, 10 * time.Second, 10},
		{"a call larger than the bucket waits for a full one, then owes", Share{TokensPerMinute: 6000}, 300, 10 * time.Second, 4},
		{"nothing declared: unlimited", Share{}, 1, ms(1), 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.share, t0)
			now, calls := t0, 0
			var starts []time.Time
			for calls < 1000 {
				ok, at := l.TryTake(now, tt.tokens)
				if !ok {
					if !at.After(now) {
						t.Fatalf("refused at %v but ready at %v", now, at)
					}
					now = at
					continue
				}
				if now.Sub(t0) > tt.span {
					break
				}
				starts = append(starts, now)
				calls++
			}
			if calls != tt.wantCalls {
				t.Fatalf("%d calls in %v, want %d", calls, tt.span, tt.wantCalls)
			}
			if tt.share.RequestsPerMinute > 0 {
				for i := range starts {
					j := i
					for j < len(starts) && starts[j].Sub(starts[i]) < time.Minute {
						j++
					}
					if j-i > tt.share.RequestsPerMinute {
						t.Fatalf("%d calls in the minute from %v", j-i, starts[i])
					}
				}
			}
		})
	}
}

// Whatever the pattern of calls, the calls in any window of w never pass
// rate*w plus the bucket (half a second): the property that keeps a share
// under an upstream that enforces per second.
func TestNeverAboveRateInAnyWindow(t *testing.T) {
	l := New(Share{RequestsPerMinute: 6000}, t0)
	var starts []time.Time
	now := t0
	for i := 0; i < 5000; i++ {
		now = now.Add(time.Duration(i%7) * time.Millisecond) // irregular arrivals, often bunched
		if ok, _ := l.TryTake(now, 1); ok {
			starts = append(starts, now)
		}
	}
	for i := range starts {
		j := i
		for j < len(starts) && starts[j].Sub(starts[i]) < time.Second {
			j++
		}
		if j-i > 100+50 {
			t.Fatalf("%d calls in the second from %v", j-i, starts[i].Sub(t0))
		}
	}
}

func TestLearn(t *testing.T) {
	h := func(kv ...string) http.Header {
		hh := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hh.Set(kv[i], kv[i+1])
		}
		return hh
	}
	tests := []struct {
		name      string
		share     Share
		header    http.Header
		limited   bool
		retry     time.Duration
		wantPause time.Duration // 0: none
		wantShare Share
		wantNext  time.Duration // when the next call may start (a new limit starts empty)
	}{
		{name: "headers with room: the limit paces calls when none is declared",
			header:    h("x-ratelimit-limit-requests", "6000", "x-ratelimit-remaining-requests", "5999", "x-ratelimit-reset-requests", "10ms"),
			wantShare: Share{RequestsPerMinute: 6000}, wantNext: ms(10)},
		{name: "a declared share wins over the announced limit",
			share:     Share{RequestsPerMinute: 600},
			header:    h("x-ratelimit-limit-requests", "6000", "x-ratelimit-remaining-requests", "5999"),
			wantShare: Share{RequestsPerMinute: 600}, wantNext: ms(100)},
		{name: "nothing remaining: pause one request's worth",
			header:    h("x-ratelimit-limit-requests", "6000", "x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "6m0s"),
			wantPause: ms(10), wantShare: Share{RequestsPerMinute: 6000}, wantNext: ms(10)},
		{name: "nothing remaining and no limit: pause until the reset",
			header:    h("x-ratelimit-remaining-requests", "0", "x-ratelimit-reset-requests", "1s"),
			wantPause: time.Second, wantNext: time.Second},
		{name: "tokens exhausted: pause until their reset",
			header:    h("x-ratelimit-limit-tokens", "1000000", "x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "12ms"),
			wantPause: ms(12), wantShare: Share{TokensPerMinute: 1000000}, wantNext: ms(12)},
		{name: "429 with Retry-After: one pause for the pod",
			header: h(), limited: true, retry: ms(1500), wantPause: ms(1500), wantNext: ms(1500)},
		{name: "429 without Retry-After: the reset",
			header: h("x-ratelimit-remaining-requests", "3", "x-ratelimit-reset-requests", "2s"), limited: true, wantPause: 2 * time.Second, wantNext: 2 * time.Second},
		{name: "429 with nothing said: one second",
			header: h(), limited: true, wantPause: time.Second, wantNext: time.Second},
		{name: "garbage headers are ignored",
			header: h("x-ratelimit-limit-requests", "lots", "x-ratelimit-remaining-requests", "-3", "x-ratelimit-reset-requests", "soon")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.share, t0)
			s := ParseHeaders(tt.header)
			s.RateLimited, s.RetryAfter = tt.limited, tt.retry
			l.Learn(t0, s)
			until := l.PausedUntil(t0)
			if got := until.Sub(t0); tt.wantPause == 0 && !until.IsZero() || tt.wantPause != 0 && got != tt.wantPause {
				t.Fatalf("paused %v, want %v", got, tt.wantPause)
			}
			if got := l.Share(); got != tt.wantShare {
				t.Fatalf("share %+v, want %+v", got, tt.wantShare)
			}
			if got := l.ReadyAt(t0, 1).Sub(t0); got != tt.wantNext {
				t.Fatalf("next call in %v, want %v", got, tt.wantNext)
			}
			if tt.wantPause > 0 && l.Pauses() != 1 {
				t.Fatalf("%d pauses", l.Pauses())
			}
		})
	}
}

// A second 429 while paused extends the same pause, not a new one.
func TestOnePauseForManyRefusals(t *testing.T) {
	l := New(Share{}, t0)
	for i := 0; i < 10; i++ {
		l.Learn(t0.Add(ms(i)), Signal{RateLimited: true, RetryAfter: time.Second})
	}
	if l.Pauses() != 1 || l.PausedUntil(t0).Sub(t0) != time.Second+ms(9) {
		t.Fatalf("%d pauses until %v", l.Pauses(), l.PausedUntil(t0).Sub(t0))
	}
	if !l.Bound(t0) || l.Bound(t0.Add(2*time.Second)) {
		t.Fatal("bound only while paused")
	}
}

func TestParseReset(t *testing.T) {
	for in, want := range map[string]time.Duration{"12ms": ms(12), "1s": time.Second, "6m0s": 6 * time.Minute, "1h2m3.5s": time.Hour + 2*time.Minute + 3500*time.Millisecond, "20": 20 * time.Second, "0.5": ms(500)} {
		if got, ok := ParseReset(in); !ok || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1s", "soon", "-3"} {
		if _, ok := ParseReset(in); ok {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestFreeAtAndRefund(t *testing.T) {
	l := New(Share{RequestsPerMinute: 6000, TokensPerMinute: 60000}, t0)
	// A new share starts empty. Ten calls waiting: the last starts after ten
	// of 10 ms.
	if got := l.FreeAt(t0, 10, 0).Sub(t0); got != ms(100) {
		t.Fatalf("free in %v, want 100ms", got)
	}
	// Tokens: 1,000 a second; 2,000 waiting on an empty bucket need 2 s.
	if got := l.FreeAt(t0, 1, 2000).Sub(t0); got != 2*time.Second {
		t.Fatalf("free in %v, want 2s", got)
	}
	now := t0.Add(ms(500)) // both buckets full: 50 calls, 500 tokens
	if ok, _ := l.TryTake(now, 400); !ok {
		t.Fatal("a full bucket refused")
	}
	if ok, _ := l.TryTake(now, 400); ok {
		t.Fatal("took tokens the bucket lacks")
	}
	l.Refund(now, 300)
	if ok, _ := l.TryTake(now, 400); !ok {
		t.Fatal("refund not credited")
	}
}

// Many goroutines taking calls against the clock never take more than the
// bucket plus the refill, and the race detector sees no unguarded state.
func TestConcurrentTakes(t *testing.T) {
	l := New(Share{RequestsPerMinute: 6000}, t0)
	var mu sync.Mutex
	taken := 0
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				now := t0.Add(time.Duration(i) * ms(1)) // every goroutine walks the same 500 ms
				if ok, _ := l.TryTake(now, 1); ok {
					mu.Lock()
					taken++
					mu.Unlock()
				}
				l.Learn(now, Signal{Requests: Window{Known: true, Limit: 6000, Remaining: 100}})
				_ = l.FreeAt(now, 3, 0)
				_ = l.Share()
			}
		}()
	}
	wg.Wait()
	// 100 a second for 0.5 s from empty, whatever the interleaving.
	if taken > 50 || taken < 40 {
		t.Fatalf("%d calls taken in 500 ms at 100 a second", taken)
	}
}
