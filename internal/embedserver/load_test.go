package embedserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// The incident's validation matrix through real HTTP on loopback: whatever the
// concurrency and whether the upstream answers or hangs, every request gets an
// answer (200, 429, 503 or 504) and none outlives its deadline by more than a
// margin.
func TestValidationMatrix(t *testing.T) {
	modes := []struct {
		name     string
		up       fakeupstream.Config
		cfg      Config
		ocfg     openai.Config
		allOKMax int // up to this many clients every request must succeed
		each     int // requests per client
	}{
		{name: "realistic upstream",
			up:  fakeupstream.Config{Latency: fakeupstream.Latency{Base: 30 * time.Millisecond, Jitter: 70 * time.Millisecond, TailProb: 0.02, Tail: 300 * time.Millisecond}},
			cfg: Config{MaxInFlight: 8, MaxQueue: 32, RequestTimeout: 5 * time.Second, QueueTimeout: 2 * time.Second}, ocfg: openai.Config{AttemptTimeout: 3 * time.Second},
			allOKMax: 10, each: 2},
		{name: "hanging upstream",
			up:  fakeupstream.Config{HangRate: 1},
			cfg: Config{MaxInFlight: 8, MaxQueue: 32, RequestTimeout: time.Second, QueueTimeout: 500 * time.Millisecond},
			// Attempts outlast the deadline, so the deadline answers (504), not the retry budget.
			ocfg: openai.Config{AttemptTimeout: 400 * time.Millisecond, MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond}, each: 1},
	}
	const margin = 2 * time.Second
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			h := startUpstream(t, mode.cfg, mode.up, mode.ocfg)
			for _, clients := range []int{1, 3, 5, 10, 100} {
				r := loadgen.Run(context.Background(), loadgen.Config{URL: h.url + "/v1/embeddings", Concurrency: clients, Requests: mode.each * clients,
					Deadline: mode.cfg.RequestTimeout, Margin: margin, Body: []byte(`{"input":["incident check","second input"]}`)})
				t.Logf("%3d clients: %+v", clients, r)
				if r.Requests != mode.each*clients {
					t.Fatalf("%d clients: %d requests, want %d", clients, r.Requests, mode.each*clients)
				}
				if r.Hung != 0 || r.Errors != 0 {
					t.Fatalf("%d clients: %d hung, %d errors (%v %s)", clients, r.Hung, r.Errors, r.ByStatus, r.FirstError)
				}
				for status := range r.ByStatus {
					if status != 200 && status != 429 && status != 503 && status != 504 {
						t.Fatalf("%d clients: status %d", clients, status)
					}
				}
				if r.Max > mode.cfg.RequestTimeout+margin {
					t.Fatalf("%d clients: an answer took %v", clients, r.Max)
				}
				if clients <= mode.allOKMax && r.OK != r.Requests {
					t.Fatalf("%d clients within capacity: only %d/%d ok (%v)", clients, r.OK, r.Requests, r.ByStatus)
				}
				if mode.up.HangRate == 1 && r.OK != 0 {
					t.Fatalf("a hanging upstream produced %d successes", r.OK)
				}
			}
			// Nothing is left holding a slot.
			poll.Until(t, "slots released", func() bool { return h.srv.limiter.InFlight() == 0 && h.srv.limiter.QueueDepth() == 0 })
		})
	}
}

func TestClientDisconnectLeavesQueue(t *testing.T) {
	h := startUpstream(t, Config{MaxInFlight: 1, MaxQueue: 4}, fakeupstream.Config{Latency: fakeupstream.Latency{Base: time.Minute}}, openai.Config{})
	release := h.occupy(t, 1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan answer, 1)
	go func() { done <- h.post(t, ctx, `{"input":"impatient"}`) }()
	poll.Until(t, "request queued", func() bool { return h.srv.limiter.QueueDepth() == 1 })
	cancel()
	<-done
	poll.Until(t, "queue left", func() bool { return h.srv.limiter.QueueDepth() == 0 })
	release()
	poll.Until(t, "slot freed", func() bool { return h.srv.limiter.InFlight() == 0 })
	// Only the occupying request ever reached the upstream.
	if calls := h.up.Stats().Calls; calls != 1 {
		t.Fatalf("upstream calls %d, want 1: the departed request's work started", calls)
	}
	poll.Until(t, "2 client-closed requests counted", func() bool { return h.metric(t, `embedserver_requests_total{code="499"}`) == 2 })
}

