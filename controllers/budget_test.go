package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// shares are the budget shares the simulated pods hold now, by pod name.
func (s *sim) shares() map[string][2]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][2]int{}
	for name, p := range s.pods {
		if p.budget != nil {
			sh := p.budget.Share()
			out[name] = [2]int{sh.RequestsPerMinute, sh.TokensPerMinute}
		}
	}
	return out
}

func (s *sim) podIP(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pods[name].ip
}

// watchShares samples the pods' shares every 5 ms until the test ends and
// records every sample whose sum passed the limit in force.
type shareWatch struct {
	rpmLimit, tpmLimit atomic.Int64
	mu                 sync.Mutex
	over               []string
	samples            int
	maxPods            int
}

func watchShares(t *testing.T, s *sim, rpm, tpm int64) *shareWatch {
	w := &shareWatch{}
	w.rpmLimit.Store(rpm)
	w.tpmLimit.Store(tpm)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			sh := s.shares()
			var r, k int64
			for _, v := range sh {
				r, k = r+int64(v[0]), k+int64(v[1])
			}
			w.mu.Lock()
			w.samples++
			w.maxPods = max(w.maxPods, len(sh))
			if r > w.rpmLimit.Load() || k > w.tpmLimit.Load() {
				w.over = append(w.over, "requests "+strconv.FormatInt(r, 10)+", tokens "+strconv.FormatInt(k, 10)+" over "+strconv.Itoa(len(sh))+" pods")
			}
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func (w *shareWatch) check(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.over) > 0 {
		t.Fatalf("the pods' shares added up to more than the budget in %d of %d samples, first: %s", len(w.over), w.samples, w.over[0])
	}
	t.Logf("%d samples of the pods' shares, up to %d pods at once, all within the budget", w.samples, w.maxPods)
}

