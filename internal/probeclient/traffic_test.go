package probeclient

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/embeddingspace"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
)

func TestSchedule(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name              string
		targets, texts, n int
		window            time.Duration
		want              []Shot
	}{
		{"nothing to send", 2, 3, 0, time.Second, nil},
		{"no targets", 0, 3, 5, time.Second, nil},
		{"no texts", 2, 0, 5, time.Second, nil},
		{"one request, at the start", 3, 3, 1, time.Second, []Shot{{0, 0, 0}}},
		{"four over a second, two targets, three texts", 2, 3, 4, time.Second,
			[]Shot{{0, 0, 0}, {250 * ms, 1, 1}, {500 * ms, 0, 2}, {750 * ms, 1, 0}}},
		{"more targets than requests", 5, 1, 3, 300 * ms, []Shot{{0, 0, 0}, {100 * ms, 1, 0}, {200 * ms, 2, 0}}},
		{"no window: all at once", 2, 2, 3, 0, []Shot{{0, 0, 0}, {0, 1, 1}, {0, 0, 0}}},
		{"a negative window counts as none", 1, 1, 2, -time.Second, []Shot{{0, 0, 0}, {0, 0, 0}}},
		{"uneven division", 1, 1, 3, 100 * ms, []Shot{{0, 0, 0}, {33333333, 0, 0}, {66666666, 0, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Schedule(tt.targets, tt.texts, tt.n, tt.window); !slices.Equal(got, tt.want) {
				t.Fatalf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

// TestScheduleSpreads checks the properties over many sizes: evenly spaced
// inside the window, every target within one request of its share.
func TestScheduleSpreads(t *testing.T) {
	for _, window := range []time.Duration{time.Second, 30 * time.Second, 10 * time.Minute} {
		for _, targets := range []int{1, 2, 3, 7} {
			for _, n := range []int{1, 2, 5, 10, 64, 1000} {
				shots := Schedule(targets, 81, n, window)
				if len(shots) != n {
					t.Fatalf("%d shots for %d", len(shots), n)
				}
				per := make([]int, targets)
				step := window / time.Duration(n)
				for i, s := range shots {
					per[s.Target]++
					if s.At < 0 || s.At >= window {
						t.Fatalf("window %v n %d: shot %d at %v, outside the window", window, n, i, s.At)
					}
					if i > 0 {
						if gap := s.At - shots[i-1].At; gap < step-time.Nanosecond || gap > step+time.Nanosecond {
							t.Fatalf("window %v n %d: gap %v before shot %d, want %v", window, n, gap, i, step)
						}
					}
				}
				if lo, hi := slices.Min(per), slices.Max(per); hi-lo > 1 {
					t.Fatalf("targets %d n %d: per target %v", targets, n, per)
				}
			}
		}
	}
}

// TestTrafficRealServers sends probe traffic to two real embedding servers
// and finds it in their own metrics: probe requests count like any other.
func TestTrafficRealServers(t *testing.T) {
	a, b := startHandlerServer(t, "hash-384"), startHandlerServer(t, "hash-384")
	probes := embeddingspace.BuiltinProbes()
	const n, window = 12, 600 * time.Millisecond
	start := time.Now()
	st := Traffic{Model: "hash-384"}.Send(context.Background(), []string{a.url, b.url}, n, window, probes)
	if st.ByStatus[200] != n || st.Planned != n || st.Failed+st.Cancelled+st.NotSent != 0 || st.FirstError != "" {
		t.Fatalf("stats %+v", st)
	}
	if got, want := st.String(), "12 probe requests: 12 × 200"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var arrivals []time.Duration
	for _, s := range []*handlerServer{a, b} {
		if len(s.requests) != n/2 {
			t.Errorf("%s got %d requests, want %d", s.url, len(s.requests), n/2)
		}
		if got := metric(t, s.admin, `embedserver_requests_total{code="200"}`); got != n/2 {
			t.Errorf("%s counted %v requests, want %d", s.url, got, n/2)
		}
		for i, at := range s.arrivals {
			arrivals = append(arrivals, at.Sub(start))
			if r := s.requests[i]; r.method != http.MethodPost || r.path != "/v1/embeddings" || !strings.Contains(string(r.body), `"model":"hash-384"`) {
				t.Errorf("request %s %s %s", r.method, r.path, r.body)
			}
		}
	}
	// Spread, not a burst: the i-th arrival is no earlier than the i-th
	// request was due.
	slices.Sort(arrivals)
	for i, s := range Schedule(2, len(probes), n, window) {
		if arrivals[i] < s.At {
			t.Fatalf("arrival %d at %v, before its time %v: %v", i, arrivals[i], s.At, arrivals)
		}
	}
}

func metric(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /metrics", series)
	return 0
}

// TestTrafficMaxInFlight sends to a server slower than the schedule: never
// more than MaxInFlight requests are out, and those that cannot start within
// the window are not sent.
func TestTrafficMaxInFlight(t *testing.T) {
	var (
		now  atomic.Int64
		mu   sync.Mutex
		peak int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = readBody(r)
		cur := now.Add(1)
		defer now.Add(-1)
		mu.Lock()
		peak = max(peak, cur)
		mu.Unlock()
		time.Sleep(150 * time.Millisecond)
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	st := Traffic{MaxInFlight: 2}.Send(context.Background(), []string{srv.URL}, 10, 200*time.Millisecond, []string{"a", "b"})
	mu.Lock()
	defer mu.Unlock()
	if p := peak; p > 2 || p < 1 {
		t.Errorf("peak %d requests in flight, want at most 2", p)
	}
	if st.ByStatus[200]+st.NotSent != 10 || st.NotSent == 0 || st.Failed+st.Cancelled != 0 {
		t.Errorf("stats %+v: want every request answered or not sent, some not sent", st)
	}
}

func TestTrafficFailures(t *testing.T) {
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openaiapi.WriteError(w, provider.BadRequest("input", "input must not be an empty string"))
	}))
	defer refuse.Close()
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = readBody(r)
		<-r.Context().Done()
	}))
	defer stall.Close()
	ln := listen(t)
	closed := "http://" + ln.Addr().String()
	ln.Close()

	st := Traffic{Timeout: 200 * time.Millisecond}.Send(context.Background(), []string{refuse.URL, stall.URL, closed}, 6, 600*time.Millisecond, []string{"x"})
	if st.ByStatus[400] != 2 || st.Failed != 4 || st.NotSent+st.Cancelled != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The 400 comes first: the next failure is due 200ms later.
	want := refuse.URL + ": HTTP 400 (invalid_value): input must not be an empty string"
	if st.FirstError != want {
		t.Errorf("first error %q, want %q", st.FirstError, want)
	}
	if got := st.String(); got != "6 probe requests: 2 × 400, 4 failed; first error: "+want {
		t.Errorf("String() = %q", got)
	}

	// Each failure kind, alone, names itself.
	for _, tt := range []struct{ target, want string }{
		{stall.URL, stall.URL + ": no answer within 200ms"},
		{closed, closed + ": dial tcp " + strings.TrimPrefix(closed, "http://") + ": connect: connection refused"},
	} {
		st := Traffic{Timeout: 200 * time.Millisecond}.Send(context.Background(), []string{tt.target}, 1, 0, []string{"x"})
		if st.Failed != 1 || st.FirstError != tt.want {
			t.Errorf("stats %+v, want first error %q", st, tt.want)
		}
	}
}

