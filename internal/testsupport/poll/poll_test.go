package poll

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that records a Fatalf instead of ending the test.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	panic(r) // Fatalf does not return; stop the poll here
}

func fatalOf(r *recorder, f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil && p != any(r) {
			panic(p)
		}
		msg = r.msg
	}()
	f()
	return ""
}

// A condition that comes true ends the wait at once, without failing.
func TestUntilSawReturnsWhenTheConditionHolds(t *testing.T) {
	r := &recorder{TB: t}
	calls := 0
	if msg := fatalOf(r, func() {
		UntilSaw(r, "the third look", func() (bool, string) { calls++; return calls == 3, fmt.Sprint(calls) })
	}); msg != "" || calls != 3 {
		t.Fatalf("failed with %q after %d looks; want no failure after 3", msg, calls)
	}
}

// A condition that stays false fails after the budget, naming what was
// awaited and quoting the last state seen.
func TestUntilSawFailsNamingTheLastState(t *testing.T) {
	r := &recorder{TB: t}
	calls := 0
	msg := fatalOf(r, func() {
		untilSaw(r, 50*time.Millisecond, "a pod to be ready", func() (bool, string) { calls++; return false, fmt.Sprintf("%d not ready", calls) })
	})
	if !strings.HasPrefix(msg, "waited 50ms for a pod to be ready; last saw: ") || !strings.HasSuffix(msg, fmt.Sprintf("; last saw: %d not ready", calls)) || calls < 2 {
		t.Fatalf("failure %q after %d looks; want it to name the wait and quote the last look", msg, calls)
	}
	r.msg = ""
	if msg := fatalOf(r, func() { untilSaw(r, 0, "nothing", func() (bool, string) { return false, "" }) }); msg != "waited 0s for nothing" {
		t.Fatalf("with nothing seen: %q", msg)
	}
}
