package limiter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errQueueTimeout = errors.New("queue timeout")

// acquireAsync starts an Acquire and returns a channel with its outcome. It waits
// until the caller is queued (or has its answer) so order is deterministic.
func acquireAsync(t *testing.T, ctx context.Context, l *Limiter, wantDepth int) <-chan result {
	t.Helper()
	ch := make(chan result, 1)
	go func() {
		rel, err := l.Acquire(ctx)
		ch <- result{rel, err}
	}()
	poll.Until(t, fmt.Sprintf("queue depth %d", wantDepth), func() bool { return l.QueueDepth() == wantDepth })
	return ch
}

type result struct {
	release func()
	err     error
}

func TestAdmission(t *testing.T) {
	tests := []struct {
		name              string
		maxIn, maxQ       int
		held              int // immediate acquisitions that must succeed
		wantQueueFullNext bool
	}{
		{"slots free", 2, 0, 1, false},
		{"no queue, full", 2, 0, 2, true},
		{"zero in-flight is one", 0, 0, 1, true},
		{"negative queue is zero", 1, -5, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.maxIn, tt.maxQ)
			var rels []func()
			for i := 0; i < tt.held; i++ {
				rel, err := l.Acquire(context.Background())
				if err != nil {
					t.Fatalf("acquire %d: %v", i, err)
				}
				rels = append(rels, rel)
			}
			if got := l.InFlight(); got != tt.held {
				t.Fatalf("in flight %d, want %d", got, tt.held)
			}
			rel, err := l.Acquire(context.Background())
			if tt.wantQueueFullNext {
				if !errors.Is(err, ErrQueueFull) {
					t.Fatalf("err %v, want ErrQueueFull", err)
				}
			} else {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				rel()
			}
			for _, r := range rels {
				r()
			}
			if got := l.InFlight(); got != 0 {
				t.Fatalf("in flight after release %d", got)
			}
		})
	}
}

func TestFIFOOrderAndQueueBound(t *testing.T) {
	l := New(1, 2)
	first, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := acquireAsync(t, context.Background(), l, 1)
	b := acquireAsync(t, context.Background(), l, 2)
	if !l.Full() {
		t.Fatal("Full() false with every slot and queue place taken")
	}
	if _, err := l.Acquire(context.Background()); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third waiter: %v, want ErrQueueFull", err)
	}
	first()
	if l.Full() {
		t.Fatal("Full() true with a queue place free")
	}
	ra := <-a
	if ra.err != nil {
		t.Fatalf("a: %v", ra.err)
	}
	select {
	case <-b:
		t.Fatal("b admitted before a released")
	case <-time.After(20 * time.Millisecond):
	}
	ra.release()
	ra.release() // idempotent: must not free a second slot
	rb := <-b
	if rb.err != nil {
		t.Fatalf("b: %v", rb.err)
	}
	if l.InFlight() != 1 || l.QueueDepth() != 0 {
		t.Fatalf("in flight %d queue %d", l.InFlight(), l.QueueDepth())
	}
	rb.release()
	if l.InFlight() != 0 {
		t.Fatalf("in flight %d after all released", l.InFlight())
	}
}

func TestWaitEndsWithCause(t *testing.T) {
	tests := []struct {
		name  string
		end   func(cancel context.CancelCauseFunc)
		wantE error
	}{
		{"queue timeout", func(c context.CancelCauseFunc) { c(errQueueTimeout) }, errQueueTimeout},
		{"client gone", func(c context.CancelCauseFunc) { c(context.Canceled) }, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(1, 1)
			hold, _ := l.Acquire(context.Background())
			ctx, cancel := context.WithCancelCause(context.Background())
			ch := acquireAsync(t, ctx, l, 1)
			tt.end(cancel)
			r := <-ch
			if !errors.Is(r.err, tt.wantE) {
				t.Fatalf("err %v, want %v", r.err, tt.wantE)
			}
			// The waiter left the queue at once: the slot goes to nobody.
			if l.QueueDepth() != 0 {
				t.Fatalf("queue depth %d", l.QueueDepth())
			}
			hold()
			if l.InFlight() != 0 {
				t.Fatalf("in flight %d", l.InFlight())
			}
		})
	}
}

