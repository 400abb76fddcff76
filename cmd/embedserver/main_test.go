package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/testsupport/golden"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
	"github.com/ragops/rag-operator/internal/version"
)

// --help describes the server and names EMBEDSERVER_API_KEY and the exit codes
// around the flags (a golden: a change shows in review); --version prints the
// version and starts nothing.
func TestHelpAndVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	noEnv := func(string) string { return "" }
	if code := run(context.Background(), []string{"--help"}, noEnv, &stdout, &stderr); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"EMBEDSERVER_API_KEY", "Exit codes:", "--upstream-auth"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	golden.Check(t, "help", stderr.Bytes())
	stderr.Reset()
	if code := run(context.Background(), []string{"--version"}, noEnv, &stdout, &stderr); code != 0 || stdout.String() != "embedserver "+version.Version+"\n" || stderr.Len() > 0 {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// Bad flags exit 2 with the reason on stderr (the whole table of reasons is in
// internal/embedserver/serverflags).
func TestFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown provider", []string{"--provider", "x"}, "--provider must be builtin or openai"},
		{"openai without url", []string{"--provider", "openai", "--model", "m"}, "upstream URL is required"},
		{"zero timeout", []string{"--queue-timeout", "0s"}, "--queue-timeout must be positive"},
		{"stray argument", []string{"serve"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, func(string) string { return "" }, io.Discard, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.want)
			}
		})
	}
}

