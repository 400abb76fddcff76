package openai

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// closedLoop runs clients that each send one input at a time for d, with a
// deadline per request, and counts answers by status (200 for success).
func closedLoop(t *testing.T, c *Client, clients int, d, deadline time.Duration) map[int]int {
	t.Helper()
	var mu sync.Mutex
	got := map[int]int{}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; time.Now().Before(stop); n++ {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				in := texts(fmt.Sprintf("client %d request %d", i, n), 1)
				resp, err := c.Embed(ctx, provider.Request{Inputs: in})
				cancel()
				status := 200
				if err != nil {
					pe, ok := provider.AsError(err)
					if !ok {
						status = 504
					} else {
						status = pe.Status
					}
				} else if len(resp.Embeddings) != 1 {
					t.Errorf("%d vectors for one input", len(resp.Embeddings))
				}
				mu.Lock()
				got[status]++
				mu.Unlock()
				if status == 429 {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}(i)
	}
	wg.Wait()
	return got
}

// A declared budget paces the calls, and each call carries every input that
// waited for it: 60 clients against 600 calls a minute (10 a second) are all
// answered, in few calls, and the upstream never refuses one.
func TestDeclaredBudgetFillsCalls(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{Latency: fakeupstream.Latency{Base: 20 * time.Millisecond}, RequestsPerMinute: 600},
		Config{RequestsPerMinute: 600, MaxInFlight: 64})
	got := closedLoop(t, e.client, 60, 1500*time.Millisecond, 2*time.Second)
	st := e.up.Stats()
	if got[200] == 0 || len(got) != 1 {
		t.Fatalf("answers %v, want only 200s", got)
	}
	if st.ByStatus[429] != 0 {
		t.Fatalf("the upstream refused %d calls: %v", st.ByStatus[429], st.ByStatus)
	}
	// 1.5 s at 10 a second, from an empty bucket: at most 15 calls, plus the
	// one at the end of the window.
	if st.Calls > 16 || st.Inputs < 4*st.Calls {
		t.Fatalf("%d calls carried %d inputs: not paced or not filled", st.Calls, st.Inputs)
	}
	if st.LargestCall > 60 {
		t.Fatalf("a call carried %d inputs for 60 clients", st.LargestCall)
	}
}

// With no budget declared the client learns it from the x-ratelimit headers:
// after the first answers, calls are paced and the upstream refuses none or
// nearly none.
func TestBudgetLearnedFromHeaders(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{Latency: fakeupstream.Latency{Base: 20 * time.Millisecond}, RequestsPerMinute: 600},
		Config{MaxInFlight: 64})
	got := closedLoop(t, e.client, 60, 1500*time.Millisecond, 2*time.Second)
	st := e.up.Stats()
	if got[200] < 100 {
		t.Fatalf("answers %v", got)
	}
	if r := st.ByStatus[429]; r > 1 {
		t.Fatalf("the upstream refused %d of %d calls", r, st.Calls)
	}
	if share := e.client.Budget().Share(); share.RequestsPerMinute != 600 {
		t.Fatalf("learned share %+v, want 600 requests a minute", share)
	}
}

// A 429 pauses the whole pod once: no call reaches the upstream until its
// Retry-After has passed, however many requests are waiting, and each
// request is then answered.
func TestRateLimitPausesThePod(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{Script: []int{429}, RetryAfter: 300 * time.Millisecond}, Config{MaxInFlight: 64, Linger: -1})
	first := make(chan error, 1)
	go func() {
		_, err := e.client.Embed(context.Background(), provider.Request{Inputs: texts("first", 1)})
		first <- err
	}()
	poll.Until(t, "the 429 to pause the pod", func() bool { return !e.client.Budget().PausedUntil(time.Now()).IsZero() })
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if _, err := e.client.Embed(ctx, provider.Request{Inputs: texts(fmt.Sprint("later ", i), 1)}); err != nil {
				failed.Add(1)
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	st := e.up.Stats()
	ct := st.CallTimes
	for _, at := range ct[1:] {
		if gap := at.Sub(ct[0]); gap < 290*time.Millisecond {
			t.Fatalf("a call reached the upstream %v after its 429 asked for 300ms", gap)
		}
	}
	// The waiting requests went out together, not one call each.
	if st.Calls > 5 {
		t.Fatalf("%d calls after one pause for 21 requests", st.Calls)
	}
}

// A request the budget cannot send before its deadline is refused at once
// with 429 budget and the time the budget frees up, and costs no call.
func TestBudgetShedsWhatItCannotServe(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{}, Config{RequestsPerMinute: 60}) // one a second, from an empty bucket
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Embed(ctx, provider.Request{Inputs: texts("x", 1)})
	pe, ok := provider.AsError(err)
	if !ok || pe.Status != 429 || pe.Code != "budget" || pe.RetryAfter < 900*time.Millisecond || pe.RetryAfter > time.Second {
		t.Fatalf("err %v (retry after %v), want 429 budget with about 1s", err, pe.RetryAfter)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("refused after %v, not at once", took)
	}
	if c := e.up.Stats().Calls; c != 0 {
		t.Fatalf("%d upstream calls", c)
	}
}

// A request over the per-call limits is split, never refused: 1,000 texts of
// about 2,000 bytes (500 tokens each) go out in calls under 300,000 tokens by
// the conservative estimate, and every vector comes back at its index.
func TestLargeRequestSplitUnderTokenLimit(t *testing.T) {
	e := newEnv(t, fakeupstream.Config{MaxBatch: 2048}, Config{MaxBatchSize: 2048, MaxInFlight: 16})
	in := make([]provider.Input, 1000)
	for i := range in {
		in[i] = provider.Input{Text: fmt.Sprintf("%04d %s", i, strings.Repeat("word ", 399))}
	}
	resp, err := e.client.Embed(context.Background(), provider.Request{Inputs: in})
	if err != nil {
		t.Fatal(err)
	}
	checkVectors(t, in, resp.Embeddings)
	st := e.up.Stats()
	perCall := int64(300000 / len(in[0].Text))
	if st.LargestCall > perCall || st.Calls != (1000+perCall-1)/perCall {
		t.Fatalf("%d calls, largest %d inputs of %d bytes; want calls of at most %d", st.Calls, st.LargestCall, len(in[0].Text), perCall)
	}
}
