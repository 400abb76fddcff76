// Package podload puts embedding load on a RAGService the way a client without
// kube-proxy must: it resolves the Service's EndpointSlices to ready pod IPs
// (again every Refresh, so canary pods get their share as they become ready),
// sends POST /v1/embeddings round-robin over them, and records every answer by
// the track of the pod that gave it (rag.ragops.io/track), so a test can say
// "the stable track never failed" and a demo can print what the users saw.
package podload

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
)

// Outcomes of one request.
const (
	OK       = "ok"       // 200
	Shed     = "shed"     // 429, or 503 with Retry-After (queue timeout, draining)
	Error    = "error"    // any other status: 5xx, 503 without Retry-After, 4xx
	Drain    = "drain"    // connection error to a pod that was being deleted (or was gone) right after
	ConnFail = "connfail" // connection error to a pod that was not being deleted
)

// Config says where and how hard to send.
type Config struct {
	Client      client.Reader // reads EndpointSlices and Pods
	Namespace   string
	Service     string        // the RAGService's Service: both tracks
	Concurrency int           // workers sending at once
	Rate        float64       // requests per second over all workers; 0: back to back
	Refresh     time.Duration // how often endpoints are resolved again; default 250ms
	Timeout     time.Duration // per request; default 15s
	Body        []byte        // default: one short input
}

// Failure is one request that did not end in OK or Shed.
type Failure struct {
	Time    time.Time
	Pod     string
	Track   string
	Outcome string
	Detail  string // status and body, or the transport error
}

// Stats are the outcomes so far.
type Stats struct {
	Counts   map[string]map[string]int // track -> outcome -> count
	Codes    map[string]map[int]int    // track -> HTTP status -> count
	Failures []Failure                 // the first 20 per track that were not OK/Shed
	NoTarget int                       // times a worker found no ready endpoint
}

// Total is the number of requests with an outcome on track ("" = all tracks).
func (s Stats) Total(track string) int {
	n := 0
	for t, m := range s.Counts {
		if track == "" || t == track {
			for _, c := range m {
				n += c
			}
		}
	}
	return n
}

// Count is the number of requests of track ("" = all) with outcome.
func (s Stats) Count(track, outcome string) int {
	n := 0
	for t, m := range s.Counts {
		if track == "" || t == track {
			n += m[outcome]
		}
	}
	return n
}

// Print writes a table: one row per track with its outcomes and status codes.
func (s Stats) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACK\tREQUESTS\tOK\tSHED\tERRORS\tCONN-ERR(DRAIN)\tCONN-ERR(OTHER)\tSTATUS CODES")
	tracks := make([]string, 0, len(s.Counts))
	for t := range s.Counts {
		tracks = append(tracks, t)
	}
	sort.Strings(tracks)
	for _, t := range tracks {
		m := s.Counts[t]
		codes := make([]int, 0, len(s.Codes[t]))
		for c := range s.Codes[t] {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		var cs []string
		for _, c := range codes {
			cs = append(cs, fmt.Sprintf("%d:%d", c, s.Codes[t][c]))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", t, s.Total(t), m[OK], m[Shed], m[Error], m[Drain], m[ConnFail], strings.Join(cs, " "))
	}
	_ = tw.Flush()
}

type target struct {
	url, pod, track string
}

// Load is a running load generator.
type Load struct {
	cfg    Config
	client *http.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	targets atomic.Pointer[[]target]
	next    atomic.Uint64
	tracks  map[string]string // pod -> track; kept, so a pod that is gone still has its track

	mu    sync.Mutex
	stats Stats
}

// Start resolves the endpoints once and starts the workers; they run until ctx
// ends or Stop is called.
func Start(ctx context.Context, cfg Config) (*Load, error) {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = 250 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.Body == nil {
		cfg.Body = []byte(`{"input":["How do I roll out a new embedding model safely?"]}`)
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cfg: cfg, cancel: cancel,
		client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.Concurrency, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}},
		tracks: map[string]string{},
		stats:  Stats{Counts: map[string]map[string]int{}, Codes: map[string]map[int]int{}}}
	if err := l.resolve(ctx); err != nil {
		cancel()
		return nil, err
	}
	l.wg.Add(1)
	go l.refresher(ctx)

	var tokens <-chan time.Time
	if cfg.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
		l.wg.Add(1)
		go func() { defer l.wg.Done(); <-ctx.Done(); t.Stop() }()
		tokens = t.C
	}
	for range cfg.Concurrency {
		l.wg.Add(1)
		go l.worker(ctx, tokens)
	}
	return l, nil
}

// Stop stops sending, waits for requests in flight and returns the totals.
func (l *Load) Stop() Stats {
	l.cancel()
	l.wg.Wait()
	l.client.CloseIdleConnections()
	return l.Snapshot()
}