// TestTrafficStopsWhenCancelled cancels a long window early: Send returns at
// once, sends nothing more, and cuts short what is in flight.
func TestTrafficStopsWhenCancelled(t *testing.T) {
	var mu sync.Mutex
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = readBody(r)
		mu.Lock()
		got++
		mu.Unlock()
		<-r.Context().Done() // hold every request until the client leaves
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(150*time.Millisecond, cancel)
	done := make(chan Stats, 1)
	go func() {
		done <- Traffic{Timeout: time.Minute}.Send(ctx, []string{srv.URL}, 20, 20*time.Second, []string{"x"})
	}()
	var st Stats
	select {
	case st = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not return after its context was cancelled")
	}
	if st.Cancelled != 1 || st.NotSent != 19 || len(st.ByStatus)+st.Failed != 0 {
		t.Errorf("stats %+v: want the first request cut short and 19 not sent", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 1 {
		t.Errorf("server saw %d requests, want 1", got)
	}
}

func TestTrafficNothingToSend(t *testing.T) {
	for _, tt := range []struct {
		name    string
		targets []string
		texts   []string
		n       int
		want    Stats
	}{
		{"no ready pods", nil, []string{"x"}, 5, Stats{Planned: 5, NotSent: 5, ByStatus: map[int]int{}}},
		{"no texts", []string{"http://127.0.0.1:1"}, nil, 5, Stats{Planned: 5, NotSent: 5, ByStatus: map[int]int{}}},
		{"zero requests", []string{"http://127.0.0.1:1"}, []string{"x"}, 0, Stats{ByStatus: map[int]int{}}},
		{"negative requests", []string{"http://127.0.0.1:1"}, []string{"x"}, -3, Stats{ByStatus: map[int]int{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := Traffic{}.Send(context.Background(), tt.targets, tt.n, time.Second, tt.texts)
			if st.Planned != tt.want.Planned || st.NotSent != tt.want.NotSent || len(st.ByStatus) != 0 || st.Failed != 0 {
				t.Fatalf("stats %+v, want %+v", st, tt.want)
			}
		})
	}
	if got := (Stats{Planned: 5, NotSent: 5}).String(); got != "5 probe requests: 5 not sent" {
		t.Errorf("String() = %q", got)
	}
}
