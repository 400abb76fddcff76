package gctune

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestLimit(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name         string
		budget, live uint64
		want         int64
	}{
		{"idle: the budget", 128 * mib, 0, 128 * mib},
		{"small live heap: the budget", 128 * mib, 10 * mib, 128 * mib},
		{"half the budget live: the budget", 128 * mib, 64 * mib, 128 * mib},
		{"just past half: twice the live heap", 128 * mib, 64*mib + 1, 128*mib + 2},
		{"storm: twice the live heap, as GOGC=100", 128 * mib, 300 * mib, 600 * mib},
		{"zero budget: always twice the live heap", 0, 5 * mib, 10 * mib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Limit(c.budget, c.live); got != c.want {
				t.Errorf("Limit(%d, %d) = %d, want %d", c.budget, c.live, got, c.want)
			}
		})
	}
}

func TestApplies(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	if !Applies(env(nil)) {
		t.Error("no GOGC or GOMEMLIMIT set: should apply")
	}
	if Applies(env(map[string]string{"GOGC": "100"})) {
		t.Error("GOGC set: should leave the collector alone")
	}
	if Applies(env(map[string]string{"GOMEMLIMIT": "1GiB"})) {
		t.Error("GOMEMLIMIT set: should leave the collector alone")
	}
}

// TestRunFollowsTheLiveHeap holds a live heap larger than half the budget and
// checks that the limit moves above it, then that Run puts the defaults back.
func TestRunFollowsTheLiveHeap(t *testing.T) {
	const budget = 8 << 20
	before := debug.SetMemoryLimit(-1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, budget, time.Millisecond) }()

	held := make([][]byte, 0, 64)
	for range 64 {
		held = append(held, make([]byte, 256<<10)) // 16 MiB live in all
	}
	poll.UntilSaw(t, fmt.Sprintf("a memory limit of at least %d with 16 MiB live", 2*16<<20), func() (bool, string) {
		runtime.GC()
		lim := debug.SetMemoryLimit(-1)
		return lim >= 2*16<<20, fmt.Sprintf("memory limit %d", lim)
	})
	if p := debug.SetGCPercent(Percent); p != Percent {
		t.Errorf("GOGC while running = %d, want %d", p, Percent)
	}
	runtime.KeepAlive(held)
	cancel()
	<-done
	if lim := debug.SetMemoryLimit(-1); lim != before {
		t.Errorf("memory limit after Run = %d, want the old %d", lim, before)
	}
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after Run = %d, want the old 100", p)
	}
}
