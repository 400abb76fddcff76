package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
	"github.com/ragops/rag-operator/internal/version"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.maxConcurrentReconciles != 4 || o.kubeAPIQPS != 50 || o.kubeAPIBurst != 100 || !o.metricsSecure || o.metricsAddr != ":8443" ||
		o.maxFleetCanaries != 5 || o.fleetFailureLimit != 2 {
		t.Errorf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"--max-concurrent-reconciles=16", "--kube-api-qps=200", "--kube-api-burst=400", "--metrics-secure=false",
		"--max-fleet-canaries=20", "--fleet-failure-limit=3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.maxConcurrentReconciles != 16 || o.kubeAPIQPS != 200 || o.kubeAPIBurst != 400 || o.metricsSecure ||
		o.maxFleetCanaries != 20 || o.fleetFailureLimit != 3 {
		t.Errorf("flags not read: %+v", o)
	}
	// Deprecated and without effect, but still accepted: deployments that
	// pass it must keep starting.
	if _, err = parseFlags([]string{"--status-progress-window=10s"}, io.Discard); err != nil {
		t.Errorf("--status-progress-window=10s: %v", err)
	}
	for _, bad := range []struct{ arg, want string }{
		{"--max-concurrent-reconciles=0", "--max-concurrent-reconciles"},
		{"--max-fleet-canaries=0", "--max-fleet-canaries"},
		{"--fleet-failure-limit=0", "--fleet-failure-limit"},
		{"--kube-api-qps=0", "--kube-api-qps"},
		{"--kube-api-qps=-5", "--kube-api-qps"},
		{"--kube-api-burst=0", "--kube-api-burst"},
		{"--kube-api-burst=many", "kube-api-burst"},
		{"stray", "unexpected arguments"},
	} {
		if _, err := parseFlags([]string{bad.arg}, io.Discard); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one naming %s", bad.arg, err, bad.want)
		}
	}
}

// --version prints the version and starts nothing (no kubeconfig is read), and
// --help lists --version; neither needs a cluster.
func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run([]string{"--version", "--kubeconfig=/nonexistent"}, &stdout, &stderr); err != nil || stdout.String() != "manager "+version.Version+"\n" {
		t.Fatalf("--version: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if err := run([]string{"--help"}, &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), "-version") {
		t.Fatalf("--help: %v, stderr %q", err, stderr.String())
	}
}

// The manager's metrics, as cmd/manager serves them by default: HTTPS, and
// only to a token the API server authenticates and allows to get /metrics
// through the metrics-reader ClusterRole that kustomize and the chart install.
func TestSecureMetrics(t *testing.T) {
	cfg := startAPIServer(t)
	addr := freeAddr(t)
	startManager(t, cfg, "--metrics-bind-address="+addr)
	c := mustClient(t, cfg)

	role := readRole(t, filepath.Join("..", "..", "config", "rbac", "metrics_reader_role.yaml"))
	role.Name = "test-metrics-reader"
	mustCreate(t, c, role)
	mustCreate(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus", Namespace: "default"}})
	mustCreate(t, c, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "stranger", Namespace: "default"}})
	mustCreate(t, c, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-metrics"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "prometheus", Namespace: "default"}},
	})

	url := "https://" + addr + "/metrics"
	// The self-signed certificate is not what is under test.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	waitServing(t, hc, url)

	if code, body := get(t, hc, url, ""); code != http.StatusUnauthorized {
		t.Errorf("anonymous request: %d %q, want 401", code, body)
	}
	// A token the API server does not know: the TokenReview answers with an
	// error, which controller-runtime's filter reports as a 500; refused either way.
	if code, body := get(t, hc, url, "not-a-token"); code < 400 || strings.Contains(body, "# TYPE") {
		t.Errorf("bad token: %d %.200q, want a refusal", code, body)
	}
	if code, body := get(t, hc, url, token(t, cfg, "stranger")); code != http.StatusForbidden {
		t.Errorf("token without the metrics-reader role: %d %q, want 403", code, body)
	}
	reader := token(t, cfg, "prometheus")
	waitMetric(t, func() (int, string) { return get(t, hc, url, reader) }, "controller_runtime_reconcile_total")
	// Plain HTTP is not served on the secure port.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the secure endpoint answered plain HTTP with metrics")
		}
	}
}

// --metrics-secure=false serves plain HTTP to anyone, for local runs.
func TestPlainMetrics(t *testing.T) {
	cfg := startAPIServer(t)
	addr := freeAddr(t)
	startManager(t, cfg, "--metrics-bind-address="+addr, "--metrics-secure=false")
	hc := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + addr + "/metrics"
	waitServing(t, hc, url)
	waitMetric(t, func() (int, string) { return get(t, hc, url, "") }, "controller_runtime_reconcile_total")
}

// waitMetric waits until scrape answers 200 with the metric (the controller's
// series appear once it started, after the cache synced).
func waitMetric(t *testing.T, scrape func() (int, string), metric string) {
	t.Helper()
	poll.UntilSaw(t, metric+" in the scrape", func() (bool, string) {
		code, body := scrape()
		if code != http.StatusOK {
			t.Fatalf("scrape: %d, no %s in:\n%.300s", code, metric, body)
		}
		return strings.Contains(body, metric), fmt.Sprintf("no %s in:\n%.300s", metric, body)
	})
}

func startAPIServer(t *testing.T) *rest.Config {
	t.Helper()
	env, cfg, err := kubetest.Start(filepath.Join("..", "..", "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	return cfg
}

// startManager runs the manager that cmd/manager builds from args.
func startManager(t *testing.T, cfg *rest.Config, args ...string) {
	t.Helper()
	o, err := parseFlags(append([]string{"--health-probe-bind-address=0"}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.skipNameValidation = true // each test runs a manager in this one process
	mgr, err := newManager(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitServing(t *testing.T, hc *http.Client, url string) {
	t.Helper()
	poll.UntilSaw(t, "metrics endpoint "+url+" to serve", func() (bool, string) {
		resp, err := hc.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, ""
	})
}

func get(t *testing.T, hc *http.Client, url, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// token is a ServiceAccount token from the TokenRequest API, as `kubectl create token` gets one.
func token(t *testing.T, cfg *rest.Config, sa string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(context.Background(), sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", sa, err)
	}
	return tr.Status.Token
}

func mustClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCreate(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

func readRole(t *testing.T, path string) *rbacv1.ClusterRole {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(b, role); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(role.Rules) == 0 {
		t.Fatalf("%s has no rules", path)
	}
	return role
}
