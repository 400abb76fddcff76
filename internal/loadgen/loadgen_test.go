package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	d := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{d(7), 0.99, 7},
		{d(1, 2, 3, 4), 0.5, 2},
		{d(1, 2, 3, 4), 0.99, 4},
		{d(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.5, 5},
		{d(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9},
	}
	for _, tt := range tests {
		if got := Percentile(tt.in, tt.q); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}

func TestClassifies(t *testing.T) {
	statuses := []int{200, 429, 503, 504, 500, 200}
	i := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One client sends in order, so answers follow the list; the last one hangs.
		if i == len(statuses) {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(statuses[i])
		i++
	}))
	defer ts.Close()
	r := Run(context.Background(), Config{URL: ts.URL, Concurrency: 1, Requests: 7, Deadline: 100 * time.Millisecond, Margin: 50 * time.Millisecond})
	if r.Requests != 7 || r.OK != 2 || r.Shed != 2 || r.Timeouts != 1 || r.Errors != 1 || r.Hung != 1 {
		t.Fatalf("%+v", r)
	}
}

// staticTargets hands out a fixed list round-robin, as Endpoints does with
// the ready endpoints it last resolved.
type staticTargets struct {
	mu   sync.Mutex
	list []Target
	i    int
}

func (s *staticTargets) Next() (Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return Target{}, false
	}
	t := s.list[s.i%len(s.list)]
	s.i++
	return t, true
}

// With targets, every request is counted for the pod that answered it, and
// the pods add up to their tracks and to the level.
func TestCountsPerPodAndTrack(t *testing.T) {
	status := func(code int) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
	}
	ok1, ok2, shed := status(200), status(200), status(429)
	defer ok1.Close()
	defer ok2.Close()
	defer shed.Close()
	targets := &staticTargets{list: []Target{
		{URL: ok1.URL, Pod: "docs-stable-a", Track: "stable"},
		{URL: ok2.URL, Pod: "docs-stable-b", Track: "stable"},
		{URL: shed.URL, Pod: "docs-canary-a", Track: "canary"},
	}}
	r := Run(context.Background(), Config{Targets: targets, Concurrency: 3, Requests: 30, Deadline: time.Second, Margin: time.Second})
	if r.Requests != 30 || r.OK != 20 || r.Shed != 10 || r.NoTarget != 0 {
		t.Fatalf("level: %+v", r.Counts)
	}
	for pod, want := range map[string]Counts{
		"stable/docs-stable-a": {Requests: 10, OK: 10}, "stable/docs-stable-b": {Requests: 10, OK: 10}, "canary/docs-canary-a": {Requests: 10, Shed: 10},
	} {
		if got := r.Pods[pod]; got == nil || got.Counts != want {
			t.Errorf("pod %s: %+v, want %+v", pod, got, want)
		}
	}
	tracks := r.Tracks()
	if len(tracks) != 2 || tracks[0].Track != "canary" || tracks[0].Shed != 10 || tracks[1].Track != "stable" || tracks[1].OK != 20 || tracks[1].P99 <= 0 {
		t.Errorf("tracks: %+v %+v", tracks[0], tracks[1])
	}
	totals := PodTotals([]Result{r, r})
	if len(totals) != 3 || totals[0].Pod != "docs-canary-a" || totals[0].Requests != 20 {
		t.Errorf("pod totals over two levels: %+v", totals[0])
	}
	var b strings.Builder
	PrintPods(&b, []Result{r}, func(pod string) bool { return pod != "docs-stable-b" })
	if !strings.Contains(b.String(), "docs-stable-b  stable      gone") || !strings.Contains(b.String(), "docs-stable-a  stable     ready") {
		t.Errorf("pods table:\n%s", b.String())
	}
}

// A promotion during a level: the canary's pod keeps answering, and its
// requests count for the track its revision had when each was sent (Endpoints
// gives the new track from the refresh after the status write).
func TestTrackChangesDuringALevel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	targets := &staticTargets{list: []Target{{URL: srv.URL, Pod: "docs-5d2a11-a", Revision: "5d2a11", Track: "canary"}}}
	promoted := false
	promote := &hookTargets{inner: targets, after: 6, hook: func() {
		targets.list = []Target{{URL: srv.URL, Pod: "docs-5d2a11-a", Revision: "5d2a11", Track: "stable"}}
		promoted = true
	}}
	r := Run(context.Background(), Config{Targets: promote, Concurrency: 1, Requests: 10, Deadline: time.Second, Margin: time.Second})
	if !promoted || r.OK != 10 {
		t.Fatalf("level: promoted %v, %+v", promoted, r.Counts)
	}
	tracks := r.Tracks()
	if len(tracks) != 2 || tracks[0].Track != "canary" || tracks[0].OK != 6 || tracks[1].Track != "stable" || tracks[1].OK != 4 {
		t.Errorf("tracks: %+v", tracks)
	}
	totals := PodTotals([]Result{r})
	if len(totals) != 2 || totals[0].Pod != "docs-5d2a11-a" || totals[0].Track != "canary" || totals[1].Pod != "docs-5d2a11-a" || totals[1].Track != "stable" {
		t.Errorf("pod totals: %+v %+v", totals[0], totals[1])
	}
}

