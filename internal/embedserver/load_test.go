package embedserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
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

func TestDrain(t *testing.T) {
	h := startUpstream(t, Config{MaxInFlight: 4, DrainTimeout: 10 * time.Second, RetryAfter: 3 * time.Second},
		fakeupstream.Config{Latency: fakeupstream.Latency{Base: 400 * time.Millisecond}}, openai.Config{Linger: -1})
	results := make(chan answer, 3)
	for i := 0; i < 3; i++ {
		go func(i int) { results <- h.post(t, context.Background(), fmt.Sprintf(`{"input":"in flight %d"}`, i)) }(i)
	}
	poll.Until(t, "3 in flight", func() bool { return h.srv.limiter.InFlight() == 3 })

	stopped := make(chan error, 1)
	go func() { stopped <- h.shutdown(t) }()
	poll.Until(t, "draining", h.srv.Draining)

	if a := get(t, h.admin+"/readyz"); a.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while draining: %d", a.status)
	}
	if a := get(t, h.admin+"/healthz"); a.status != http.StatusOK {
		t.Fatalf("healthz while draining: %d", a.status)
	}
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Post(h.url+"/v1/embeddings", "application/json", strings.NewReader(`{"input":"late"}`))
	if err != nil {
		t.Fatal(err)
	}
	late := answer{status: resp.StatusCode, header: resp.Header, body: readAll(resp)}
	resp.Body.Close()
	if late.status != http.StatusServiceUnavailable || errorOf(t, late)["code"] != "draining" || late.header.Get("Retry-After") != "3" {
		t.Fatalf("new request while draining: %d %v %s", late.status, late.header, late.body)
	}
	for i := 0; i < 3; i++ {
		if a := <-results; a.status != http.StatusOK {
			t.Fatalf("in-flight request: %d %s", a.status, a.body)
		}
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
	<-result
}

// An idle server that is told to stop keeps its listener open for DrainDelay:
// a client still routed to it (its endpoint list is not updated yet) gets an
// honest 503 draining with Retry-After, never a refused connection.
func TestDrainDelayAnswersLateClients(t *testing.T) {
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
	if late.status != http.StatusServiceUnavailable || errorOf(t, late)["code"] != "draining" || late.header.Get("Retry-After") != "2" {
		t.Fatalf("late request: %d %v %s", late.status, late.header, late.body)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if took := time.Since(began); took < delay {
		t.Fatalf("an idle server stopped after %v, before its drain delay of %v", took, delay)
	}
}