func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The real binary, as a pod runs it: at SIGTERM readiness drops, new requests
// are still served through the drain delay (3s by default), the requests in
// flight complete, and the process exits 0.
func TestSIGTERMDrainsRealProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "embedserver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	up := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: 700 * time.Millisecond}, APIKey: "sekret"})
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer up.Close()

	// A pod-like address other than 127.0.0.1, as the local node agent uses.
	ip := "127.0.3.7"
	if ln, err := net.Listen("tcp", ip+":0"); err != nil {
		ip = "127.0.0.1"
	} else {
		ln.Close()
	}
	addr, admin := freeAddr(t, ip), freeAddr(t, ip)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "--addr", addr, "--admin-addr", admin, "--provider", "openai", "--model", "fake-embedding",
		"--upstream-url", ts.URL+"/v1", "--drain-timeout", "10s")
	cmd.Env = append(os.Environ(), "EMBEDSERVER_API_KEY=sekret")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	poll.UntilStatus(t, "http://"+admin+"/readyz", http.StatusOK)

	post := func() (int, string) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}
		resp, err := c.Post("http://"+addr+"/v1/embeddings", "application/json", strings.NewReader(`{"input":["a","b"]}`))
		if err != nil {
			return -1, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	type res struct {
		code int
		body string
	}
	inflight := make(chan res, 2)
	for i := 0; i < 2; i++ {
		go func() { c, b := post(); inflight <- res{c, b} }()
	}
	// Both requests hold a slot before the signal.
	poll.Until(t, "both requests to hold a slot (embedserver_in_flight 2)", func() bool {
		return strings.Contains(scrape(t, "http://"+admin+"/metrics"), "\nembedserver_in_flight 2\n")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness drops; new work is still served while the old finishes.
	poll.UntilStatus(t, "http://"+admin+"/readyz", http.StatusServiceUnavailable)
	if code, body := post(); code != http.StatusOK || !strings.Contains(body, `"embedding"`) {
		t.Fatalf("new request during the drain delay: %d %s", code, body)
	}
	for i := 0; i < 2; i++ {
		if r := <-inflight; r.code != 200 {
			t.Fatalf("in-flight request: %d %s", r.code, r.body)
		}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("process did not exit")
	}
	if strings.Contains(stderr.String(), "sekret") {
		t.Fatal("API key in logs")
	}
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// The server as the operator starts it for Azure OpenAI (--upstream-auth
// azure-api-key, --upstream-api-version, the key in EMBEDSERVER_API_KEY)
// serves from a fake that answers as Azure does; the same server with the
// default Bearer auth gets Azure's 401, which the client sees as an error
// naming it (502 today; the upstream's own status once final upstream answers
// are passed through).
func TestAzureUpstream(t *testing.T) {
	const key, apiVersion = "azure-sekret", "2024-10-21"
	up := fakeupstream.New(fakeupstream.Config{Azure: fakeupstream.Azure{Key: key, APIVersion: apiVersion}})
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer up.Close()
	getenv := func(k string) string {
		if k == "EMBEDSERVER_API_KEY" {
			return key
		}
		return ""
	}
	for _, tc := range []struct {
		name string
		auth []string
		code int
		body string
	}{
		{"azure-api-key", []string{"--upstream-auth=azure-api-key", "--upstream-api-version=" + apiVersion}, http.StatusOK, `"object":"list"`},
		{"bearer is refused", []string{"--upstream-api-version=" + apiVersion}, 0, "Access denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, admin := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stderr bytes.Buffer
			exited := make(chan int, 1)
			args := append([]string{"--addr", addr, "--admin-addr", admin, "--provider", "openai", "--model", "text-embedding-3-small",
				"--upstream-url", ts.URL + "/openai/deployments/text-embedding-3-small", "--drain-timeout=1s", "--drain-delay=0s", "--log-level=error"}, tc.auth...)
			go func() { exited <- run(ctx, args, getenv, io.Discard, &stderr) }()
			poll.UntilStatus(t, "http://"+admin+"/readyz", http.StatusOK)
			resp, err := http.Post("http://"+addr+"/v1/embeddings", "application/json", strings.NewReader(`{"input":["a","b"]}`))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if (tc.code != 0 && resp.StatusCode != tc.code) || (tc.code == 0 && resp.StatusCode < 400) || !strings.Contains(string(b), tc.body) {
				t.Errorf("answer %d %s, want %d (0: an error) with %q", resp.StatusCode, b, tc.code, tc.body)
			}
			cancel()
			select {
			case code := <-exited:
				if code != 0 {
					t.Errorf("exit %d: %s", code, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("server did not stop")
			}
		})
	}
}

// The server as the operator starts an openai pod: its start share from the
// budget Secret's environment (GET /budget shows it), changed only with the
// token (PUT /budget), and a malformed start share is a flag error (exit 2).
func TestBudgetStartShareAndToken(t *testing.T) {
	up := fakeupstream.New(fakeupstream.Config{})
	ts := httptest.NewServer(up)
	defer ts.Close()
	defer up.Close()
	env := map[string]string{
		"EMBEDSERVER_BUDGET_TOKEN":                     "op-token",
		"EMBEDSERVER_BUDGET_START_REQUESTS_PER_MINUTE": "1200",
		"EMBEDSERVER_BUDGET_START_TOKENS_PER_MINUTE":   "200000",
	}
	addr, admin := freeAddr(t, "127.0.0.1"), freeAddr(t, "127.0.0.1")
	args := []string{"--addr", addr, "--admin-addr", admin, "--provider", "openai", "--model", "text-embedding-3-small",
		"--upstream-url", ts.URL + "/v1", "--drain-timeout=1s", "--drain-delay=0s", "--log-level=error"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, args, func(k string) string { return env[k] }, io.Discard, &stderr) }()
	poll.UntilStatus(t, "http://"+admin+"/readyz", http.StatusOK)

	if got := scrape(t, "http://"+admin+"/budget"); !strings.Contains(got, `"requestsPerMinute":1200,"tokensPerMinute":200000`) {
		t.Errorf("GET /budget = %s, want the start share 1200/200000", got)
	}
	put := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPut, "http://"+admin+"/budget", strings.NewReader(`{"requestsPerMinute":600,"tokensPerMinute":100000}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put("Bearer not-it"); code != http.StatusUnauthorized {
		t.Errorf("PUT with a wrong token: %d, want 401", code)
	}
	if code := put("Bearer op-token"); code != http.StatusNoContent {
		t.Errorf("PUT with the operator's token: %d, want 204", code)
	}
	if got := scrape(t, "http://"+admin+"/budget"); !strings.Contains(got, `"requestsPerMinute":600,"tokensPerMinute":100000`) {
		t.Errorf("GET /budget = %s after the PUT, want 600/100000", got)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop")
	}

	bad := map[string]string{"EMBEDSERVER_BUDGET_START_REQUESTS_PER_MINUTE": "-5"}
	stderr.Reset()
	if code := run(context.Background(), args, func(k string) string { return bad[k] }, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "EMBEDSERVER_BUDGET_START_REQUESTS_PER_MINUTE") {
		t.Errorf("a negative start share: exit %d (%s), want 2 naming the variable", code, stderr.String())
	}
}
