package kubectlrag_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/kubectlrag"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
)

// One real kube-apiserver (envtest) for the package; each test works in its own namespace.
var (
	k8s        client.Client
	kubeconfig string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	env, cfg, err := kubetest.Start(filepath.Join("..", "..", "config", "crd", "bases"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	user, err := env.AddUser(envtest.User{Name: "kubectl-rag-test", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "add user: %v\n", err)
		return 1
	}
	kc, err := user.KubeConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeconfig: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "kubectl-rag-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{ragv1.AddToScheme, appsv1.AddToScheme, corev1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// syncBuffer is written by a command running in another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kubectlRag runs the plugin against the test API server in namespace ns.
func kubectlRag(ctx context.Context, ns string, out, errOut *syncBuffer, args ...string) int {
	all := append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...)
	return kubectlrag.Run(ctx, all, genericiooptions.IOStreams{In: strings.NewReader(""), Out: out, ErrOut: errOut})
}

type result struct {
	code        int
	out, errOut string
}

func run(t *testing.T, ns string, args ...string) result {
	t.Helper()
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := kubectlRag(ctx, ns, &out, &errOut, args...)
	return result{code: code, out: out.String(), errOut: errOut.String()}
}

func newNamespace(t *testing.T) string { return kubetest.Namespace(t, k8s) }

func createService(t *testing.T, ns, name string) *ragv1.RAGService {
	t.Helper()
	svc := &ragv1.RAGService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: ragv1.RAGServiceSpec{
			Replicas:  ptr.To[int32](4),
			Embedding: ragv1.EmbeddingSpec{Provider: ragv1.ProviderBuiltin, Model: "hash-384"},
			Rollout: ragv1.RolloutSpec{Steps: []ragv1.RolloutStep{
				{SetWeight: ptr.To[int32](20)},
				{Pause: &ragv1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
				{SetWeight: ptr.To[int32](50)},
				{Pause: &ragv1.PauseStep{}},
			}},
		},
	}
	if err := k8s.Create(context.Background(), svc); err != nil {
		t.Fatalf("create ragservice: %v", err)
	}
	return svc
}

// setStatus writes the status as the operator would, through the status subresource.
func setStatus(t *testing.T, svc *ragv1.RAGService, mutate func(*ragv1.RAGService)) *ragv1.RAGService {
	t.Helper()
	ctx := context.Background()
	cur := &ragv1.RAGService{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(svc), cur); err != nil {
		t.Fatalf("get ragservice: %v", err)
	}
	mutate(cur)
	if err := k8s.Status().Update(ctx, cur); err != nil {
		t.Fatalf("update status: %v", err)
	}
	return cur
}

func condition(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: metav1.Now()}
}

func healthy(s *ragv1.RAGService) {
	s.Status.ObservedGeneration = s.Generation
	s.Status.Phase = ragv1.PhaseHealthy
	s.Status.StableRevision = "7c9f5d"
	s.Status.CanaryRevision = ""
	s.Status.Replicas, s.Status.ReadyReplicas = 4, 4
	s.Status.Conditions = []metav1.Condition{
		condition(ragv1.ConditionReady, metav1.ConditionTrue, "Succeeded", "4/4 pods ready on revision 7c9f5d"),
		condition(ragv1.ConditionAvailable, metav1.ConditionTrue, "MinimumReplicasAvailable", "4 ready"),
	}
}

func progressing(s *ragv1.RAGService) {
	s.Status.ObservedGeneration = s.Generation
	s.Status.Phase = ragv1.PhaseProgressing
	s.Status.StableRevision = "7c9f5d"
	s.Status.CanaryRevision = "5d2a11"
	s.Status.CurrentStep = 1
	s.Status.CanaryWeight = 20
	s.Status.EffectiveWeight = 20
	s.Status.StepStartTime = &metav1.Time{Time: time.Now().Add(-30 * time.Second)}
	s.Status.Replicas, s.Status.ReadyReplicas = 5, 5
	s.Status.Analysis = &ragv1.AnalysisStatus{
		Time: metav1.Now(), Revision: "5d2a11", Requests: 120, ErrorRate: "0.001", ShedRate: "0.000",
		LatencyP99: &metav1.Duration{Duration: 120 * time.Millisecond}, Verdict: ragv1.VerdictPass,
	}
	s.Status.Conditions = []metav1.Condition{
		condition(ragv1.ConditionReady, metav1.ConditionFalse, "Progressing", "canary 5d2a11 at step 2/4"),
		condition(ragv1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "canary 5d2a11 at step 2/4"),
	}
}

func rolledBack(s *ragv1.RAGService) {
	s.Status.ObservedGeneration = s.Generation
	s.Status.Phase = ragv1.PhaseRolledBack
	s.Status.StableRevision = "7c9f5d"
	s.Status.CanaryRevision = ""
	s.Status.Rollback = &ragv1.RollbackStatus{Revision: "5d2a11", Reason: "AnalysisFailed", Message: "error rate 0.20 above 0.01", Time: metav1.Now()}
	s.Status.Conditions = []metav1.Condition{
		condition(ragv1.ConditionReady, metav1.ConditionFalse, "RolledBack", "revision 5d2a11 rolled back"),
		condition(ragv1.ConditionRolledBack, metav1.ConditionTrue, "AnalysisFailed", "error rate 0.20 above 0.01"),
	}
}