// allTold waits until every pod (pods of them; 0: however many run) holds
// the per-pod share status.budget shows for budget rpm/tpm, and status counts
// them all; it returns the status.
func allTold(t *testing.T, s *sim, ns, name string, rpm, tpm int64, pods int) *ragv1.BudgetStatus {
	t.Helper()
	var st *ragv1.BudgetStatus
	NewWithT(t).Eventually(func(g Gomega) {
		svc := get(g, ns, name)
		st = svc.Status.Budget
		g.Expect(st).NotTo(BeNil())
		g.Expect(st.RequestsPerMinute).To(Equal(rpm))
		g.Expect(st.TokensPerMinute).To(Equal(tpm))
		sh := s.shares()
		if pods > 0 {
			g.Expect(sh).To(HaveLen(pods))
		}
		g.Expect(st.PodsTold).To(BeEquivalentTo(len(sh)))
		g.Expect(st.Pods).To(BeNumerically(">=", len(sh)))
		g.Expect(st.PerPod.RequestsPerMinute).To(Equal(rpm / int64(st.Pods)))
		for name, v := range sh {
			g.Expect(v).To(Equal([2]int{int(st.PerPod.RequestsPerMinute), int(st.PerPod.TokensPerMinute)}), "pod %s", name)
		}
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	return st
}

func openaiWithBudget(endpoint string, rpm, tpm int64) func(*ragv1.RAGService) {
	return func(s *ragv1.RAGService) {
		s.Spec.Embedding.Provider = ragv1.ProviderOpenAI
		s.Spec.Embedding.Endpoint = endpoint
		s.Spec.Embedding.Upstream.RequestsPerMinute = rpm
		s.Spec.Embedding.Upstream.TokensPerMinute = tpm
		s.Spec.Rollout.Steps = []ragv1.RolloutStep{{SetWeight: ptr.To(int32(50))}, {Pause: &ragv1.PauseStep{}}}
		s.Spec.Rollout.Analysis = nil
	}
}

// The budget of the whole service is handed out so that the pods' shares
// never add up to more than it: from 2 pods, scaled to 4, through a budget
// change (which restarts no pod and makes no revision) and a canary.
func TestBudgetSharesStayWithinTheBudget(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	s := startSim(t, ns, quiet)
	w := watchShares(t, s, 6000, 1_000_000)
	// The upstream the pods (and the operator's probes through them) call.
	up := fakeupstream.New(fakeupstream.Config{Dims: 64})
	ts := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); ts.Close() })

	g.Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, openaiWithBudget(ts.URL+"/v1", 6000, 1_000_000)))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
	st := allTold(t, s, ns, "docs", 6000, 1_000_000, 2)
	t.Logf("2 replicas: budget divided by %d, %d calls/min per pod", st.Pods, st.PerPod.RequestsPerMinute)

	// The Secret: owned by the service, holding a token no status shows.
	sec := &corev1.Secret{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: podtemplate.BudgetSecretName("docs")}, sec)).To(Succeed())
	token := string(sec.Data[contract.BudgetSecretTokenKey])
	g.Expect(token).To(HaveLen(64))
	g.Expect(metav1.IsControlledBy(sec, get(g, ns, "docs"))).To(BeTrue())
	status, _ := json.Marshal(get(g, ns, "docs").Status)
	g.Expect(string(status)).NotTo(ContainSubstring(token))

	// Scale up: the new pods start on the Secret's safe share, the old ones
	// are lowered; the sum never passes the budget.
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Replicas = ptr.To(int32(4)) })
	waitHealthy(t, ns, "docs", poll.Budget)
	st = allTold(t, s, ns, "docs", 6000, 1_000_000, 4)
	t.Logf("4 replicas: budget divided by %d, %d calls/min per pod", st.Pods, st.PerPod.RequestsPerMinute)

	// A budget change: told to the same pods, no new revision, no restart.
	before := get(g, ns, "docs").Status.StableRevision
	tplBefore := stableDeployment(g, ns, "docs").Spec.Template
	podsBefore := s.shares()
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Upstream.RequestsPerMinute = 3000 })
	st = allTold(t, s, ns, "docs", 3000, 1_000_000, 4)
	w.rpmLimit.Store(3000) // every pod holds the lower share now
	t.Logf("budget 3000: %d calls/min per pod, the same %d pods", st.PerPod.RequestsPerMinute, len(podsBefore))
	svc := get(g, ns, "docs")
	g.Expect(svc.Status.StableRevision).To(Equal(before))
	g.Expect(svc.Status.CanaryRevision).To(BeEmpty())
	g.Expect(stableDeployment(g, ns, "docs").Spec.Template).To(Equal(tplBefore))
	for name := range s.shares() {
		g.Expect(podsBefore).To(HaveKey(name), "pod %s is new: the budget change restarted pods", name)
	}

	// A canary: its pods count against the same budget.
	update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 4 })
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, ns, "docs").Status.CanaryRevision).NotTo(BeEmpty())
		g.Expect(len(s.shares())).To(BeNumerically(">", 4), "the canary's pods")
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
	st = allTold(t, s, ns, "docs", 3000, 1_000_000, 0) // the canary may still be growing
	g.Expect(len(s.shares())).To(BeNumerically(">", 4), "the canary's pods")
	t.Logf("canary: %d pods, budget divided by %d, %d calls/min per pod", len(s.shares()), st.Pods, st.PerPod.RequestsPerMinute)
	w.check(t)

	// Only the operator's token changes a share.
	var name string
	for n := range s.shares() {
		name = n
		break
	}
	url := "http://" + net.JoinHostPort(s.podIP(name), strconv.Itoa(podAdminPort)) + "/budget"
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x"} {
		req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader([]byte(`{"requestsPerMinute":999999}`)))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized), "auth %q", auth)
	}
	g.Expect(s.shares()[name][0]).To(Equal(int(st.PerPod.RequestsPerMinute)))

	// A deleted Secret is made again, with the token the running pods hold.
	g.Expect(k8sClient.Delete(context.Background(), sec)).To(Succeed())
	g.Eventually(func(g Gomega) {
		again := &corev1.Secret{}
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sec), again)).To(Succeed())
		g.Expect(again.UID).NotTo(Equal(sec.UID))
		g.Expect(string(again.Data[contract.BudgetSecretTokenKey])).To(Equal(token))
		g.Expect(string(again.Data[contract.BudgetSecretRequestsKey])).To(Equal(strconv.Itoa(int(st.PerPod.RequestsPerMinute))))
	}, poll.Budget, 50*time.Millisecond).Should(Succeed())
}

// A builtin service gets no budget Secret and no status.budget, and its
// template names no budget Secret.
func TestBudgetLeavesBuiltinAlone(t *testing.T) {
	g := NewWithT(t)
	ns := kubetest.Namespace(t, k8sClient)
	startManager(t)
	startSim(t, ns, quiet)
	g.Expect(k8sClient.Create(context.Background(), newService(ns, "plain", 1))).To(Succeed())
	waitHealthy(t, ns, "plain", poll.Budget)
	g.Consistently(func(g Gomega) {
		g.Expect(get(g, ns, "plain").Status.Budget).To(BeNil())
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: podtemplate.BudgetSecretName("plain")}, &corev1.Secret{})
		g.Expect(err).To(HaveOccurred())
	}, time.Second, 100*time.Millisecond).Should(Succeed())
	g.Expect(stableDeployment(g, ns, "plain").Spec.Template.Spec.Containers[0].Env).To(BeEmpty())
}
