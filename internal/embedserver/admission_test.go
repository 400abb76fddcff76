package embedserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/provider"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// scripted is a provider whose behaviour the input text chooses, so that every
// way a request can end is reachable from a client.
type scripted struct {
	gate chan struct{} // "hold" waits here (or for the request's end)
	held chan struct{} // told when a "hold" request is inside
}

func (p *scripted) Embed(ctx context.Context, req provider.Request) (provider.Response, error) {
	switch req.Inputs[0].Text {
	case "hold":
		if p.held != nil {
			p.held <- struct{}{}
		}
		select {
		case <-p.gate:
		case <-ctx.Done():
			return provider.Response{}, context.Cause(ctx)
		}
	case "upstream-fails":
		return provider.Response{}, &provider.Error{Status: http.StatusBadGateway, Type: "server_error", Code: "upstream_error", Message: "upstream failed"}
	case "plain-error":
		return provider.Response{}, errors.New("a bug")
	case "wrong-count":
		return provider.Response{}, nil
	}
	return builtinmodel.Provider{Model: builtinmodel.Model{Dims: 16}}.Embed(ctx, req)
}

// rawExchange writes req on a new connection and reads one answer, within 10s.
// With halfClose the client then closes its sending side, as a client that has
// nothing more to send may.
func rawExchange(t *testing.T, base, req string, halfClose bool) answer {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	if halfClose {
		_ = conn.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, closed: resp.Close}
}

func post(path, headers, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n" + headers + "\r\n" + body
}

// Every way a request can fail is answered with its status and an OpenAI error
// body; none ends in net/http's implicit 200 with an empty body.
func TestEveryFailurePathAnswers(t *testing.T) {
	type setup struct {
		cfg     Config
		occupy  int // "hold" requests that take slots (and queue places) first
		drained bool
	}
	chunk := func(parts ...string) string {
		var sb strings.Builder
		for _, p := range parts {
			fmt.Fprintf(&sb, "%x\r\n%s\r\n", len(p), p)
		}
		return sb.String() + "0\r\n\r\n"
	}
	big := `{"input":"` + strings.Repeat("x", 3000) + `"}`
	tests := []struct {
		name      string
		setup     setup
		req       string
		halfClose bool
		status    int
		code      string
	}{
		{"wrong method", setup{}, "GET /v1/embeddings HTTP/1.1\r\nHost: t\r\n\r\n", false, 405, "method_not_allowed"},
		{"unknown path", setup{}, "GET /v2 HTTP/1.1\r\nHost: t\r\n\r\n", false, 404, "not_found"},
		// Served during the drain delay, still running when the drain timeout passes.
		{"drain timeout", setup{drained: true, cfg: Config{DrainTimeout: 100 * time.Millisecond, DrainDelay: time.Second}}, post("/v1/embeddings", "Content-Length: 16\r\n", `{"input":"hold"}`), false, 503, "draining"},
		{"declared body over the limit", setup{cfg: Config{MaxBodyBytes: 1000}}, post("/v1/embeddings", "Content-Length: 100000000000\r\n", ""), false, 413, "body_too_large"},
		{"chunked body over the limit", setup{cfg: Config{MaxBodyBytes: 1000}}, post("/v1/embeddings", "Transfer-Encoding: chunked\r\n", chunk(big[:1500], big[1500:])), false, 413, "body_too_large"},
		{"declared body over the byte budget", setup{cfg: Config{MaxBodyBytes: 4000, MaxPendingBytes: 2000}}, post("/v1/embeddings", fmt.Sprintf("Content-Length: %d\r\n", len(big)), big), false, 429, "memory"},
		{"chunked body over the byte budget", setup{cfg: Config{MaxBodyBytes: 1 << 20, MaxPendingBytes: 100 << 10}},
			post("/v1/embeddings", "Transfer-Encoding: chunked\r\n", chunk(strings.Repeat("y", 80<<10), strings.Repeat("y", 80<<10))), false, 429, "memory"},
		{"stalled body", setup{cfg: Config{RequestTimeout: 300 * time.Millisecond}}, post("/v1/embeddings", "Content-Length: 100\r\n", `{"input":`), false, 408, "request_timeout"},
		{"body shorter than declared, then the client closes", setup{}, post("/v1/embeddings", "Content-Length: 100\r\n", `{"input":`), true, 400, "invalid_value"},
		{"client closes its side while queued", setup{cfg: Config{MaxInFlight: 1, MaxQueue: 1, QueueTimeout: 10 * time.Second}, occupy: 1},
			post("/v1/embeddings", "Content-Length: 13\r\n", `{"input":"x"}`), true, 408, "client_closed"},
		{"not JSON", setup{}, post("/v1/embeddings", "Content-Length: 1\r\n", `{`), false, 400, "invalid_value"},
		{"empty body", setup{}, post("/v1/embeddings", "Content-Length: 0\r\n", ``), false, 400, "invalid_value"},
		{"too many inputs", setup{cfg: Config{MaxInputs: 1}}, post("/v1/embeddings", "Content-Length: 19\r\n", `{"input":["a","b"]}`), false, 413, "too_many_inputs"},
		{"wrong model", setup{}, post("/v1/embeddings", "Content-Length: 27\r\n", `{"input":"x","model":"gpt"}`), false, 400, "model_not_found"},
		{"dimensions over the model", setup{}, post("/v1/embeddings", "Content-Length: 30\r\n", `{"input":"x","dimensions":999}`), false, 400, "invalid_value"},
		{"queue full", setup{cfg: Config{MaxInFlight: 1, MaxQueue: 0}, occupy: 1}, post("/v1/embeddings", "Content-Length: 13\r\n", `{"input":"x"}`), false, 429, "queue_full"},
		{"queue timeout", setup{cfg: Config{MaxInFlight: 1, MaxQueue: 1, QueueTimeout: 50 * time.Millisecond}, occupy: 1},
			post("/v1/embeddings", "Content-Length: 13\r\n", `{"input":"x"}`), false, 503, "queue_timeout"},
		{"request deadline", setup{cfg: Config{RequestTimeout: 100 * time.Millisecond}}, post("/v1/embeddings", "Content-Length: 16\r\n", `{"input":"hold"}`), false, 504, "request_timeout"},
		{"upstream failed", setup{}, post("/v1/embeddings", "Content-Length: 26\r\n", `{"input":"upstream-fails"}`), false, 502, "upstream_error"},
		{"provider bug", setup{}, post("/v1/embeddings", "Content-Length: 23\r\n", `{"input":"plain-error"}`), false, 500, ""},
		{"wrong vector count", setup{}, post("/v1/embeddings", "Content-Length: 23\r\n", `{"input":"wrong-count"}`), false, 500, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &scripted{gate: make(chan struct{}), held: make(chan struct{}, 8)}
			cfg := tt.setup.cfg
			cfg.Model = "hash-16"
			h := startServer(t, cfg, p)
			defer close(p.gate)
			if tt.setup.occupy > 0 {
				for range tt.setup.occupy {
					go h.post(t, context.Background(), `{"input":"hold"}`)
					<-p.held
				}
			}
			if tt.setup.drained {
				go func() { _ = h.shutdown(t) }()
				poll.Until(t, "draining", h.srv.Draining)
			}
			a := rawExchange(t, h.url, tt.req, tt.halfClose)
			if a.status != tt.status || len(a.body) == 0 {
				t.Fatalf("status %d, want %d; body %q", a.status, tt.status, a.body)
			}
			e := errorOf(t, a)
			if tt.code != "" && e["code"] != tt.code {
				t.Fatalf("code %v, want %s: %s", e["code"], tt.code, a.body)
			}
			if a.status == 429 || a.status == 503 {
				if a.header.Get("Retry-After") == "" {
					t.Fatal("a shed answer without Retry-After")
				}
			}
		})
	}
}

