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
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/embedserver"
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
	hang := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		{"--service", "docs", "--url", "http://127.0.0.1:1"}, {"-n", "search"}, {"--kubeconfig", "/dev/null"}, {"--service", "docs", "--refresh", "0s"}} {
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
