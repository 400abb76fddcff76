// Package loadgen drives an embeddings endpoint at fixed concurrency levels and
// classifies every answer the way a team validating a deployment needs: ok, shed
// (429/503), errors, timeouts (504) and "hung" — no answer within the server's
// deadline plus a margin, the failure this project exists to prevent.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	Concurrency int           // clients sending back to back
	Duration    time.Duration // run this long (used when Requests is 0)
	Requests    int           // or send exactly this many in total
	Deadline    time.Duration // the server's request deadline
	Margin      time.Duration // extra wait before a request counts as hung
	Body        []byte        // request body
	Header      http.Header   // extra headers
	Client      *http.Client  // nil: one sized for Concurrency
}

// Result is what one level saw.
type Result struct {
	Concurrency int
	Requests    int
	OK          int
	Shed        int // 429 and 503
	Errors      int // other statuses and transport errors
	Timeouts    int // 504
	Hung        int // no answer within Deadline+Margin
	ByStatus    map[int]int
	P50, P99    time.Duration
	Max         time.Duration
	Elapsed     time.Duration
	FirstError  string
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
				status, d, err := one(client, cfg)
				mu.Lock()
				res.Requests++
				switch {
				case errors.Is(err, context.DeadlineExceeded):
					res.Hung++
				case err != nil:
					res.Errors++
					if res.FirstError == "" {
						res.FirstError = err.Error()
					}
				default:
					res.ByStatus[status]++
					switch status {
					case http.StatusOK:
						res.OK++
					case http.StatusTooManyRequests, http.StatusServiceUnavailable:
						res.Shed++
					case http.StatusGatewayTimeout:
						res.Timeouts++
					default:
						res.Errors++
					}
				}
				if err == nil {
					latencies = append(latencies, d)
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
	return res
}

// one sends a request and waits at most Deadline+Margin for the whole answer.
func one(client *http.Client, cfg Config) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Deadline+cfg.Margin)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(cfg.Body))
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

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
