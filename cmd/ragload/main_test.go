package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
	"github.com/ragops/rag-operator/internal/testsupport/golden"
	"github.com/ragops/rag-operator/internal/version"
)

func noEnv(string) string { return "" }

func TestHealthyServer(t *testing.T) {
	srv := embedserver.New(embedserver.Config{Model: "hash-64", MaxInFlight: 4, MaxQueue: 4}, builtinmodel.Provider{Model: builtinmodel.Model{Dims: 64}})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--url", ts.URL, "--levels", "1,3,20", "--requests", "40", "--deadline", "5s", "--inputs", "3"}, noEnv, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// Header line, column titles, one row per level, verdict.
	if len(lines) != 6 || !strings.Contains(lines[1], "hung") || !strings.HasPrefix(lines[5], "OK") {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, clients := range []string{"1", "3", "20"} {
		f := strings.Fields(lines[2+i])
		if f[0] != clients || f[1] != "40" || f[6] != "0" {
			t.Fatalf("row %q: want %s clients, 40 requests, 0 hung", lines[2+i], clients)
		}
		if clients != "20" && f[2] != "40" {
			t.Fatalf("row %q: all 40 should be ok", lines[2+i])
		}
	}
}

func TestHangingServerFails(t *testing.T) {
	// A server that accepts and never answers: the failure ragload exists to catch.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	hang := &http.Server{Handler: http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})}
	go func() { _ = hang.Serve(ln) }()
	defer func() { close(stop); _ = hang.Close() }()

	var out, errb bytes.Buffer
	start := time.Now()
	code := run(context.Background(), []string{"--url", "http://" + ln.Addr().String(), "--levels", "5", "--requests", "5", "--deadline", "200ms", "--margin", "100ms"}, noEnv, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "FAIL: 5 request(s) hung") {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("ragload itself hung")
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--levels", "1,x"}, {"--levels", "0"}, {"--inputs", "0"},
		{"--service", "docs", "--url", "http://127.0.0.1:1"}, {"-n", "search"}, {"--kubeconfig", "/dev/null"}, {"--service", "docs", "--refresh", "0s"},
		{"--max-error-rate", "1.5"}, {"--max-shed-rate=-0.1"}, {"stray"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, noEnv, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}

// --service with a kubeconfig that names no cluster fails at once, saying so.
func TestServiceWithoutACluster(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--service", "docs", "--kubeconfig", kc}, noEnv, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "kubeconfig") {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Against a closed port every request fails: ragload says so and exits 1,
// where it used to print "OK: no request hung" and exit 0.
func TestClosedPortFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--url", "http://" + addr, "--levels", "1,5", "--requests", "20", "--deadline", "2s", "--margin", "100ms"}, noEnv, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "FAIL: no request succeeded (40 sent)") ||
		!strings.Contains(out.String(), "FAIL: error rate 1.0000 (40 errors and 0 timeouts of 40 requests) > --max-error-rate 0.01") || strings.Contains(out.String(), "OK") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
}

// answerEvery answers status to every nth request and 200 (a vector) to the rest.
func answerEvery(n int, status int) http.Handler {
	var mu sync.Mutex
	i := 0
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		i++
		fail := i%n == 0
		mu.Unlock()
		if fail {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":{"message":"no","type":"server_error","param":null,"code":null}}`))
			return
		}
		_, _ = w.Write([]byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1,0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`))
	})
}

// The error and shed rates over all levels fail the run past their limits.
func TestRateLimits(t *testing.T) {
	cases := []struct {
		name    string
		handler http.Handler
		flags   []string
		code    int
		want    string
	}{
		{"2% errors pass --max-error-rate 0.05", answerEvery(50, http.StatusInternalServerError), []string{"--max-error-rate=0.05"}, 0, "OK: no request hung"},
		{"2% errors fail the default 0.01", answerEvery(50, http.StatusInternalServerError), nil, 1, "FAIL: error rate 0.0200 (2 errors and 0 timeouts of 100 requests) > --max-error-rate 0.01"},
		{"504s count as errors", answerEvery(25, http.StatusGatewayTimeout), nil, 1, "(0 errors and 4 timeouts of 100 requests)"},
		{"half shed passes the default 1", answerEvery(2, http.StatusTooManyRequests), nil, 0, "OK"},
		{"half shed fails --max-shed-rate 0.4", answerEvery(2, http.StatusServiceUnavailable), []string{"--max-shed-rate", "0.4"}, 1, "FAIL: shed rate 0.5000 (50 of 100 requests) > --max-shed-rate 0.4"},
		{"all shed: nothing succeeded", answerEvery(1, http.StatusTooManyRequests), nil, 1, "FAIL: no request succeeded (100 sent)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := httptest.NewServer(tc.handler)
			defer ts.Close()
			var out, errb bytes.Buffer
			args := append([]string{"--url", ts.URL, "--levels", "1", "--requests", "100", "--deadline", "5s"}, tc.flags...)
			if code := run(context.Background(), args, noEnv, &out, &errb); code != tc.code || !strings.Contains(out.String(), tc.want) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s\n%s", code, tc.code, tc.want, out.String(), errb.String())
			}
		})
	}
}

// --help is the description, the flags, the exit codes and the environment;
// --version prints the version.
func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, noEnv, &out, &errb); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	golden.Check(t, "help", errb.Bytes())
	out.Reset()
	if code := run(context.Background(), []string{"--version"}, noEnv, &out, &errb); code != 0 || out.String() != "ragload "+version.Version+"\n" {
		t.Fatalf("--version: exit %d, %q", code, out.String())
	}
}
