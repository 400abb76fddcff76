package openai

import (
	"context"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestLingerFor(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name            string
		recent, ceiling time.Duration
		want            time.Duration
	}{
		{"nothing measured yet: the ceiling", 0, 2 * ms, 2 * ms},
		{"benchmark upstream, 20 ms", 20 * ms, 2 * ms, 250 * time.Microsecond},
		{"100 ms upstream", 100 * ms, 2 * ms, 1250 * time.Microsecond},
		{"slow upstream: capped by the ceiling", 400 * ms, 2 * ms, 2 * ms},
		{"fast upstream: the floor", 2 * ms, 2 * ms, minLinger},
		{"sub-millisecond upstream: the floor", 300 * time.Microsecond, 2 * ms, minLinger},
		{"ceiling below the floor wins", 20 * ms, 50 * time.Microsecond, 50 * time.Microsecond},
		{"ceiling of 1 ms, 160 ms upstream", 160 * ms, ms, ms},
		{"exactly 80x the floor", 8 * ms, 2 * ms, minLinger},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lingerFor(tt.recent, tt.ceiling); got != tt.want {
				t.Fatalf("lingerFor(%v, %v) = %v, want %v", tt.recent, tt.ceiling, got, tt.want)
			}
		})
	}
}

// A golden sequence: the estimate starts at the first sample, then moves 1/8 of
// the way to each new one, so one slow call cannot swing the linger.
func TestSmoothLatency(t *testing.T) {
	ms := time.Millisecond
	samples := []time.Duration{20 * ms, 20 * ms, 100 * ms, 20 * ms, 20 * ms, 4 * ms}
	want := []time.Duration{20 * ms, 20 * ms, 30 * ms, 28750 * time.Microsecond, 27656250 * time.Nanosecond, 24699219 * time.Nanosecond}
	var est time.Duration
	for i, s := range samples {
		est = smoothLatency(est, s)
		if est != want[i] {
			t.Fatalf("after sample %d (%v): estimate %v, want %v", i, s, est, want[i])
		}
	}
}

// The batcher scales its wait by the latency of the calls it made: none yet, the
// ceiling; after calls of at least 40 ms, at least 40ms/80 (the call may take
// longer on a busy machine, never shorter), and failed calls do not count.
func TestBatcherLingerFollowsCallLatency(t *testing.T) {
	fail := false
	b := newBatcher(budget.CallLimits{MaxInputs: 64}, 2*time.Millisecond, func(_ context.Context, _ batchKey, inputs []provider.Input, _ int) ([][]float32, int, error) {
		time.Sleep(40 * time.Millisecond)
		if fail {
			return nil, 0, context.DeadlineExceeded
		}
		return make([][]float32, len(inputs)), 0, nil
	}, budget.New(budget.Share{}, time.Now()), nil)
	linger := func() time.Duration { // what a batch opened now would wait
		b.mu.Lock()
		defer b.mu.Unlock()
		return lingerFor(b.latency, b.ceiling)
	}
	if got := linger(); got != 2*time.Millisecond {
		t.Fatalf("before any call: linger %v, want the ceiling", got)
	}
	one := func() {
		m, _, _ := b.submit(context.Background(), batchKey{}, []provider.Input{{Text: "x"}}, 1, false)
		<-m.done
		// run updates the estimate after delivering; wait for it to finish.
		poll.Until(t, "the batcher's call to finish", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.inFlight == 0
		})
	}
	one()
	after := linger()
	if after < 500*time.Microsecond || after > 2*time.Millisecond {
		t.Fatalf("after a 40 ms call: linger %v, want between 500µs and the 2ms ceiling", after)
	}
	b.mu.Lock()
	est := b.latency
	b.mu.Unlock()
	fail = true
	one()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.latency != est {
		t.Fatalf("a failed call moved the estimate from %v to %v", est, b.latency)
	}
}

// A call shared by several requests is never run in one of their goroutines,
// so each can leave when its own request ends, even the one whose chunk filled
// the batch and sent it.
func TestSharedCallDoesNotHoldALeavingRequest(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	b := newBatcher(budget.CallLimits{MaxInputs: 2}, time.Hour, func(ctx context.Context, _ batchKey, inputs []provider.Input, _ int) ([][]float32, int, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		return make([][]float32, len(inputs)), 0, nil
	}, budget.New(budget.Share{}, time.Now()), nil)
	// A call in flight, so the next chunk waits for company.
	if _, run, _ := b.submit(context.Background(), batchKey{user: "other"}, []provider.Input{{Text: "x"}}, 1, false); run != nil {
		t.Fatal("a chunk submitted without inline was handed back to run")
	}
	if _, run, _ := b.submit(context.Background(), batchKey{}, []provider.Input{{Text: "a"}}, 1, true); run != nil {
		t.Fatal("a chunk that waits for company was handed back to run")
	}
	// This chunk fills the batch, which goes out at once with two members.
	if _, run, _ := b.submit(context.Background(), batchKey{}, []provider.Input{{Text: "b"}}, 1, true); run != nil {
		t.Fatal("a shared call was handed to one of its requests to run")
	}
}
