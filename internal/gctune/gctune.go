// Package gctune lets the embedding server's garbage collector run less often
// while the heap is small, without letting the heap grow past a budget.
//
// Under load the server allocates an answer, a request and the upstream's
// vectors per request and keeps little alive, so Go's default (collect when
// the heap doubles what is live) runs the collector often: about a tenth of
// the server's CPU at 100 clients. A larger GOGC costs memory in proportion to
// what is live, which an upload storm makes large. So: GOGC 400 under a soft
// memory limit of a fixed budget, and once twice the live heap passes that
// budget the limit follows at twice the live heap, which is where the default
// would have collected. The collector then never runs more often than the
// default does, and the heap never grows past the default's size once the
// budget is spent. The limit moves once per tick, so between ticks a heap that
// has just passed the budget is collected often, never held larger.
package gctune

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Percent is the GOGC used under the budget.
const Percent = 400

// Limit is the soft memory limit for a live heap of live bytes under budget
// bytes: the budget, or twice the live heap once that is larger (Go's default
// GOGC of 100 would let the heap reach it too).
func Limit(budget, live uint64) int64 {
	return int64(max(budget, 2*live))
}

// Applies reports whether the process may tune its collector: not when the
// environment sets GOGC or GOMEMLIMIT, which a person chose.
func Applies(getenv func(string) string) bool {
	return getenv("GOGC") == "" && getenv("GOMEMLIMIT") == ""
}

const liveHeap = "/gc/heap/live:bytes"

// Run sets GOGC to Percent and keeps the memory limit at Limit(budget, live)
// every tick until ctx ends, then puts back Go's defaults.
func Run(ctx context.Context, budget uint64, tick time.Duration) {
	oldPercent := debug.SetGCPercent(Percent)
	oldLimit := debug.SetMemoryLimit(Limit(budget, 0))
	defer func() {
		debug.SetGCPercent(oldPercent)
		debug.SetMemoryLimit(oldLimit)
	}()
	sample := []metrics.Sample{{Name: liveHeap}}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			metrics.Read(sample)
			if sample[0].Value.Kind() == metrics.KindUint64 {
				debug.SetMemoryLimit(Limit(budget, sample[0].Value.Uint64()))
			}
		}
	}
}
