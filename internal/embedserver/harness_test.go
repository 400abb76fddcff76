package embedserver

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/provider/openai"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is a real server on loopback ports, optionally in front of a fake
// upstream on loopback.
type harness struct {
	srv    *Server
	url    string // API base
	admin  string // admin base
	up     *fakeupstream.Server
	client *http.Client
	stop   context.CancelFunc
	done   chan error
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func startServer(t *testing.T, cfg Config, p provider.Provider) *harness {
	t.Helper()
	if cfg.Model == "" {
		cfg.Model = "hash-16"
	}
	h := &harness{srv: New(cfg, p), done: make(chan error, 1)}
	apiLn, adminLn := listen(t), listen(t)
	h.url, h.admin = "http://"+apiLn.Addr().String(), "http://"+adminLn.Addr().String()
	tr := &http.Transport{MaxIdleConnsPerHost: 200}
	h.client = &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- h.srv.Run(ctx, apiLn, adminLn) }()
	t.Cleanup(func() {
		h.shutdown(t)
		tr.CloseIdleConnections()
	})
	return h
}

// shutdown drains the server once and returns Run's result.
func (h *harness) shutdown(t *testing.T) error {
	h.stop()
	if h.up != nil {
		defer h.up.Close()
	}
	select {
	case err, ok := <-h.done:
		if ok {
			close(h.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
		return nil
	}
}

func startBuiltin(t *testing.T, cfg Config) *harness {
	t.Helper()
	m, _ := builtinmodel.Parse("hash-16")
	cfg.Model = m.Name()
	cfg.Metrics = NewMetrics()
	return startServer(t, cfg, builtinmodel.Provider{Model: m, Observer: cfg.Metrics})
}

// startUpstream runs the server with the openai provider against a fake upstream.
func startUpstream(t *testing.T, cfg Config, upCfg fakeupstream.Config, ocfg openai.Config) *harness {
	t.Helper()
	up := fakeupstream.New(upCfg)
	ts := httptest.NewServer(up)
	t.Cleanup(ts.Close)
	ocfg.BaseURL = ts.URL + "/v1"
	ocfg.Model = "fake-embedding"
	ocfg.MaxInFlight = max(cfg.MaxInFlight, 1)
	cfg.Metrics = NewMetrics()
	ocfg.Observer = cfg.Metrics
	c, err := openai.New(ocfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg.Metrics.WatchBudget(c.Budget())
	cfg.Budget = c.Budget()
	cfg.Model = "fake-embedding"
	h := startServer(t, cfg, c)
	h.up = up
	return h
}

type answer struct {
	status int
	header http.Header
	body   []byte
	closed bool // the server closes the connection after this answer
}

func (h *harness) post(t *testing.T, ctx context.Context, body string) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"/v1/embeddings", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func get(t *testing.T, url string) answer {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// errorOf checks the OpenAI error shape and returns the error object.
func errorOf(t *testing.T, a answer) map[string]any {
	t.Helper()
	var body map[string]map[string]any
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("status %d, body not JSON: %s", a.status, a.body)
	}
	e, ok := body["error"]
	if !ok {
		t.Fatalf("no error object: %s", a.body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error object lacks %q: %s", k, a.body)
		}
	}
	if m, _ := e["message"].(string); m == "" {
		t.Fatalf("empty message: %s", a.body)
	}
	return e
}

func vectorsOf(t *testing.T, a answer, n int) [][]float32 {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var resp openaiapi.EmbeddingResponse
	if err := json.Unmarshal(a.body, &resp); err != nil {
		t.Fatal(err)
	}
	v, err := resp.Vectors(n)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// metric returns the value of one sample line of /metrics, e.g.
// `embedserver_requests_total{code="429"}`.
func (h *harness) metric(t *testing.T, series string) float64 {
	t.Helper()
	a := get(t, h.admin+"/metrics")
	for _, line := range strings.Split(string(a.body), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if err := json.Unmarshal([]byte(rest), &v); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("series %s not in /metrics", series)
	return 0
}

// occupy starts n requests that hold slots (or queue places) until the returned
// func is called; it waits until the limiter sees them.
func (h *harness) occupy(t *testing.T, inFlight, queued int) (release func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, inFlight+queued)
	send := func() {
		go func() {
			h.post(t, ctx, `{"input":"occupy"}`)
			done <- struct{}{}
		}()
	}
	for i := 0; i < inFlight; i++ {
		send()
	}
	poll.Until(t, "slots taken", func() bool { return h.srv.limiter.InFlight() == inFlight })
	for i := 0; i < queued; i++ {
		send()
	}
	poll.Until(t, "queue filled", func() bool { return h.srv.limiter.QueueDepth() == queued })
	return func() {
		cancel()
		for i := 0; i < inFlight+queued; i++ {
			<-done
		}
	}
}
