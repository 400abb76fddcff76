package openai

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/contract"
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
	key    batchKey
	off, n int
	inputs []provider.Input
	tokens int // estimated (budget.EstimateTokens)
	ctx    context.Context
	done   chan result // buffered: the batch never blocks on a member that left
}

type callFunc func(ctx context.Context, key batchKey, inputs []provider.Input, tokens int) ([][]float32, int, error)

// batcher coalesces chunks of concurrent requests into upstream calls of at
// most lim inputs and tokens. It has two ways of sending calls:
//
//   - Unpaced, while the upstream's limits are unknown and it asked for no
//     pause: a chunk goes out at once when no upstream call is in flight (so a
//     lone client pays no linger); otherwise it waits for company, or until
//     the batch is full. The wait is a share of the recent call latency, at
//     most ceiling (see linger.go).
//   - Paced, once a budget binds (declared, learned from the upstream, or a
//     pause it asked for): chunks wait in arrival order for the next call the
//     budget allows, and that call carries as many of them as fit
//     (budget.Fill). A chunk that could not go out before its request's
//     deadline is refused at once with 429 and the time the budget frees up.
//
// Results go back to each member by offset.
type batcher struct {
	lim     budget.CallLimits
	ceiling time.Duration // <0: never wait
	call    callFunc
	budget  *budget.Limiter
	obs     provider.Observer // may be nil

	mu       sync.Mutex
	pending  map[batchKey]*batch
	queue    []*member // paced: waiting for the budget, in arrival order
	wake     *time.Timer
	wakeAt   time.Time
	inFlight int
	latency  time.Duration // smoothed latency of successful calls; 0 until one ends
}

type batch struct {
	key      batchKey
	inputs   []provider.Input
	tokens   int
	members  []*member
	deadline time.Time
	timer    *time.Timer
}

func newBatcher(lim budget.CallLimits, ceiling time.Duration, call callFunc, b *budget.Limiter, obs provider.Observer) *batcher {
	return &batcher{lim: lim, ceiling: ceiling, call: call, budget: b, obs: obs, pending: map[batchKey]*batch{}}
}

// submit adds inputs (already cut to fit one call) to a batch and returns the
// member whose done channel receives their vectors. When the member's batch
// goes out at once with this member alone in it and inline is set, submit
// also returns that batch for the caller to run in its own goroutine (b.run),
// which saves a goroutine and a wake-up per call. Alone, because the caller
// must be free to leave when its own request ends while others' requests keep
// a shared call going. The error is the budget's refusal (see admitLocked).
func (b *batcher) submit(ctx context.Context, key batchKey, inputs []provider.Input, tokens int, inline bool) (*member, *batch, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := &member{key: key, n: len(inputs), inputs: inputs, tokens: tokens, ctx: ctx, done: make(chan result, 1)}
	now := time.Now()
	if len(b.queue) > 0 || b.budget.Bound(now) {
		if err := b.admitLocked(now, m); err != nil {
			return nil, nil, err
		}
		b.queue = append(b.queue, m)
		b.dispatchLocked(now)
		return m, nil, nil
	}
	bt := b.pending[key]
	if bt != nil && !b.lim.Fits(len(bt.inputs)+len(inputs), bt.tokens+tokens) {
		go b.run(b.flushLocked(bt))
		bt = nil
	}
	if bt == nil {
		bt = &batch{key: key}
		b.pending[key] = bt
	}
	bt.add(m)
	switch {
	case !b.lim.Fits(len(bt.inputs)+1, bt.tokens+1) || b.ceiling < 0 || b.inFlight == 0:
		b.flushLocked(bt)
		if inline && len(bt.members) == 1 {
			return m, bt, nil
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
	return m, nil, nil
}

func (bt *batch) add(m *member) {
	m.off = len(bt.inputs)
	bt.inputs = append(bt.inputs, m.inputs...)
	bt.tokens += m.tokens
	bt.members = append(bt.members, m)
	dl, ok := m.ctx.Deadline()
	if !ok {
		dl = time.Now().Add(time.Hour)
	}
	if dl.After(bt.deadline) {
		bt.deadline = dl
	}
}

// admitLocked refuses a chunk the budget cannot send before its request's
// queue deadline (provider.WaitDeadline): waiting longer would only end in a
// 504, while a 429 with the time the budget frees up lets the client come
// back when it can be served.
func (b *batcher) admitLocked(now time.Time, m *member) error {
	dl, ok := provider.WaitDeadline(m.ctx)
	if !ok {
		return nil
	}
	inputs, tokens := m.n, m.tokens
	for _, q := range b.queue {
		inputs += q.n
		tokens += q.tokens
	}
	calls := 1
	if b.lim.MaxInputs > 0 {
		calls = (inputs + b.lim.MaxInputs - 1) / b.lim.MaxInputs
	}
	free := b.budget.FreeAt(now, calls, tokens)
	if !free.Add(b.latency).After(dl) {
		return nil
	}
	wait := free.Sub(now)
	return &provider.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: contract.ShedBudget, RetryAfter: wait,
		Message: fmt.Sprintf("the upstream's budget is spent: the next call this request could join starts in %v, past its deadline", wait.Round(time.Millisecond))}
}

// dispatchLocked sends every call the budget allows now, each filled from the
// queue in order, and sets a timer for the next when the budget says wait.
func (b *batcher) dispatchLocked(now time.Time) {
	b.queue = slices.DeleteFunc(b.queue, func(m *member) bool { return m.ctx.Err() != nil }) // their requests have left
	for len(b.queue) > 0 {
		key := b.queue[0].key
		var pieces []budget.Piece
		var same []int // queue positions of the head's key
		for i, m := range b.queue {
			if m.key == key {
				pieces = append(pieces, budget.Piece{Inputs: m.n, Tokens: m.tokens})
				same = append(same, i)
			}
		}
		take := budget.Fill(pieces, b.lim)
		tokens := 0
		for _, p := range pieces[:take] {
			tokens += p.Tokens
		}
		ok, at := b.budget.TryTake(now, tokens)
		if !ok {
			b.wakeLocked(at)
			return
		}
		bt := &batch{key: key}
		for _, i := range same[:take] {
			bt.add(b.queue[i])
			b.queue[i] = nil
		}
		b.queue = slices.DeleteFunc(b.queue, func(m *member) bool { return m == nil })
		b.inFlight++
		go b.run(bt)
	}
}

// wakeLocked makes sure dispatch runs again at `at`.
func (b *batcher) wakeLocked(at time.Time) {
	if b.wake != nil && !at.Before(b.wakeAt) {
		return
	}
	if b.wake != nil {
		b.wake.Stop()
	}
	b.wakeAt = at
	b.wake = time.AfterFunc(time.Until(at), func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.wake = nil
		b.dispatchLocked(time.Now())
	})
	if bo, ok := b.obs.(provider.BudgetObserver); ok {
		bo.HeldBack(time.Until(at))
	}
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
	left := len(bt.members)
	for _, m := range bt.members {
		stop := context.AfterFunc(m.ctx, func() {
			mu.Lock()
			left--
			if left == 0 {
				cancel()
			}
			mu.Unlock()
		})
		defer stop()
	}
	vecs, tokens, err := b.call(ctx, bt.key, bt.inputs, bt.tokens)
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
