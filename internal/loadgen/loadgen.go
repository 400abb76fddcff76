// Package loadgen sends embedding load and says what came back. Run drives an
// embeddings endpoint at fixed concurrency levels (ragload's matrix) and
// classifies every answer the way a team validating a deployment needs: ok,
// shed (429/503), errors, timeouts (504) and "hung" — no answer within the
// server's deadline plus a margin, the failure this project exists to prevent.
// Endpoints follows a Service's ready EndpointSlices, so load can go straight
// to its pods (split by pod and track) as they come and go; StartLoad keeps a
// steady rate on them (the end-to-end tests and the demo).
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Config is one level's run.
type Config struct {
	URL         string        // the embeddings URL, e.g. http://127.0.0.1:8080/v1/embeddings
	Targets     Targets       // or where each request goes (a Service's endpoints); URL is then unused
	Concurrency int           // clients sending back to back
	Duration    time.Duration // run this long (used when Requests is 0)
	Requests    int           // or send exactly this many in total
	Deadline    time.Duration // the server's request deadline
	Margin      time.Duration // extra wait before a request counts as hung
	Body        []byte        // request body
	Header      http.Header   // extra headers
	Client      *http.Client  // nil: one sized for Concurrency
}

// Counts classify requests by what came back.
type Counts struct {
	Requests int
	OK       int
	Shed     int // 429 and 503
	Errors   int // other statuses and transport errors
	Timeouts int // 504
	Hung     int // no answer within Deadline+Margin
}

// count classifies one request: hung, a transport error, or its status.
func (c *Counts) count(status int, hung bool, err error) {
	c.Requests++
	switch {
	case hung:
		c.Hung++
	case err != nil:
		c.Errors++
	case status == http.StatusOK:
		c.OK++
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		c.Shed++
	case status == http.StatusGatewayTimeout:
		c.Timeouts++
	default:
		c.Errors++
	}
}

func (c *Counts) add(o Counts) {
	c.Requests += o.Requests
	c.OK += o.OK
	c.Shed += o.Shed
	c.Errors += o.Errors
	c.Timeouts += o.Timeouts
	c.Hung += o.Hung
}

// Result is what one level saw.
type Result struct {
	Concurrency int
	Counts
	ByStatus   map[int]int
	P50, P99   time.Duration
	Max        time.Duration
	Elapsed    time.Duration
	FirstError string
	// With Config.Targets: the same counts per pod and track, keyed
	// "track/pod" (a pod promoted during the level has a tally for each of
	// its tracks), and how many times a client found no ready endpoint (it
	// waited 100ms, and that request was not sent).
	Pods     map[string]*Tally
	NoTarget int
}

// Tally is what one pod (or, in Tracks, one track) answered.
type Tally struct {
	Pod, Track string
	Counts
	P50, P99  time.Duration
	latencies []time.Duration // of the answered requests; sorted by finish
}

func (t *Tally) finish() {
	slices.Sort(t.latencies)
	t.P50, t.P99 = Percentile(t.latencies, 0.50), Percentile(t.latencies, 0.99)
}

func (t *Tally) merge(o *Tally) {
	t.add(o.Counts)
	t.latencies = append(t.latencies, o.latencies...)
}

// Tracks merges the level's pods by track, sorted by track.
func (r Result) Tracks() []*Tally {
	return merge([]Result{r}, func(t *Tally) string { return t.Track }, func(t *Tally) *Tally { return &Tally{Track: t.Track} })
}

// PodTotals merges the pods of every level, sorted by track then pod.
func PodTotals(results []Result) []*Tally {
	return merge(results, func(t *Tally) string { return t.Track + "/" + t.Pod }, func(t *Tally) *Tally { return &Tally{Pod: t.Pod, Track: t.Track} })
}

func merge(results []Result, key func(*Tally) string, empty func(*Tally) *Tally) []*Tally {
	by := map[string]*Tally{}
	for _, r := range results {
		for _, p := range r.Pods {
			k := key(p)
			if by[k] == nil {
				by[k] = empty(p)
			}
			by[k].merge(p)
		}
	}
	out := make([]*Tally, 0, len(by))
	for _, k := range slices.Sorted(maps.Keys(by)) {
		by[k].finish()
		out = append(out, by[k])
	}
	return out
}

// Throughput is answered requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests-r.Hung) / r.Elapsed.Seconds()
}

