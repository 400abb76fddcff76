package probetraffic

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/probeclient"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestSlice(t *testing.T) {
	for _, c := range []struct {
		perTrack int
		interval time.Duration
		want     []int // requests of rounds 0.. of one interval
		window   time.Duration
	}{
		{10, 30 * time.Second, []int{1, 2, 2, 1, 2, 2}, 5 * time.Second},
		{10, time.Second, []int{10}, time.Second},
		{3, 30 * time.Second, []int{0, 1, 0, 1, 0, 1}, 5 * time.Second},
		{7, 12 * time.Second, []int{2, 2, 3}, 4 * time.Second},
		{0, 30 * time.Second, []int{0, 0, 0, 0, 0, 0}, 5 * time.Second},
	} {
		sum := 0
		for i, want := range c.want {
			w, n := Slice(c.perTrack, c.interval, i)
			if n != want || (c.perTrack > 0 && w != c.window) {
				t.Errorf("Slice(%d, %s, %d) = %s, %d; want %s, %d", c.perTrack, c.interval, i, w, n, c.window, want)
			}
			sum += n
		}
		if sum != c.perTrack {
			t.Errorf("Slice(%d, %s): one interval sends %d, want %d", c.perTrack, c.interval, sum, c.perTrack)
		}
	}
	if w, n := Slice(5, 0, 0); n != 0 || w <= 0 {
		t.Errorf("no interval: %s %d, want a positive wait and nothing sent", w, n)
	}
}

// counter is a pod's API port: it counts the requests it answers.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) server(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.mu.Lock()
		c.n[name]++
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1,0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (c *counter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

// A session sends each track its requests over the interval, to every ready
// pod in turn, follows new targets, restarts for a new revision and ends with
// Stop and with the manager.
func TestRunner(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs last: after the servers close
	c := &counter{n: map[string]int{}}
	s1, s2, k1 := c.server(t, "s1"), c.server(t, "s2"), c.server(t, "k1")
	var mu sync.Mutex
	observed := map[string]int{}
	sliceCount := map[string]int{} // slices observed, by key/track
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	r := &Runner{Traffic: probeclient.Traffic{HTTP: &http.Client{Transport: tr}, Timeout: time.Second}, Observe: func(key, track string, st probeclient.Stats) {
		mu.Lock()
		observed[key+"/"+track] += st.ByStatus[200]
		sliceCount[key+"/"+track]++
		mu.Unlock()
	}}
	// Ensured before the manager starts: runs once it does.
	r.Ensure("search/docs", Plan{Revision: "b", PerTrack: 6, Interval: 600 * time.Millisecond,
		Targets: map[string][]string{"stable": {s1, s2}, "canary": {k1}}, Texts: []string{"one", "two"}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()

	poll.Until(t, "2 intervals: stable's 6 per interval split over both pods, the canary's 6 on its one", func() bool {
		n := c.get()
		return n["s1"] >= 6 && n["s2"] >= 6 && n["k1"] >= 12
	})
	n := c.get()
	if d := n["s1"] - n["s2"]; d < -2 || d > 2 {
		t.Errorf("stable pods got %d and %d: want them even", n["s1"], n["s2"])
	}
	mu.Lock()
	if observed["search/docs/canary"] == 0 || observed["search/docs/stable"] == 0 {
		t.Errorf("observer saw %v", observed)
	}
	mu.Unlock()

	// The canary's pod goes: it gets no more.
	r.Ensure("search/docs", Plan{Revision: "b", PerTrack: 6, Interval: 600 * time.Millisecond,
		Targets: map[string][]string{"stable": {s1, s2}}, Texts: []string{"one"}})
	// Slices are sent one after the other, and a slice reads the plan when it
	// starts: the second stable slice observed from now on started after
	// Ensure, so the canary's last requests have been answered.
	stableSlices := func() int {
		mu.Lock()
		defer mu.Unlock()
		return sliceCount["search/docs/stable"]
	}
	changed := stableSlices()
	poll.Until(t, "the slice under way when the canary's pod went to end", func() bool { return stableSlices() >= changed+2 })
	before := c.get()["k1"]
	poll.Until(t, "one more whole stable slice", func() bool { return stableSlices() >= changed+3 })
	if after := c.get()["k1"]; after != before {
		t.Errorf("a pod no longer ready got %d more requests", after-before)
	}

	r.Stop("search/docs")
	if got := r.Running(); len(got) != 0 {
		t.Errorf("running after Stop: %v", got)
	}
	time.Sleep(200 * time.Millisecond)
	stopped := c.get()
	time.Sleep(700 * time.Millisecond)
	if again := c.get(); again["s1"] != stopped["s1"] || again["s2"] != stopped["s2"] {
		t.Errorf("requests after Stop: %v then %v", stopped, again)
	}

	r.Ensure("search/other", Plan{Revision: "c", PerTrack: 3, Interval: time.Second, Targets: map[string][]string{"stable": {s1}}, Texts: []string{"x"}})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := r.Running(); len(got) != 0 {
		t.Errorf("running after the manager stopped: %v", got)
	}
	// A reconcile that finishes after the manager stopped sends nothing. (A
	// request cut short by the stop may still reach the server a moment later.)
	time.Sleep(200 * time.Millisecond)
	late := c.get()["s1"]
	r.Ensure("search/late", Plan{Revision: "d", PerTrack: 10, Interval: 100 * time.Millisecond, Targets: map[string][]string{"stable": {s1}}, Texts: []string{"x"}})
	time.Sleep(300 * time.Millisecond)
	if after := c.get()["s1"]; after != late {
		t.Errorf("a session started after the manager stopped sent %d requests", after-late)
	}
}
