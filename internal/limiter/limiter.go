// Package limiter is the embedding server's admission control: at most N requests
// run at once, up to M more wait in FIFO order, and the rest are refused at once.
//
// It has no clock of its own: how long a caller may wait is the deadline (or
// cancellation) of the context it passes to Acquire, and the reason that context
// ended (context.Cause) is returned unchanged, so a caller can tell a queue
// timeout from a client that went away.
package limiter

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// ErrQueueFull is returned when every slot is taken and the queue is full.
var ErrQueueFull = errors.New("limiter: queue full")

// Limiter bounds concurrent work and the queue in front of it. The zero value is
// not usable; call New.
type Limiter struct {
	maxInFlight int
	maxQueue    int

	mu       sync.Mutex
	inFlight int
	waiters  list.List // of *waiter, oldest first
}

type waiter struct {
	ready   chan struct{} // closed when the slot is handed to this waiter
	granted bool          // set under mu together with close(ready)
}

// New returns a limiter running at most maxInFlight (at least 1) requests with at
// most maxQueue (at least 0) waiting.
func New(maxInFlight, maxQueue int) *Limiter {
	if maxInFlight < 1 {
		maxInFlight = 1
	}
	if maxQueue < 0 {
		maxQueue = 0
	}
	return &Limiter{maxInFlight: maxInFlight, maxQueue: maxQueue}
}

// Acquire takes a slot, waiting in FIFO order while ctx allows. On success it
// returns a release function that must be called exactly once (use defer); it is
// safe to call more than once. On failure it returns ErrQueueFull or
// context.Cause(ctx), and the caller holds nothing.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.takeLocked() {
		l.mu.Unlock()
		return l.releaser(), nil
	}
	if l.waiters.Len() >= l.maxQueue {
		l.mu.Unlock()
		return nil, ErrQueueFull
	}
	w := &waiter{ready: make(chan struct{})}
	elem := l.waiters.PushBack(w)
	l.mu.Unlock()

	select {
	case <-w.ready:
		return l.releaser(), nil
	case <-ctx.Done():
		l.mu.Lock()
		if w.granted {
			// The slot arrived as the wait ended: pass it on, the caller never runs.
			l.mu.Unlock()
			l.release()
		} else {
			l.waiters.Remove(elem)
			l.mu.Unlock()
		}
		return nil, context.Cause(ctx)
	}
}

// TryAcquire takes a slot only if one is free and nobody is waiting (so it never
// overtakes the queue), and never waits. A caller that would otherwise build a
// deadline just for the wait can skip it when this succeeds.
func (l *Limiter) TryAcquire() (release func(), ok bool) {
	l.mu.Lock()
	ok = l.takeLocked()
	l.mu.Unlock()
	if !ok {
		return nil, false
	}
	return l.releaser(), true
}

// takeLocked takes a free slot when nobody is waiting for one.
func (l *Limiter) takeLocked() bool {
	if l.inFlight < l.maxInFlight && l.waiters.Len() == 0 {
		l.inFlight++
		return true
	}
	return false
}

func (l *Limiter) releaser() func() {
	var once sync.Once
	return func() { once.Do(l.release) }
}

// release hands the slot to the oldest waiter, or frees it.
func (l *Limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if front := l.waiters.Front(); front != nil {
		w := l.waiters.Remove(front).(*waiter)
		w.granted = true
		close(w.ready)
		return
	}
	l.inFlight--
}

// Full reports whether an Acquire now would be refused with ErrQueueFull: every
// slot held and the queue full. Callers use it to shed before doing any work;
// Acquire still decides.
func (l *Limiter) Full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight >= l.maxInFlight && l.waiters.Len() >= l.maxQueue
}

// InFlight is the number of slots held.
func (l *Limiter) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

// QueueDepth is the number of callers waiting.
func (l *Limiter) QueueDepth() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiters.Len()
}

// MaxInFlight and MaxQueue are the configured bounds.
func (l *Limiter) MaxInFlight() int { return l.maxInFlight }

// MaxQueue is the configured queue bound.
func (l *Limiter) MaxQueue() int { return l.maxQueue }
