package loadgen

// A steady load on a RAGService the way a client without kube-proxy must
// send it: at a rate, over the Service's ready endpoints (Endpoints), every
// answer recorded by the track of the pod that gave it (its revision's role in
// the RAGService's status when the endpoints were last resolved),
// so a test can say "the stable track never failed" and a demo can print what
// the users saw.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxAnswer bounds what is read of an OK answer to learn its vector size;
// maxErrorAnswer what is read of any other, to learn its reason.
const (
	maxAnswer      = 16 << 20
	maxErrorAnswer = 4 << 10
)

// Outcomes of one request of a steady load.
const (
	OutcomeOK       = "ok"       // 200
	OutcomeShed     = "shed"     // 429, or 503 with Retry-After (queue timeout, draining)
	OutcomeError    = "error"    // any other status: 5xx, 503 without Retry-After, 4xx
	OutcomeDrain    = "drain"    // connection error to a pod that was being deleted (or was gone) right after
	OutcomeConnFail = "connfail" // connection error to a pod that was not being deleted
)

// LoadConfig says where and how hard a steady load sends.
type LoadConfig struct {
	Client      client.Reader // reads EndpointSlices, Pods and the RAGService's status
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
	Time     time.Time
	Pod      string
	Revision string
	Track    string
	Outcome  string
	Detail   string // status and body, or the transport error
}

// Stats are the outcomes so far.
type Stats struct {
	Counts map[string]map[string]int // track -> outcome -> count
	Codes  map[string]map[int]int    // track -> HTTP status -> count
	// NotOK counts every request that did not end in a 200, shed ones too,
	// by track, then by what it got: "<status> <reason>", the reason being
	// the error code of an OpenAI error body ("503 draining", "429
	// queue_full", "502 upstream_error"), else its type, else "-"; or, for a
	// request that got no answer, "conn refused", "conn reset", "conn
	// closed", "conn timeout" or "conn other". Its sum for a track is
	// Total - Count(track, OutcomeOK).
	NotOK    map[string]map[string]int
	Failures []Failure // the first 20 per track that were not OK/Shed
	NoTarget int       // times a worker found no ready endpoint
	// Dims are the vector sizes of the OK answers: what the clients' index
	// would have received, with when each size was first and last seen.
	Dims map[int]DimsSeen
}

// DimsSeen is how often, and from when to when, answers of one vector size
// came back, and when the first and the last of those requests were sent:
// requests sent in one order can finish in another, so "did a client get the
// old space after it was routed to the new one" compares sending times.
type DimsSeen struct {
	Count               int
	First, Last         time.Time
	FirstSent, LastSent time.Time
}

// answerDims is the vector size of an embeddings answer's first vector, float
// array or base64; false when the body is not such an answer.
func answerDims(body []byte) (int, bool) {
	var a struct {
		Data []struct {
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
	}
	if json.Unmarshal(body, &a) != nil || len(a.Data) == 0 {
		return 0, false
	}
	raw := a.Data[0].Embedding
	var floats []float64
	if json.Unmarshal(raw, &floats) == nil {
		return len(floats), true
	}
	var b64 string
	if json.Unmarshal(raw, &b64) == nil {
		if dec, err := base64.StdEncoding.DecodeString(b64); err == nil {
			return len(dec) / 4, true
		}
	}
	return 0, false
}

// Total is the number of requests with an outcome on track ("" = all tracks).
func (s Stats) Total(track string) int { return sumOfTrack(s.Counts, track) }

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

// CountNotOK is the number of requests of track ("" = all) that did not end
// in a 200: shed, errors and connection errors alike.
func (s Stats) CountNotOK(track string) int { return sumOfTrack(s.NotOK, track) }

// sumOfTrack adds up the counts of track ("" = all tracks) in a table by
// track, then by outcome or reason.
func sumOfTrack(byTrack map[string]map[string]int, track string) int {
	n := 0
	for t, m := range byTrack {
		if track == "" || t == track {
			for _, c := range m {
				n += c
			}
		}
	}
	return n
}

// NotOKSummary lists what the requests of track ("" = all) that did not end
// in a 200 got, most frequent first: "503 draining: 113, conn refused: 2";
// "none" when every request got a 200.
func (s Stats) NotOKSummary(track string) string {
	sum := map[string]int{}
	for t, m := range s.NotOK {
		if track == "" || t == track {
			for k, c := range m {
				sum[k] += c
			}
		}
	}
	if len(sum) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(sum))
	sort.SliceStable(keys, func(i, j int) bool { return sum[keys[i]] > sum[keys[j]] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, sum[k])
	}
	return strings.Join(parts, ", ")
}

// Print writes a table: one row per track with its outcomes and status codes,
// then every answer other than 200 by track, status and reason.
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
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", t, s.Total(t), m[OutcomeOK], m[OutcomeShed], m[OutcomeError], m[OutcomeDrain], m[OutcomeConnFail], strings.Join(cs, " "))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\nRequests without a 200, by status and reason:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRACK\tNOT OK\tBY STATUS AND REASON")
	for _, t := range tracks {
		fmt.Fprintf(tw, "%s\t%d\t%s\n", t, s.CountNotOK(t), s.NotOKSummary(t))
	}
	_ = tw.Flush()
	if len(s.Dims) > 0 {
		fmt.Fprintln(w, "\nVector sizes of the OK answers:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DIMENSIONS\tANSWERS\tFIRST\tLAST")
		for _, d := range slices.Sorted(maps.Keys(s.Dims)) {
			seen := s.Dims[d]
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\n", d, seen.Count, seen.First.Format("15:04:05.000"), seen.Last.Format("15:04:05.000"))
		}
		_ = tw.Flush()
	}
}