// Snapshot returns a copy of the stats so far.
func (l *Load) Snapshot() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Stats{Counts: map[string]map[string]int{}, Codes: map[string]map[int]int{}, NoTarget: l.stats.NoTarget,
		Failures: slices.Clone(l.stats.Failures)}
	for t, m := range l.stats.Counts {
		s.Counts[t] = map[string]int{}
		for k, v := range m {
			s.Counts[t][k] = v
		}
	}
	for t, m := range l.stats.Codes {
		s.Codes[t] = map[int]int{}
		for k, v := range m {
			s.Codes[t][k] = v
		}
	}
	return s
}

func (l *Load) refresher(ctx context.Context) {
	defer l.wg.Done()
	t := time.NewTicker(l.cfg.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = l.resolve(ctx) // keep the last good list on an API error
		}
	}
}

// resolve lists the Service's EndpointSlices and keeps the ready endpoints, with
// the track of each endpoint's pod.
func (l *Load) resolve(ctx context.Context) error {
	var slices discoveryv1.EndpointSliceList
	if err := l.cfg.Client.List(ctx, &slices, client.InNamespace(l.cfg.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: l.cfg.Service}); err != nil {
		return fmt.Errorf("listing EndpointSlices of %s/%s: %w", l.cfg.Namespace, l.cfg.Service, err)
	}
	var pods corev1.PodList
	if err := l.cfg.Client.List(ctx, &pods, client.InNamespace(l.cfg.Namespace)); err != nil {
		return fmt.Errorf("listing pods in %s: %w", l.cfg.Namespace, err)
	}
	track := l.tracks // only the refresher (and Start before it) touches it
	for _, p := range pods.Items {
		if t := p.Labels[ragv1.LabelTrack]; t != "" {
			track[p.Name] = t
		}
	}
	var ts []target
	for _, s := range slices.Items {
		port := int32(0)
		for _, p := range s.Ports {
			if p.Port != nil && (port == 0 || (p.Name != nil && *p.Name == "http")) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			// Ready nil means ready (the API's rule); terminating endpoints are not ready.
			if (e.Conditions.Ready != nil && !*e.Conditions.Ready) || len(e.Addresses) == 0 {
				continue
			}
			pod, tr := "", "unknown"
			if e.TargetRef != nil {
				pod = e.TargetRef.Name
				if t, ok := track[pod]; ok && t != "" {
					tr = t
				}
			}
			ts = append(ts, target{url: fmt.Sprintf("http://%s/v1/embeddings", net.JoinHostPort(e.Addresses[0], fmt.Sprint(port))), pod: pod, track: tr})
		}
	}
	l.targets.Store(&ts)
	return nil
}

func (l *Load) worker(ctx context.Context, tokens <-chan time.Time) {
	defer l.wg.Done()
	for {
		if tokens != nil {
			select {
			case <-ctx.Done():
				return
			case <-tokens:
			}
		} else if ctx.Err() != nil {
			return
		}
		ts := *l.targets.Load()
		if len(ts) == 0 {
			l.mu.Lock()
			l.stats.NoTarget++
			l.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		l.one(ts[l.next.Add(1)%uint64(len(ts))])
	}
}

// one sends a request (not bound to the load's context: a request in flight
// when the load stops still gets its answer) and records its outcome.
func (l *Load) one(t target) {
	req, _ := http.NewRequest(http.MethodPost, t.url, bytes.NewReader(l.cfg.Body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	var (
		outcome, detail string
		code            int
	)
	switch {
	case err != nil:
		outcome, detail = ConnFail, err.Error()
		if l.deleting(t.pod) {
			outcome = Drain
		}
	default:
		code = resp.StatusCode
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		switch {
		case code == http.StatusOK:
			outcome = OK
		case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			outcome = Shed
		default:
			outcome, detail = Error, fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stats.Counts[t.track] == nil {
		l.stats.Counts[t.track] = map[string]int{}
		l.stats.Codes[t.track] = map[int]int{}
	}
	l.stats.Counts[t.track][outcome]++
	if code != 0 {
		l.stats.Codes[t.track][code]++
	}
	kept := 0
	for _, f := range l.stats.Failures {
		if f.Track == t.track {
			kept++
		}
	}
	if outcome != OK && outcome != Shed && kept < 20 {
		l.stats.Failures = append(l.stats.Failures, Failure{Time: time.Now(), Pod: t.pod, Track: t.track, Outcome: outcome, Detail: detail})
	}
}

// deleting says whether pod is being deleted or already gone: a refused or
// reset connection to it is the end of its drain, not a failure of a live pod.
func (l *Load) deleting(pod string) bool {
	if pod == "" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var p corev1.Pod
	err := l.cfg.Client.Get(ctx, client.ObjectKey{Namespace: l.cfg.Namespace, Name: pod}, &p)
	if apierrors.IsNotFound(err) {
		return true
	}
	return err == nil && p.DeletionTimestamp != nil
}
