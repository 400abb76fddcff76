// Package poll waits in tests for something that should happen, with one
// budget for the whole project: a test that waits longer than Budget for a
// thing to happen has found a bug, not a slow machine.
package poll

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Budget is how long any test waits for something that should happen.
const Budget = 30 * time.Second

// Interval is how often Until looks again.
const Interval = 20 * time.Millisecond

// Until returns once cond holds, and fails t (naming what it waited for) when
// it still does not after Budget.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	UntilSaw(t, what, func() (bool, string) { return cond(), "" })
}

// UntilSaw is Until for a condition whose last state explains a failure: cond
// says whether it holds and what it saw, and the failure quotes the last of it.
func UntilSaw(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	untilSaw(t, Budget, what, cond)
}

func untilSaw(t testing.TB, budget time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if saw == "" {
				t.Fatalf("waited %s for %s", budget, what)
			}
			t.Fatalf("waited %s for %s; last saw: %s", budget, what, saw)
		}
		time.Sleep(Interval)
	}
}

// UntilStatus returns once a GET of url answers code (200 for a server that
// came up, 503 for one that started draining), and fails t after Budget.
// Each GET has a second: a server that accepts and never answers must not
// hold the poll past its budget.
func UntilStatus(t testing.TB, url string, code int) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	Until(t, fmt.Sprintf("GET %s to answer %d", url, code), func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == code
	})
}
