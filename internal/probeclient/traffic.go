package probeclient

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Traffic.
const (
	DefaultTrafficTimeout     = 5 * time.Second
	DefaultTrafficMaxInFlight = 4
)

// maxDrain bounds what is read of a synthetic request's answer; reading it
// lets the connection be reused.
const maxDrain = 1 << 20

// Shot is one synthetic request of a schedule.
type Shot struct {
	At     time.Duration // offset from the start of the window
	Target int           // index into the targets
	Text   int           // index into the texts
}

// Schedule spreads n requests evenly over window, the first at its start and
// the last window/n before its end, and takes targets and texts in turn (round
// robin), so each target gets n/targets requests, give or take one. Nothing is
// scheduled without targets or texts.
func Schedule(targets, texts, n int, window time.Duration) []Shot {
	if n <= 0 || targets <= 0 || texts <= 0 {
		return nil
	}
	window = max(window, 0)
	out := make([]Shot, n)
	for i := range out {
		out[i] = Shot{At: time.Duration(float64(window) * float64(i) / float64(n)), Target: i % targets, Text: i % texts}
	}
	return out
}

// Traffic sends synthetic requests, each embedding one probe text, the way a
// client would. The zero value is ready to use.
type Traffic struct {
	HTTP        *http.Client  // nil: a client of the package's own, without proxy
	Model       string        // sent as "model"; empty: omitted
	Timeout     time.Duration // bounds one request; 0: DefaultTrafficTimeout
	MaxInFlight int           // requests outstanding at once; 0: DefaultTrafficMaxInFlight
}

// Stats counts what became of a Send's requests.
type Stats struct {
	Planned  int
	ByStatus map[int]int // answered requests by HTTP status
	Failed   int         // sent and never answered: refused, reset, or no answer within the timeout
	// Cancelled were sent and cut short because the caller's context ended.
	Cancelled int
	// NotSent never started: the context ended first, there were no targets
	// or texts, or the window closed while MaxInFlight requests were out.
	NotSent int
	// FirstError describes the first failure or answer that is not a 2xx,
	// with its target.
	FirstError string
}

// String sums the stats up for an event or a log line:
// "10 probe requests: 9 × 200, 1 × 503; first error: http://...".
func (s Stats) String() string {
	parts := []string{}
	for _, code := range slices.Sorted(maps.Keys(s.ByStatus)) {
		parts = append(parts, fmt.Sprintf("%d × %d", s.ByStatus[code], code))
	}
	for _, c := range []struct {
		n    int
		what string
	}{{s.Failed, "failed"}, {s.Cancelled, "cancelled"}, {s.NotSent, "not sent"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	out := fmt.Sprintf("%d probe requests", s.Planned)
	if len(parts) > 0 {
		out += ": " + strings.Join(parts, ", ")
	}
	if s.FirstError != "" {
		out += "; first error: " + s.FirstError
	}
	return out
}

// Send sends n requests over window to targets (base URLs of ready pods, e.g.
// http://10.0.0.7:8080) as Schedule plans them, never more than MaxInFlight at
// once. A request due while MaxInFlight are out waits for one to end, but not
// past the window: then it is not sent. Send returns when every request has an
// outcome, so within window plus Timeout: run it beside a reconcile, not in
// it. When ctx ends it sends no more and cuts short those in flight.
func (t Traffic) Send(ctx context.Context, targets []string, n int, window time.Duration, texts []string) Stats {
	st := Stats{Planned: max(n, 0), ByStatus: map[int]int{}}
	shots := Schedule(len(targets), len(texts), n, window)
	st.NotSent = st.Planned - len(shots)
	if len(shots) == 0 {
		return st
	}
	timeout := positiveOr(t.Timeout, DefaultTrafficTimeout)
	slots := make(chan struct{}, positiveOr(t.MaxInFlight, DefaultTrafficMaxInFlight))
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	record := func(f func(*Stats)) {
		mu.Lock()
		defer mu.Unlock()
		f(&st)
	}
	start := time.Now()
	end := start.Add(max(window, 0))
	for i, s := range shots {
		if !sleepUntil(ctx, start.Add(s.At)) || !acquire(ctx, slots, end) {
			if ctx.Err() != nil {
				record(func(st *Stats) { st.NotSent += len(shots) - i })
				break
			}
			record(func(st *Stats) { st.NotSent++ }) // the window closed first
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			base := strings.TrimRight(targets[s.Target], "/")
			code, problem := t.one(ctx, timeout, base, texts[s.Text])
			record(func(st *Stats) {
				switch {
				case code != 0:
					st.ByStatus[code]++
				case ctx.Err() != nil:
					st.Cancelled++
					return
				default:
					st.Failed++
				}
				if problem != "" && st.FirstError == "" {
					st.FirstError = base + ": " + problem
				}
			})
		}()
	}
	wg.Wait()
	return st
}

// one sends one request and returns the answer's status (0 when there was
// none) and what went wrong ("" for a 2xx).
func (t Traffic) one(ctx context.Context, timeout time.Duration, base, text string) (code int, problem string) {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	body, err := requestBody(t.Model, []string{text})
	if err != nil {
		return 0, err.Error()
	}
	resp, err := post(ctx, t.HTTP, base, body)
	if err != nil {
		return 0, requestError(ctx, err).Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, statusError(resp)
	}
	// The status is what the server counted; reading the rest of the answer
	// only lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return resp.StatusCode, ""
}

// sleepUntil waits for t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// acquire takes a slot, waiting no later than end; false when none was free
// by then or ctx ended.
func acquire(ctx context.Context, slots chan struct{}, end time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	d := time.Until(end)
	if d <= 0 {
		return false
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}