func newStats() Stats {
	return Stats{Counts: map[string]map[string]int{}, Codes: map[string]map[int]int{}, NotOK: map[string]map[string]int{}, Dims: map[int]DimsSeen{}}
}

// Load is a running steady load.
type Load struct {
	cfg       LoadConfig
	client    *http.Client
	endpoints *Endpoints
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	mu    sync.Mutex
	stats Stats
}

// StartLoad resolves the endpoints once and starts the workers; they run
// until ctx ends or Stop is called.
func StartLoad(ctx context.Context, cfg LoadConfig) (*Load, error) {
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
	eps, err := FollowEndpoints(ctx, cfg.Client, cfg.Namespace, cfg.Service, cfg.Refresh)
	if err != nil {
		cancel()
		return nil, err
	}
	l := &Load{cfg: cfg, cancel: cancel, endpoints: eps,
		client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: cfg.Concurrency, IdleConnTimeout: 30 * time.Second,
			DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}},
		stats: newStats()}

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
	l.endpoints.Stop()
	l.client.CloseIdleConnections()
	return l.Snapshot()
}

// Snapshot returns a copy of the stats so far.
func (l *Load) Snapshot() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := newStats()
	s.NoTarget, s.Failures, s.Dims = l.stats.NoTarget, slices.Clone(l.stats.Failures), maps.Clone(l.stats.Dims)
	for t, m := range l.stats.Counts {
		s.Counts[t] = maps.Clone(m)
	}
	for t, m := range l.stats.Codes {
		s.Codes[t] = maps.Clone(m)
	}
	for t, m := range l.stats.NotOK {
		s.NotOK[t] = maps.Clone(m)
	}
	return s
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
		t, ok := l.endpoints.Next()
		if !ok {
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
		l.one(t)
	}
}

// one sends a request (not bound to the load's context: a request in flight
// when the load stops still gets its answer) and records its outcome.
func (l *Load) one(t Target) {
	req, _ := http.NewRequest(http.MethodPost, t.URL, bytes.NewReader(l.cfg.Body))
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := l.client.Do(req)
	var (
		outcome, detail, notOK string
		code, dims             int
		dimsOK                 bool
	)
	switch {
	case err != nil:
		outcome, detail, notOK = OutcomeConnFail, err.Error(), "conn "+connReason(err)
		if l.endpoints.Deleting(t.Pod) {
			outcome = OutcomeDrain
		}
	default:
		code = resp.StatusCode
		limit := int64(maxErrorAnswer)
		if code == http.StatusOK {
			limit = maxAnswer // read whole, for the vector size
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, limit))
		_ = resp.Body.Close()
		if code != http.StatusOK {
			notOK = fmt.Sprintf("%d %s", code, errorReason(body))
		}
		switch {
		case code == http.StatusOK:
			outcome = OutcomeOK
			dims, dimsOK = answerDims(body)
		case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			outcome = OutcomeShed
		default:
			outcome, detail = OutcomeError, fmt.Sprintf("%d %s", code, strings.TrimSpace(string(body)))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stats.Counts[t.Track] == nil {
		l.stats.Counts[t.Track] = map[string]int{}
		l.stats.Codes[t.Track] = map[int]int{}
	}
	l.stats.Counts[t.Track][outcome]++
	if code != 0 {
		l.stats.Codes[t.Track][code]++
	}
	if notOK != "" {
		if l.stats.NotOK[t.Track] == nil {
			l.stats.NotOK[t.Track] = map[string]int{}
		}
		l.stats.NotOK[t.Track][notOK]++
	}
	if dimsOK {
		now := time.Now()
		d := l.stats.Dims[dims]
		if d.Count == 0 || sent.Before(d.FirstSent) {
			d.FirstSent = sent
		}
		if d.Count == 0 {
			d.First = now
		}
		if sent.After(d.LastSent) {
			d.LastSent = sent
		}
		d.Count++
		d.Last = now
		l.stats.Dims[dims] = d
	}
	kept := 0
	for _, f := range l.stats.Failures {
		if f.Track == t.Track {
			kept++
		}
	}
	if outcome != OutcomeOK && outcome != OutcomeShed && kept < 20 {
		l.stats.Failures = append(l.stats.Failures, Failure{Time: time.Now(), Pod: t.Pod, Revision: t.Revision, Track: t.Track, Outcome: outcome, Detail: detail})
	}
}

// errorReason is what an answer other than 200 says went wrong: the code of
// its OpenAI error body, else the type, else "-".
func errorReason(body []byte) string {
	var e struct {
		Error struct {
			Code *string `json:"code"`
			Type string  `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "-"
	}
	switch {
	case e.Error.Code != nil && *e.Error.Code != "":
		return *e.Error.Code
	case e.Error.Type != "":
		return e.Error.Type
	}
	return "-"
}

// connReason names why a request got no answer: refused (nothing listens:
// a pod whose listener closed), reset, closed (the connection ended before
// an answer: EOF), timeout, or other.
func connReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "other"
}