// A declared Content-Length over the limit is refused at once: the server does
// not wait for (or read) the body.
func TestDeclaredBodyOverLimitRefusedWithoutReading(t *testing.T) {
	h := startBuiltin(t, Config{RequestTimeout: 20 * time.Second})
	start := time.Now()
	a := rawExchange(t, h.url, post("/v1/embeddings", "Content-Length: 100000000000\r\n", ""), false)
	if a.status != 413 || time.Since(start) > 2*time.Second || !a.closed {
		t.Fatalf("status %d after %v, connection closed %v", a.status, time.Since(start), a.closed)
	}
	if got := h.metric(t, `embedserver_pending_bytes`); got != 0 {
		t.Fatalf("pending bytes %v after the refusal", got)
	}
}

// Concurrent uploads share the byte budget: never more bodies held than fit,
// the rest shed with 429 (reason memory) before their bodies are read, and
// every reserved byte comes back.
func TestByteBudgetWithConcurrentUploads(t *testing.T) {
	const (
		uploads = 24
		size    = 100 << 10
		budget  = 350 << 10 // room for 3 bodies
	)
	p := &scripted{gate: make(chan struct{}), held: make(chan struct{}, uploads)}
	h := startServer(t, Config{Model: "hash-16", MaxInFlight: uploads, MaxQueue: uploads, MaxBodyBytes: size * 2, MaxPendingBytes: budget}, p)
	body := `{"input":["hold","` + strings.Repeat("z", size-20) + `"]}`
	var wg sync.WaitGroup
	statuses := make(chan int, uploads)
	for range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := h.post(t, context.Background(), body)
			if a.status == 429 {
				if e := errorOf(t, a); e["code"] != "memory" || a.header.Get("Retry-After") == "" {
					t.Errorf("429 without code memory and Retry-After: %v %s", a.header, a.body)
				}
			}
			statuses <- a.status
		}()
	}
	// Those admitted hold their bodies inside the provider; the others are
	// answered meanwhile.
	for range 3 {
		<-p.held
	}
	poll.Until(t, "the others shed", func() bool { return len(statuses) == uploads-3 })
	if got := h.metric(t, `embedserver_pending_bytes`); got > budget || got < 3*float64(len(body)) {
		t.Fatalf("pending bytes %v with 3 bodies of %d held, budget %d", got, len(body), budget)
	}
	close(p.gate)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] != 3 || count[429] != uploads-3 {
		t.Fatalf("answers %v, want 3 x 200 and %d x 429", count, uploads-3)
	}
	if got := h.metric(t, `embedserver_shed_total{reason="memory"}`); got != uploads-3 {
		t.Fatalf("memory sheds counted %v", got)
	}
	poll.Until(t, "every byte released", func() bool { return h.metric(t, `embedserver_pending_bytes`) == 0 })
}