func checkHash8(_ *testing.T, inputs []string, got [][]float32) error {
	m := builtinmodel.Model{Dims: 8}
	want := make([]float32, 8)
	for i, in := range inputs {
		m.EmbedText(want, in)
		for j := range want {
			if got[i][j] != want[j] {
				return fmt.Errorf("vector %d is not the vector of %q", i, in)
			}
		}
	}
	return nil
}

func TestSplitAndCoalesceThroughServer(t *testing.T) {
	// A 200 ms upstream keeps the coalescing wait at its 2 ms ceiling (it is
	// 1/80 of the call latency), so 100 clients started together under -race
	// still share calls.
	h := startUpstream(t, Config{MaxInFlight: 100, MaxQueue: 10},
		fakeupstream.Config{Latency: fakeupstream.Latency{Base: 200 * time.Millisecond}, MaxBatch: 64},
		openai.Config{MaxBatchSize: 64, Linger: 2 * time.Millisecond})

	t.Run("split", func(t *testing.T) {
		h.up.ResetStats()
		inputs := make([]string, 150)
		for i := range inputs {
			inputs[i] = fmt.Sprintf("document %d of the big batch", i)
		}
		a := h.post(t, context.Background(), `{"input":["`+strings.Join(inputs, `","`)+`"]}`)
		if err := checkHash8(t, inputs, vectorsOf(t, a, 150)); err != nil {
			t.Fatal(err)
		}
		if st := h.up.Stats(); st.Calls != 3 || st.LargestCall != 64 {
			t.Fatalf("upstream calls %d largest %d, want 3 and 64", st.Calls, st.LargestCall)
		}
	})

	t.Run("coalesce", func(t *testing.T) {
		h.up.ResetStats()
		const clients = 100
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				in := fmt.Sprintf("query from client %d", c)
				a := h.post(t, context.Background(), `{"input":"`+in+`"}`)
				if a.status != http.StatusOK {
					errs <- fmt.Errorf("client %d: %d %s", c, a.status, a.body)
					return
				}
				if err := checkHash8(t, []string{in}, vectorsOf(t, a, 1)); err != nil {
					errs <- err
				}
			}(c)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		st := h.up.Stats()
		t.Logf("%d upstream calls for %d requests", st.Calls, clients)
		if st.Calls >= clients/2 || st.Inputs != clients || st.LargestCall > 64 {
			t.Fatalf("upstream calls %d, inputs %d, largest %d: not coalesced within the batch size", st.Calls, st.Inputs, st.LargestCall)
		}
	})
}