// Run runs one level and returns when every request has an outcome. ctx stops
// sending early; requests in progress still get their outcome.
func Run(ctx context.Context, cfg Config) Result {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	client := cfg.Client
	if client == nil {
		tr := &http.Transport{MaxIdleConns: cfg.Concurrency, MaxIdleConnsPerHost: cfg.Concurrency, IdleConnTimeout: 30 * time.Second}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	res := Result{Concurrency: cfg.Concurrency, ByStatus: map[int]int{}}
	if cfg.Targets != nil {
		res.Pods = map[string]*Tally{}
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		sent      atomic.Int64
		wg        sync.WaitGroup
	)
	start := time.Now()
	stopAt := start.Add(cfg.Duration)
	more := func() bool {
		if ctx.Err() != nil {
			return false
		}
		if cfg.Requests > 0 {
			return sent.Add(1) <= int64(cfg.Requests)
		}
		return time.Now().Before(stopAt)
	}
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				target := Target{URL: cfg.URL}
				if cfg.Targets != nil {
					t, ok := cfg.Targets.Next()
					if !ok {
						mu.Lock()
						res.NoTarget++
						mu.Unlock()
						select {
						case <-ctx.Done():
						case <-time.After(100 * time.Millisecond):
						}
						continue
					}
					target = t
				}
				status, d, err := one(client, cfg, target.URL)
				hung := errors.Is(err, context.DeadlineExceeded)
				mu.Lock()
				res.count(status, hung, err)
				if err == nil {
					res.ByStatus[status]++
					latencies = append(latencies, d)
				} else if !hung && res.FirstError == "" {
					res.FirstError = err.Error()
				}
				if res.Pods != nil {
					key := target.Pod
					if key == "" {
						key = target.URL
					}
					key = target.Track + "/" + key
					p := res.Pods[key]
					if p == nil {
						p = &Tally{Pod: target.Pod, Track: target.Track}
						res.Pods[key] = p
					}
					p.count(status, hung, err)
					if err == nil {
						p.latencies = append(p.latencies, d)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(latencies)
	res.P50, res.P99 = Percentile(latencies, 0.50), Percentile(latencies, 0.99)
	if len(latencies) > 0 {
		res.Max = latencies[len(latencies)-1]
	}
	for _, p := range res.Pods {
		p.finish()
	}
	return res
}

// one sends a request and waits at most Deadline+Margin for the whole answer.
func one(client *http.Client, cfg Config, url string) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Deadline+cfg.Margin)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(cfg.Body))
	if err != nil {
		return 0, 0, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range cfg.Header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, context.DeadlineExceeded
		}
		return 0, 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		if ctx.Err() != nil {
			return 0, 0, context.DeadlineExceeded
		}
		return 0, 0, fmt.Errorf("reading answer: %w", err)
	}
	return resp.StatusCode, time.Since(start), nil
}

// Percentile of sorted durations (nearest rank); 0 when empty.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted)) + 0.999999)
	return sorted[min(max(i-1, 0), len(sorted)-1)]
}

// Print writes one line per level.
func Print(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\trequests\tok\tshed\terrors\ttimeouts\thung\tp50\tp99\tmax\treq/s\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%.1f\t\n", r.Concurrency, r.Requests, r.OK, r.Shed, r.Errors, r.Timeouts, r.Hung,
			round(r.P50), round(r.P99), round(r.Max), r.Throughput())
	}
	_ = tw.Flush()
}

// PrintTracks writes, per level, one line per track of the pods that answered.
func PrintTracks(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\ttrack\trequests\tok\tshed\terrors\ttimeouts\thung\tp50\tp99\t")
	for _, r := range results {
		for _, t := range r.Tracks() {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", r.Concurrency, t.Track, t.Requests, t.OK, t.Shed, t.Errors, t.Timeouts, t.Hung,
				round(t.P50), round(t.P99))
		}
	}
	_ = tw.Flush()
}

// PrintPods writes one line per pod over all levels; ready says whether the
// pod is still a ready endpoint (a pod that went says "gone").
func PrintPods(w io.Writer, results []Result, ready func(pod string) bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pod\ttrack\tendpoint\trequests\tok\tshed\terrors\ttimeouts\thung\tp50\tp99\t")
	for _, p := range PodTotals(results) {
		state := "gone"
		if ready(p.Pod) {
			state = "ready"
		}
		pod := p.Pod
		if pod == "" {
			pod = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", pod, p.Track, state, p.Requests, p.OK, p.Shed, p.Errors, p.Timeouts, p.Hung,
			round(p.P50), round(p.P99))
	}
	_ = tw.Flush()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