// hookTargets runs hook once after handing out `after` targets.
type hookTargets struct {
	inner Targets
	after int
	n     int
	hook  func()
}

func (h *hookTargets) Next() (Target, bool) {
	if h.n == h.after {
		h.hook()
	}
	h.n++
	return h.inner.Next()
}

// The role of a revision is what the RAGService's status names it; "" for a
// revision it does not name (Endpoints then keeps the last role it saw).
func TestRevisionsRoleOf(t *testing.T) {
	all := Revisions{Stable: "bbb", Canary: "ccc", Retiring: "aaa"}
	for _, tc := range []struct {
		name     string
		r        Revisions
		revision string
		want     string
	}{
		{"stable", all, "bbb", TrackStable},
		{"canary", all, "ccc", TrackCanary},
		{"retiring", all, "aaa", TrackRetiring},
		{"a revision status does not name", all, "ddd", ""},
		{"a pod without a revision", all, "", ""},
		{"no revision in status matches an empty one", Revisions{}, "", ""},
		{"empty status", Revisions{}, "bbb", ""},
		{"canary only (no stable yet)", Revisions{Canary: "ccc"}, "ccc", TrackCanary},
		{"spec back to stable's template: stable wins", Revisions{Stable: "bbb", Canary: "bbb"}, "bbb", TrackStable},
		{"handed over, old one retiring", Revisions{Stable: "ccc", Retiring: "bbb"}, "bbb", TrackRetiring},
		{"handed over, the new stable", Revisions{Stable: "ccc", Retiring: "bbb"}, "ccc", TrackStable},
		{"retiring gone", Revisions{Stable: "ccc"}, "bbb", ""},
		{"a new canary while one retires", Revisions{Stable: "ccc", Canary: "ddd", Retiring: "bbb"}, "ddd", TrackCanary},
	} {
		if got := tc.r.RoleOf(tc.revision); got != tc.want {
			t.Errorf("%s: %+v.RoleOf(%q) = %q, want %q", tc.name, tc.r, tc.revision, got, tc.want)
		}
	}
}

// No ready endpoint: nothing is sent, the level still ends, and it says so.
func TestNoTargetIsCountedNotSent(t *testing.T) {
	start := time.Now()
	r := Run(context.Background(), Config{Targets: &staticTargets{}, Concurrency: 2, Requests: 4, Deadline: time.Second})
	if r.Requests != 0 || r.NoTarget != 4 {
		t.Fatalf("%+v, NoTarget %d", r.Counts, r.NoTarget)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a level without endpoints did not end")
	}
}

func TestAnswerDims(t *testing.T) {
	for _, c := range []struct {
		body string
		dims int
		ok   bool
	}{
		{`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.3]}]}`, 3, true},
		// Four little-endian float32s, as the official clients decode them.
		{`{"data":[{"embedding":"AACAPwAAAEAAAEBAAACAQA=="}]}`, 4, true},
		{`{"data":[]}`, 0, false},
		{`{"error":{"message":"x"}}`, 0, false},
		{`not json`, 0, false},
	} {
		if d, ok := answerDims([]byte(c.body)); d != c.dims || ok != c.ok {
			t.Errorf("answerDims(%s) = %d, %v; want %d, %v", c.body, d, ok, c.dims, c.ok)
		}
	}
}