// The drain as a client meets it: readiness goes false at once; for the drain
// delay new requests are served as usual (through the limiter), on new and
// kept-alive connections alike, each answer closing its connection; then the
// listener closes (a new connection is refused) while the requests inside,
// the ones that came during the delay included, finish with 200.
func TestDrain(t *testing.T) {
	const delay = 1500 * time.Millisecond
	p := &scripted{gate: make(chan struct{}), held: make(chan struct{}, 8)}
	h := startServer(t, Config{MaxInFlight: 4, DrainTimeout: 10 * time.Second, DrainDelay: delay}, p)
	released := false
	release := func() {
		if !released {
			released = true
			close(p.gate)
		}
	}
	defer release()

	// A client with a kept-alive connection from before the drain.
	kept := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer kept.CloseIdleConnections()
	keptPost := func() answer {
		resp, err := kept.Post(h.url+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"kept"}`))
		if err != nil {
			return answer{status: -1, body: []byte(err.Error())}
		}
		defer resp.Body.Close()
		return answer{status: resp.StatusCode, header: resp.Header, body: readAll(resp), closed: resp.Close}
	}
	if a := keptPost(); a.status != http.StatusOK || a.closed {
		t.Fatalf("before the drain: %d, connection closed %v: %s", a.status, a.closed, a.body)
	}

	// One request inside when the drain begins.
	results := make(chan answer, 2)
	go func() { results <- h.post(t, context.Background(), `{"input":"hold"}`) }()
	<-p.held

	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- h.shutdown(t) }()
	poll.Until(t, "draining", h.srv.Draining)

	// (a) Not ready, at once; still alive.
	if a := get(t, h.admin+"/readyz"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", a.status)
	}
	if a := get(t, h.admin+"/healthz"); a.status != http.StatusOK {
		t.Fatalf("healthz while draining: %d", a.status)
	}
	// (b) New requests during the delay are answered as usual, and ask their
	// client to reconnect (through the Service, to a pod that stays).
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Post(h.url+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"late"}`))
	if err != nil {
		t.Fatalf("a new connection during the drain delay: %v", err)
	}
	late := answer{status: resp.StatusCode, header: resp.Header, body: readAll(resp), closed: resp.Close}
	resp.Body.Close()
	vectorsOf(t, late, 1)
	if !late.closed {
		t.Fatalf("an answer during the drain did not close its connection: %v", late.header)
	}
	if a := keptPost(); a.status != http.StatusOK || !a.closed {
		t.Fatalf("kept-alive connection during the drain delay: %d, connection closed %v: %s", a.status, a.closed, a.body)
	}
	// A second request that is inside when the listener closes; it takes a
	// slot like any other.
	go func() { results <- h.post(t, context.Background(), `{"input":"hold"}`) }()
	<-p.held
	if n := h.srv.limiter.InFlight(); n != 2 {
		t.Fatalf("%d requests hold a slot, want 2", n)
	}
	if took := time.Since(began); took >= delay {
		t.Fatalf("the checks during the delay took %v, longer than the delay of %v: the test proves nothing", took, delay)
	}

	// (c) After the delay the listener is closed: a new connection is refused,
	// while the two requests are still inside.
	addr := strings.TrimPrefix(h.url, "http://")
	poll.UntilSaw(t, "the listener to refuse connections", func() (bool, string) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return false, "connected"
		}
		return errors.Is(err, syscall.ECONNREFUSED), err.Error()
	})
	if took := time.Since(began); took < delay {
		t.Fatalf("the listener closed after %v, before the drain delay of %v", took, delay)
	}
	select {
	case err := <-stopped:
		t.Fatalf("the server stopped (%v) with two requests inside", err)
	case a := <-results:
		t.Fatalf("a held request was answered before its release: %d %s", a.status, a.body)
	default:
	}

	// (d) The requests inside finish with their answers, and the drain is clean.
	release()
	for range 2 {
		vectorsOf(t, <-results, 1)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func TestDrainTimeout(t *testing.T) {
	h := startUpstream(t, Config{MaxInFlight: 2, DrainTimeout: 100 * time.Millisecond},
		fakeupstream.Config{Latency: fakeupstream.Latency{Base: time.Minute}}, openai.Config{})
	result := make(chan answer, 1)
	go func() { result <- h.post(t, context.Background(), `{"input":"stuck"}`) }()
	poll.Until(t, "in flight", func() bool { return h.srv.limiter.InFlight() == 1 })
	err := h.shutdown(t)
	if err == nil || !strings.Contains(err.Error(), "drain timeout") {
		t.Fatalf("err %v, want a drain timeout", err)
	}
	// The request cut off is answered, not dropped: 503 draining, retry
	// elsewhere.
	a := <-result
	if a.status != http.StatusServiceUnavailable || errorOf(t, a)["code"] != "draining" || a.header.Get("Retry-After") == "" {
		t.Fatalf("request still running at the drain timeout: %d %v %s", a.status, a.header, a.body)
	}
}

// An idle server that is told to stop keeps its listener open for DrainDelay,
// serving as usual: a client still routed to it (its endpoint list is not
// updated yet) gets its answer, neither an error nor a refused connection.
func TestDrainDelayServesLateClients(t *testing.T) {
	const delay = 700 * time.Millisecond
	h := startUpstream(t, Config{MaxInFlight: 2, DrainTimeout: 10 * time.Second, DrainDelay: delay, RetryAfter: 2 * time.Second},
		fakeupstream.Config{}, openai.Config{Linger: -1})
	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- h.shutdown(t) }()
	poll.Until(t, "draining", h.srv.Draining)

	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Post(h.url+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"late"}`))
	if err != nil {
		t.Fatalf("a client during the drain delay got no answer: %v", err)
	}
	late := answer{status: resp.StatusCode, header: resp.Header, body: readAll(resp)}
	resp.Body.Close()
	vectorsOf(t, late, 1)
	if err := <-stopped; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if took := time.Since(began); took < delay {
		t.Fatalf("an idle server stopped after %v, before its drain delay of %v", took, delay)
	}
}
