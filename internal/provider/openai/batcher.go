package openai

import (
	"context"
	"sync"
	"time"

	"github.com/ragops/rag-operator/internal/provider"
)

// batchKey separates inputs that cannot share an upstream call.
type batchKey struct {
	dims   int
	user   string
	tokens bool // token-id inputs and texts cannot mix in one call
}

type result struct {
	vectors [][]float32
	tokens  int
	err     error
}

// member is one request's chunk inside a batch.
type member struct {
	off, n int
	done   chan result // buffered: the batch never blocks on a member that left
}

type callFunc func(ctx context.Context, key batchKey, inputs []provider.Input) ([][]float32, int, error)

// batcher coalesces chunks of concurrent requests into upstream calls of at most
// max inputs. A chunk goes out at once when no upstream call is in flight (so a
// lone client pays no linger); otherwise it waits for company, or until the
// batch is full. The wait is a share of the recent call latency, at most
// ceiling (see linger.go). Results go back to each member by offset.
type batcher struct {
	max     int
	ceiling time.Duration // <0: never wait
	call    callFunc

	mu       sync.Mutex
	pending  map[batchKey]*batch
	inFlight int
	latency  time.Duration // smoothed latency of successful calls; 0 until one ends
}

type batch struct {
	key      batchKey
	inputs   []provider.Input
	members  []*member
	ctxs     []context.Context
	deadline time.Time
	timer    *time.Timer
}

func newBatcher(max int, ceiling time.Duration, call callFunc) *batcher {
	return &batcher{max: max, ceiling: ceiling, call: call, pending: map[batchKey]*batch{}}
}

// submit adds inputs (at most max) to a batch and returns the member whose done
// channel receives their vectors. When the member's batch goes out at once with
// this member alone in it and inline is set, submit also returns that batch
// for the caller to run in its own goroutine (b.run), which saves a goroutine
// and a wake-up per call. Alone, because the caller must be free to leave when
// its own request ends while others' requests keep a shared call going.
func (b *batcher) submit(ctx context.Context, key batchKey, inputs []provider.Input, inline bool) (*member, *batch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt := b.pending[key]
	if bt != nil && len(bt.inputs)+len(inputs) > b.max {
		go b.run(b.flushLocked(bt))
		bt = nil
	}
	if bt == nil {
		bt = &batch{key: key}
		b.pending[key] = bt
	}
	m := &member{off: len(bt.inputs), n: len(inputs), done: make(chan result, 1)}
	bt.inputs = append(bt.inputs, inputs...)
	bt.members = append(bt.members, m)
	bt.ctxs = append(bt.ctxs, ctx)
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(time.Hour)
	}
	if dl.After(bt.deadline) {
		bt.deadline = dl
	}
	switch {
	case len(bt.inputs) >= b.max || b.ceiling < 0 || b.inFlight == 0:
		b.flushLocked(bt)
		if inline && len(bt.members) == 1 {
			return m, bt
		}
		go b.run(bt)
	case bt.timer == nil:
		// The timer's own goroutine makes the call.
		bt.timer = time.AfterFunc(lingerFor(b.latency, b.ceiling), func() {
			b.mu.Lock()
			flush := b.pending[key] == bt
			if flush {
				b.flushLocked(bt)
			}
			b.mu.Unlock()
			if flush {
				b.run(bt)
			}
		})
	}
	return m, nil
}

// flushLocked takes bt out of the pending batches; the caller runs it.
func (b *batcher) flushLocked(bt *batch) *batch {
	delete(b.pending, bt.key)
	if bt.timer != nil {
		bt.timer.Stop()
	}
	b.inFlight++
	return bt
}

// run makes the upstream call. Its context lasts until the latest member's
// deadline, and is cancelled early once every member has gone (client left or
// its own deadline passed), so abandoned work stops.
func (b *batcher) run(bt *batch) {
	start := time.Now()
	var failed bool
	defer func() {
		b.mu.Lock()
		b.inFlight--
		if !failed {
			b.latency = smoothLatency(b.latency, time.Since(start))
		}
		b.mu.Unlock()
	}()
	ctx, cancel := context.WithDeadline(context.Background(), bt.deadline)
	defer cancel()
	var mu sync.Mutex
	left := len(bt.ctxs)
	for _, mctx := range bt.ctxs {
		stop := context.AfterFunc(mctx, func() {
			mu.Lock()
			left--
			if left == 0 {
				cancel()
			}
			mu.Unlock()
		})
		defer stop()
	}
	vecs, tokens, err := b.call(ctx, bt.key, bt.inputs)
	failed = err != nil // a timeout or an error says nothing of the usual latency
	total := len(bt.inputs)
	for _, m := range bt.members {
		if err != nil {
			m.done <- result{err: err}
			continue
		}
		// Usage is per call; each member gets its share by input count.
		m.done <- result{vectors: vecs[m.off : m.off+m.n : m.off+m.n], tokens: tokens * m.n / total}
	}
}