func TestAlreadyEndedContextNeverQueues(t *testing.T) {
	l := New(1, 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errQueueTimeout)
	if _, err := l.Acquire(ctx); !errors.Is(err, errQueueTimeout) {
		t.Fatalf("err %v", err)
	}
	if l.InFlight() != 0 {
		t.Fatal("slot taken by an ended context")
	}
}

// Many callers racing grants against cancellations must never leak or double a slot.
func TestNoSlotLeakUnderRace(t *testing.T) {
	const maxIn = 3
	l := New(maxIn, 10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	running, peak := 0, 0
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*100*time.Microsecond)
			defer cancel()
			rel, err := l.Acquire(ctx)
			if err != nil {
				return
			}
			defer rel()
			mu.Lock()
			running++
			if running > peak {
				peak = running
			}
			mu.Unlock()
			time.Sleep(50 * time.Microsecond)
			mu.Lock()
			running--
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	if peak > maxIn {
		t.Fatalf("peak concurrency %d > %d", peak, maxIn)
	}
	if l.InFlight() != 0 || l.QueueDepth() != 0 {
		t.Fatalf("leak: in flight %d queue %d", l.InFlight(), l.QueueDepth())
	}
	// All slots are usable again.
	for i := 0; i < maxIn; i++ {
		if _, err := l.Acquire(context.Background()); err != nil {
			t.Fatalf("slot %d lost: %v", i, err)
		}
	}
}

// TryAcquire takes only a free slot, never a queued caller's turn, and never
// waits; its release is idempotent like Acquire's.
func TestTryAcquire(t *testing.T) {
	l := New(1, 1)
	rel, ok := l.TryAcquire()
	if !ok || l.InFlight() != 1 {
		t.Fatalf("free slot not taken: ok=%v in flight %d", ok, l.InFlight())
	}
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("took a slot while every slot is held")
	}
	waiter := acquireAsync(t, context.Background(), l, 1)
	if _, ok := l.TryAcquire(); ok {
		t.Fatal("took a slot while a caller is queued")
	}
	rel()
	rel() // idempotent: must not free the slot the waiter now holds
	w := <-waiter
	if w.err != nil {
		t.Fatalf("queued caller: %v", w.err)
	}
	if _, ok := l.TryAcquire(); ok || l.InFlight() != 1 {
		t.Fatalf("slot handed to the waiter was taken again (in flight %d)", l.InFlight())
	}
	w.release()
	if rel, ok := l.TryAcquire(); !ok {
		t.Fatal("free slot not taken after every release")
	} else {
		rel()
	}
	if l.InFlight() != 0 || l.QueueDepth() != 0 {
		t.Fatalf("in flight %d, queued %d after all releases", l.InFlight(), l.QueueDepth())
	}
}

// Concurrent reservations never pass the bound together, and every byte comes
// back.
func TestBytesUnderRace(t *testing.T) {
	b := NewBytes(1000)
	var wg sync.WaitGroup
	var over atomic.Bool
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				n := int64(1 + (g*31+i)%300)
				if !b.TryReserve(n) {
					continue
				}
				if b.Used() > b.Max() {
					over.Store(true)
				}
				b.Release(n)
			}
		}()
	}
	wg.Wait()
	if over.Load() || b.Used() != 0 {
		t.Fatalf("over the bound %v, %d bytes still reserved", over.Load(), b.Used())
	}
	if !b.TryReserve(1000) || b.TryReserve(1) {
		t.Fatal("the whole budget must fit once, and nothing more beside it")
	}
	if b.TryReserve(1001) {
		t.Fatal("more than the budget was granted")
	}
}
