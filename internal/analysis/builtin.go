package analysis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Builtin scrapes /metrics of every ready pod over the admin port and keeps
// the previous sample of each track in memory. The first scrape of a canary
// revision is a baseline and gives no verdict; each later one (at least half
// an interval on) gives the verdict of the time since the previous one. After a
// manager restart the memory is empty and the next scrape is a baseline again,
// which delays a verdict by one interval and never invents one.
type Builtin struct {
	// Client does the scrapes; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds one scrape; zero means 5s.
	Timeout time.Duration
	// Parallel bounds concurrent scrapes; zero means 8.
	Parallel int
	// MaxBytes bounds a /metrics body; zero means 4 MiB.
	MaxBytes int64

	mu   sync.Mutex
	prev map[trackKey]snapshot
}

type trackKey struct{ namespace, name, track string }

type snapshot struct {
	revision string
	time     time.Time
	samples  map[string]Sample
}

var _ Analyzer = (*Builtin)(nil)

// Analyze scrapes the canary and the stable pods at once, so both intervals
// cover the same window, and judges the canary's interval since the previous
// scrape against thresholds and stable's. A canary whose pods all fail to
// answer is an error (the caller makes it Inconclusive); a stable track that
// cannot be read leaves no baseline, which Judge names.
func (b *Builtin) Analyze(ctx context.Context, q Query) (*Result, error) {
	if len(q.Canary) == 0 {
		return nil, nil // nothing serves yet: no data is not a verdict
	}
	cur, errs := b.scrapeAll(ctx, q.Canary)
	if len(cur) == 0 {
		return nil, fmt.Errorf("scrape canary %s pods: %w", q.Revision, errors.Join(errs...))
	}
	canary, ok := b.advance(trackKey{q.Namespace, q.Name, "canary"}, q.Revision, q.Now, IntervalOf(q.Spec), cur)
	t := Tracks{Canary: canary}
	switch st, stErrs := b.scrapeAll(ctx, q.Stable); {
	case len(q.Stable) == 0:
		t.StableProblem = "no ready stable pod"
	case len(st) == 0:
		t.StableProblem = fmt.Sprintf("scrape stable %s pods: %v", q.StableRevision, errors.Join(stErrs...))
	default:
		// Its first reading is taken with the canary's, so both deltas cover
		// the same window.
		if iv, sok := b.advance(trackKey{q.Namespace, q.Name, "stable"}, q.StableRevision, q.Now, IntervalOf(q.Spec), st); sok {
			t.Stable = &iv
		} else {
			t.StableProblem = "first reading of the stable track"
		}
	}
	if !ok {
		return nil, nil
	}
	res := &Result{Canary: canary, Stable: t.Stable, Status: Status(t, q.Spec, q.Revision, q.Now)}
	if len(errs) > 0 {
		res.Status.Message += fmt.Sprintf("; %d of %d canary pods not scraped", len(errs), len(q.Canary))
	}
	return res, nil
}

// Forget drops the memory of a RAGService (deleted, or its canary ended).
func (b *Builtin) Forget(namespace, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.prev {
		if k.namespace == namespace && k.name == name {
			delete(b.prev, k)
		}
	}
}

// advance swaps in the new sample and returns the interval since the previous
// one; false when there was none to compare with (a baseline) or it is younger
// than half the interval (a repeated reconcile must not judge a sliver).
func (b *Builtin) advance(k trackKey, revision string, now time.Time, every time.Duration, cur map[string]Sample) (Interval, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.prev == nil {
		b.prev = map[trackKey]snapshot{}
	}
	prev, ok := b.prev[k]
	if ok && prev.revision == revision && now.Sub(prev.time) < every/2 {
		return Interval{}, false
	}
	b.prev[k] = snapshot{revision: revision, time: now, samples: cur}
	if !ok || prev.revision != revision {
		return Interval{}, false
	}
	return Delta(prev.samples, cur), true
}

func (b *Builtin) scrapeAll(ctx context.Context, targets []Target) (map[string]Sample, []error) {
	parallel := b.Parallel
	if parallel <= 0 {
		parallel = 8
	}
	var (
		mu   sync.Mutex
		out  = map[string]Sample{}
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, parallel)
	)
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := b.scrape(ctx, t)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("pod %s: %w", t.Pod, err))
				return
			}
			out[t.Pod] = s
		}()
	}
	wg.Wait()
	return out, errs
}

func (b *Builtin) scrape(ctx context.Context, t Target) (Sample, error) {
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("build request: %w", err)
	}
	// The text format: the parser here reads exactly that.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	client := b.Client
	if client == nil {
		client = &http.Client{Timeout: timeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("scrape %s: %w", t.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return Sample{}, fmt.Errorf("scrape %s: HTTP %d", t.URL, resp.StatusCode)
	}
	limit := b.MaxBytes
	if limit <= 0 {
		limit = 4 << 20
	}
	s, err := ParseSample(io.LimitReader(resp.Body, limit))
	if err != nil {
		return Sample{}, fmt.Errorf("scrape %s: %w", t.URL, err)
	}
	return s, nil
}
