package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/loadgen"
)

// callWindow counts every call that reaches the upstream, admitted or not,
// and remembers the most in any 60 s.
type callWindow struct {
	mu    sync.Mutex
	times []time.Time
	most  int
	total int
	inner http.Handler
}

func (c *callWindow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		now := time.Now()
		c.mu.Lock()
		c.total++
		c.times = append(c.times, now)
		for len(c.times) > 0 && now.Sub(c.times[0]) >= time.Minute {
			c.times = c.times[1:]
		}
		c.most = max(c.most, len(c.times))
		c.mu.Unlock()
	}
	c.inner.ServeHTTP(w, r)
}

func (c *callWindow) read() (most, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.most, c.total
}

// One budget for the whole service on real pods: an OpenAI-like upstream of
// 6,000 calls a minute (30 ms a call, 429 beyond, x-ratelimit-* headers), a
// service of 2 replicas declaring that budget, under load, scaled to 4 and
// then through a canary. The upstream never sees more calls than the budget
// in any minute, refuses none, and every pod serves.
func TestBudgetHeldAcrossScaleAndCanary(t *testing.T) {
	const budget = 6000
	ns := namespace(t, "e2e-budget")
	ip := os.Getenv("E2E_HOST_IP")
	if ip == "" {
		t.Fatal("E2E_HOST_IP is not set: run `make test-e2e-run`")
	}
	up := fakeupstream.New(fakeupstream.Config{Latency: fakeupstream.Latency{Base: 30 * time.Millisecond}, Dims: 64, RequestsPerMinute: budget})
	calls := &callWindow{inner: up}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: calls, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		up.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})

	spec := svcSpec{Name: "docs", Namespace: ns, Replicas: 2, Model: "text-embedding-3-small", Endpoint: "http://" + ln.Addr().String() + "/v1",
		Steps: "    - setWeight: 50\n    - pause: {}\n", Upstream: fmt.Sprintf("      requestsPerMinute: %d\n", budget)}
	apply(t, spec)
	waitHealthy(t, ns, "docs", 120*time.Second)
	budgetTold(t, ns, 2)

	// More demand than the budget: 400 requests a second against 100 calls a
	// second, so the pods must fill calls rather than spend more.
	load, err := loadgen.StartLoad(context.Background(), loadgen.LoadConfig{Client: k8s, Namespace: ns, Service: "docs", Concurrency: 32, Rate: 400})
	if err != nil {
		t.Fatal(err)
	}
	defer load.Stop()
	time.Sleep(15 * time.Second)

	mustKubectl(t, "", "scale", "ragsvc/docs", "-n", ns, "--replicas=4")
	eventually(t, 90*time.Second, 500*time.Millisecond, "4 ready replicas", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.ReadyReplicas == 4 && s.Status.Replicas == 4, fmt.Sprintf("replicas %d ready %d", s.Status.Replicas, s.Status.ReadyReplicas)
	})
	budgetTold(t, ns, 4)
	time.Sleep(15 * time.Second)

	spec.Replicas = 4    // as scaled: the manifest must not scale it back
	spec.MaxInFlight = 9 // a template change: a canary, held at 50% by the pause
	apply(t, spec)
	eventually(t, 90*time.Second, 500*time.Millisecond, "the canary paused at 50%", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		return s.Status.Phase == "Paused" && s.Status.CanaryRevision != "" && s.Status.EffectiveWeight > 0,
			fmt.Sprintf("phase %s canary %q effective %d", s.Status.Phase, s.Status.CanaryRevision, s.Status.EffectiveWeight)
	})
	pods := budgetTold(t, ns, 0)
	tracks := map[string]int{}
	during := getSvc(t, ns, "docs").Status
	for _, p := range pods {
		tracks[trackOf(p, during)]++
	}
	t.Logf("canary: pods by track %v", tracks)
	if tracks["stable"] < 4 || tracks["canary"] < 1 {
		t.Errorf("pods by track %v, want 4 stable and a canary", tracks)
	}
	time.Sleep(35 * time.Second) // the whole run passes a minute under load

	stats := load.Stop()
	most, total := calls.read()
	upStats := up.Stats()
	s := getSvc(t, ns, "docs")
	var ok, other int
	for _, byOutcome := range stats.Counts {
		for outcome, n := range byOutcome {
			if outcome == loadgen.OutcomeOK {
				ok += n
			} else {
				other += n
			}
		}
	}
	t.Logf("budget %d calls/min; shares: %d pods, %d calls/min each, %d told", budget, s.Status.Budget.Pods, s.Status.Budget.PerPod.RequestsPerMinute, s.Status.Budget.PodsTold)
	t.Logf("upstream: %d calls, most in any minute %d (admitted %d), by status %v; clients: %d answered 200, %d otherwise, codes %v",
		total, most, upStats.MaxPerMinute, upStats.ByStatus, ok, other, stats.Codes)
	if most > budget {
		t.Errorf("the upstream saw %d calls in one minute, over the budget of %d", most, budget)
	}
	if n := upStats.ByStatus[http.StatusTooManyRequests]; n > 0 {
		t.Errorf("the upstream refused %d calls (429): the pods spent more than their shares", n)
	}
	if ok == 0 {
		t.Fatalf("no client was answered: %+v", stats)
	}
	for _, p := range pods {
		got := requestsOf(p.Status.PodIP)
		t.Logf("pod %s (%s during the canary): requests by code %s", p.Name, trackOf(p, during), got)
		if !strings.Contains(got, "200:") {
			t.Errorf("pod %s served no 200: %s", p.Name, got)
		}
	}
}

// budgetTold waits until status.budget says every running pod of the service
// confirmed its share (want: that many pods, 0: whatever runs) and returns
// the pods.
func budgetTold(t *testing.T, ns string, want int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, 60*time.Second, 500*time.Millisecond, "every pod told its budget share", func() (bool, string) {
		var list corev1.PodList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{"app.kubernetes.io/instance": "docs"}); err != nil {
			return false, err.Error()
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				pods = append(pods, p)
			}
		}
		s := getSvc(t, ns, "docs")
		b := s.Status.Budget
		if b == nil {
			return false, "no status.budget"
		}
		return (want == 0 || len(pods) == want) && int(b.PodsTold) == len(pods) && int(b.Pods) >= len(pods),
			fmt.Sprintf("%d running pods, status.budget %+v", len(pods), *b)
	})
	return pods
}
