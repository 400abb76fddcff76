package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// auditCounter counts the writes in the kube-apiserver's audit log since the
// last take. The log backend writes each event before the request's answer
// leaves (blocking mode, the default), so a count taken after a condition
// holds includes every write that led to it.
type auditCounter struct {
	f      *os.File
	r      *bufio.Reader
	broken int
}

// auditEvent is the part of an audit.k8s.io/v1 Event counted here.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// writes are counts of write requests by user and by "verb resource[/subresource]".
type writes struct {
	ByUser map[string]int            `json:"byUser"`
	ByKind map[string]map[string]int `json:"byKind"` // user -> "patch deployments" -> n
}

func newAuditCounter(path string) (*auditCounter, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the audit log: %w", err)
	}
	a := &auditCounter{f: f, r: bufio.NewReaderSize(f, 1<<20)}
	a.take() // what happened before this side started is not its
	return a, nil
}

func (a *auditCounter) take() writes {
	w := writes{ByUser: map[string]int{}, ByKind: map[string]map[string]int{}}
	for {
		line, err := a.r.ReadBytes('\n')
		if err != nil {
			// A partial last line is read again with the rest next time.
			if len(line) > 0 {
				_, _ = a.f.Seek(-int64(len(line)), io.SeekCurrent)
				a.r.Reset(a.f)
			}
			return w
		}
		var e auditEvent
		if json.Unmarshal(line, &e) != nil {
			a.broken++
			continue
		}
		if e.Stage != "ResponseComplete" {
			continue
		}
		switch e.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
		default:
			continue
		}
		kind := e.Verb
		if e.ObjectRef != nil {
			kind += " " + e.ObjectRef.Resource
			if e.ObjectRef.Subresource != "" {
				kind += "/" + e.ObjectRef.Subresource
			}
		}
		// A refused write (a conflict, say) is still a request: counted, and named.
		if e.ResponseStatus != nil && (e.ResponseStatus.Code < 200 || e.ResponseStatus.Code > 299) {
			kind += fmt.Sprintf(" (%d)", e.ResponseStatus.Code)
		}
		u := e.User.Username
		w.ByUser[u]++
		if w.ByKind[u] == nil {
			w.ByKind[u] = map[string]int{}
		}
		w.ByKind[u][kind]++
	}
}

// proc is one process's resource use, from /proc.
type proc struct{ pid int }

// cpuSeconds is user plus system time so far.
func (p proc) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count from the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", p.pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("reading /proc/%d/stat: %v %v", p.pid, err1, err2)
	}
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// memMiB returns VmRSS and VmHWM (the peak RSS so far) in MiB.
func (p proc) memMiB() (rss, peak float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return rss, peak, nil
}

// sampler follows the manager once a second: its RSS, and from its metrics
// the depth of the RAGService work queue and the Go heap in use (which,
// unlike the RSS, does not move with when the runtime last returned memory to
// the system; it still holds garbage until the next collection).
type sampler struct {
	p          proc
	metricsURL string

	mu         sync.Mutex
	depths     []float64
	rssSamples []float64
	heap       []float64
	stop       chan struct{}
	done       chan struct{}
}

func startSampler(p proc, metricsURL string) *sampler {
	s := &sampler{p: p, metricsURL: metricsURL, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		hc := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
			d, heap, derr := managerMetrics(hc, s.metricsURL)
			rss, _, merr := s.p.memMiB()
			s.mu.Lock()
			if derr == nil {
				s.depths = append(s.depths, d)
				if heap >= 0 {
					s.heap = append(s.heap, heap)
				}
			}
			if merr == nil {
				s.rssSamples = append(s.rssSamples, rss)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sampler) close() {
	close(s.stop)
	<-s.done
}

// window returns the queue depths, RSS and heap samples since the last call.
func (s *sampler) window() (depths, rss, heap []float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	depths, rss, heap = s.depths, s.rssSamples, s.heap
	s.depths, s.rssSamples, s.heap = nil, nil, nil
	return depths, rss, heap
}

func (s *sampler) lastDepth() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.depths) == 0 {
		return -1
	}
	return s.depths[len(s.depths)-1]
}

// managerMetrics reads workqueue_depth of the ragservice controller and
// go_memstats_heap_inuse_bytes (in MiB) from the manager's metrics.
func managerMetrics(hc *http.Client, url string) (depth, heapMiB float64, err error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("parsing metrics: %w", err)
	}
	// The heap is a figure to print, the depth what phases wait on: a
	// manager without Go collector metrics still has its depth read (heap -1).
	heapMiB = -1
	if h := families["go_memstats_heap_inuse_bytes"]; h != nil && len(h.GetMetric()) > 0 {
		heapMiB = h.GetMetric()[0].GetGauge().GetValue() / (1 << 20)
	}
	f, ok := families["workqueue_depth"]
	if !ok {
		return 0, 0, fmt.Errorf("no workqueue_depth")
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "name" && l.GetValue() == "ragservice" {
				return m.GetGauge().GetValue(), heapMiB, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("no workqueue_depth for ragservice")
}

func maxOf(xs []float64) float64 {
	m := 0.0
	for _, x := range xs {
		if x > m {
			m = x
		}
	}
	return m
}

func meanOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	c := append([]float64(nil), xs...)
	sort.Float64s(c)
	return c[len(c)/2]
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// forcedCollection saves the manager's heap profile to file, asking for it
// with gc=1 (net/http/pprof then runs runtime.GC first), and returns the heap
// bytes allocated right after that collection (go_memstats_heap_alloc_bytes,
// in MiB): the live heap.
func (b *bench) forcedCollection(file string) (float64, error) {
	hc := &http.Client{Timeout: time.Minute}
	resp, err := hc.Get("http://" + b.c.pprofAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("heap profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return gaugeMiB(hc, "http://"+b.c.metricsAddr+"/metrics", "go_memstats_heap_alloc_bytes")
}

// gaugeMiB reads one gauge of the manager's metrics, in MiB.
func gaugeMiB(hc *http.Client, url, name string) (float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parsing metrics: %w", err)
	}
	if f := families[name]; f != nil && len(f.GetMetric()) > 0 {
		return f.GetMetric()[0].GetGauge().GetValue() / (1 << 20), nil
	}
	return 0, fmt.Errorf("no %s in the manager's metrics", name)
}