// A steady load counts every request that did not get a 200, by status and
// the reason its body gives, or by why no answer came: shed answers and
// connection errors included, so a test can ask for none at all.
func TestSteadyLoadCountsEveryRequestWithoutA200(t *testing.T) {
	answer := func(code int, retryAfter, body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		}))
	}
	openaiError := func(typ, code string) string {
		return `{"error":{"message":"` + strings.Repeat("m", 1000) + `","type":"` + typ + `","param":null,"code":` + code + `}}`
	}
	ok := answer(200, "", `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.5]}]}`)
	draining := answer(503, "1", openaiError("server_error", `"draining"`))
	queueFull := answer(429, "1", openaiError("rate_limit_error", `"queue_full"`))
	noCode := answer(500, "", openaiError("server_error", "null"))
	plain := answer(503, "", "upstream connect error")
	closing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	for _, s := range []*httptest.Server{ok, draining, queueFull, noCode, plain, closing} {
		defer s.Close()
	}
	gone := answer(200, "", "")
	gone.Close() // nothing listens there any more

	l := &Load{cfg: LoadConfig{Body: []byte(`{"input":"x"}`)}, client: &http.Client{Timeout: 5 * time.Second}, endpoints: &Endpoints{}, stats: newStats()}
	send := func(url, track string, n int) {
		for range n {
			l.one(Target{URL: url, Track: track})
		}
	}
	send(ok.URL, "stable", 5)
	send(draining.URL, "stable", 3)
	send(queueFull.URL, "stable", 2)
	send(noCode.URL, "stable", 1)
	send(plain.URL, "stable", 1)
	send(closing.URL, "stable", 1)
	send(gone.URL, "stable", 2)
	send(ok.URL, "canary", 4)

	s := l.Snapshot()
	want := map[string]int{"503 draining": 3, "429 queue_full": 2, "500 server_error": 1, "503 -": 1, "conn closed": 1, "conn refused": 2}
	if got := s.NotOK["stable"]; !maps.Equal(got, want) {
		t.Fatalf("stable's requests without a 200: %v, want %v", got, want)
	}
	if n := s.CountNotOK("stable"); n != 10 || n != s.Total("stable")-s.Count("stable", OutcomeOK) {
		t.Fatalf("CountNotOK %d of %d requests, %d OK", n, s.Total("stable"), s.Count("stable", OutcomeOK))
	}
	if n := s.CountNotOK("canary"); n != 0 || s.NotOKSummary("canary") != "none" {
		t.Fatalf("canary: %d without a 200: %s", n, s.NotOKSummary("canary"))
	}
	// Shed answers are still shed (not errors), but counted here too.
	if s.Count("stable", OutcomeShed) != 5 || s.Count("stable", OutcomeError) != 2 || s.Count("stable", OutcomeConnFail) != 3 {
		t.Fatalf("outcomes %v", s.Counts["stable"])
	}
	const summary = "503 draining: 3, 429 queue_full: 2, conn refused: 2, 500 server_error: 1, 503 -: 1, conn closed: 1"
	if got := s.NotOKSummary(""); got != summary {
		t.Fatalf("summary %q, want %q", got, summary)
	}
	var b strings.Builder
	s.Print(&b)
	if !strings.Contains(b.String(), "stable  10      "+summary) || !strings.Contains(b.String(), "canary  0       none") {
		t.Fatalf("printed:\n%s", b.String())
	}
}

// What a request without an answer is counted as, for the errors net/http
// returns (wrapped as it wraps them).
func TestConnReason(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &url.Error{Op: "Post", URL: "http://10.0.0.1:8080/v1/embeddings",
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}}
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{dial(syscall.ECONNREFUSED), "refused"},
		{&url.Error{Op: "Post", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}}, "reset"},
		{&url.Error{Op: "Post", Err: io.EOF}, "closed"},
		{&url.Error{Op: "Post", Err: fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF)}, "closed"},
		{&url.Error{Op: "Post", Err: context.DeadlineExceeded}, "timeout"}, // Client.Timeout
		{&url.Error{Op: "Post", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}}, "timeout"},
		{dial(syscall.EHOSTUNREACH), "other"},
		{errors.New("something else"), "other"},
	} {
		if got := connReason(c.err); got != c.want {
			t.Errorf("connReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

// The reason of an answer other than 200: the OpenAI error's code, else its
// type, else "-" (no body, not JSON, not the error shape).
func TestErrorReason(t *testing.T) {
	cutOff := (`{"error":{"message":"` + strings.Repeat("m", maxErrorAnswer) + `","code":"draining"}}`)[:maxErrorAnswer]
	for body, want := range map[string]string{
		`{"error":{"message":"m","type":"server_error","param":null,"code":"draining"}}`:       "draining",
		`{"error":{"message":"m","type":"rate_limit_error","param":null,"code":"queue_full"}}`: "queue_full",
		`{"error":{"message":"m","type":"invalid_request_error","param":"input","code":null}}`: "invalid_request_error",
		`{"error":{"message":"m","type":"server_error","code":""}}`:                            "server_error",
		`{"error":{"message":"m"}}`:                                 "-",
		`{"detail":"Not Found"}`:                                    "-",
		`upstream connect error or disconnect/reset before headers`: "-",
		``:     "-",
		cutOff: "-", // a long error cut by the read limit is not JSON
	} {
		if got := errorReason([]byte(body)); got != want {
			t.Errorf("errorReason(%.60q) = %q, want %q", body, got, want)
		}
	}
}
