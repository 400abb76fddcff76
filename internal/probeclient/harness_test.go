package probeclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
)

func TestMain(m *testing.M) {
	code := m.Run()
	defaultHTTP.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// embedServer is the real embedding server with a builtin model, run on
// loopback ports as cmd/embedserver runs it.
type embedServer struct {
	srv   *embedserver.Server
	url   string // API base, e.g. http://127.0.0.1:40123
	admin string
	stop  func() error // begins the drain and waits for Run to return
}

func startEmbedServer(t *testing.T, model string, cfg embedserver.Config) *embedServer {
	t.Helper()
	m, err := builtinmodel.Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model = m.Name()
	if cfg.DrainTimeout == 0 {
		// A client may have read its whole answer while the handler has yet
		// to return; 0 would report that request as cut off at the stop.
		cfg.DrainTimeout = 5 * time.Second
	}
	s := &embedServer{srv: embedserver.New(cfg, builtinmodel.Provider{Model: m})}
	apiLn, adminLn := listen(t), listen(t)
	s.url, s.admin = "http://"+apiLn.Addr().String(), "http://"+adminLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.srv.Run(ctx, apiLn, adminLn) }()
	var once sync.Once
	var runErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("embedserver did not stop")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// handlerServer is the real embedding server's handlers behind httptest
// servers, with each API request's arrival time recorded.
type handlerServer struct {
	url, admin string
	mu         sync.Mutex
	arrivals   []time.Time
	requests   []recorded
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// readBody reads r's body and puts it back for the next handler.
func readBody(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

func startHandlerServer(t *testing.T, model string) *handlerServer {
	t.Helper()
	m, err := builtinmodel.Parse(model)
	if err != nil {
		t.Fatal(err)
	}
	srv := embedserver.New(embedserver.Config{Model: m.Name()}, builtinmodel.Provider{Model: m})
	h := &handlerServer{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := readBody(r)
		h.mu.Lock()
		h.arrivals = append(h.arrivals, time.Now())
		h.requests = append(h.requests, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
		h.mu.Unlock()
		srv.Handler().ServeHTTP(w, r)
	}))
	admin := httptest.NewServer(srv.AdminHandler())
	t.Cleanup(api.Close)
	t.Cleanup(admin.Close)
	h.url, h.admin = api.URL, admin.URL
	return h
}
