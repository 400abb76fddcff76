// Package e2e is the end-to-end suite: real kubectl and a real operator process
// against the local cluster (hack/cluster), whose node agent runs the embedding
// server's pods as real processes. test/e2e/run.sh (make test-e2e-run) brings a
// throw-away cluster up, sets E2E_* and runs it; the tests start the operator
// themselves so that one of them can kill it.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fakeupstream"
)

var (
	kubeconfig string
	stateDir   string
	k8s        client.Client
	manager    *managerProc
)

func TestMain(m *testing.M) {
	kubeconfig = os.Getenv("E2E_KUBECONFIG")
	stateDir = os.Getenv("E2E_STATE_DIR")
	if kubeconfig == "" || os.Getenv("E2E_MANAGER") == "" || stateDir == "" {
		// Not a skip in disguise: this package only means something on a cluster.
		fmt.Fprintln(os.Stderr, "e2e: E2E_KUBECONFIG, E2E_MANAGER and E2E_STATE_DIR are not set: run `make test-e2e-run`, which brings up a cluster for it")
		os.Exit(1)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = ragv1.AddToScheme(scheme)
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	manager = &managerProc{bin: os.Getenv("E2E_MANAGER")}
	if err := manager.start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := m.Run()
	manager.stop()
	os.Exit(code)
}

// managerProc is the operator, run as a process like `make run` does.
type managerProc struct {
	bin string
	cmd *exec.Cmd
	// args are flags beyond the suite's own, for a test that runs the
	// manager otherwise configured (and puts them back).
	args []string
}

func (p *managerProc) start() error {
	logf, err := os.OpenFile(filepath.Join(stateDir, "manager.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s e2e starts the manager\n", time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(p.bin, append([]string{"--kubeconfig", kubeconfig,
		"--metrics-bind-address", "127.0.0.1:62080", "--health-probe-bind-address", "127.0.0.1:62081"}, p.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Dies with the test binary, even on a panic or a -timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting the manager: %w", err)
	}
	_ = logf.Close()
	p.cmd = cmd
	_ = os.WriteFile(filepath.Join(stateDir, "manager.pid"), []byte(fmt.Sprint(cmd.Process.Pid)), 0o644)
	return nil
}

// kill SIGKILLs the manager: no chance to finish anything.
func (p *managerProc) kill() {
	if p.cmd != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

func (p *managerProc) stop() {
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		p.cmd = nil
	}
}

// kubectl runs kubectl against the e2e cluster; stdin may be "".
func kubectl(stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// KUBECONFIG, not --kubeconfig: kubectl refuses flags before a plugin's name.
	cmd := exec.CommandContext(ctx, "kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err = cmd.Run()
	return o.String(), e.String(), err
}

// mustKubectl fails the test when kubectl fails.
func mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := kubectl(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// exitCode runs kubectl and returns its exit code and output.
func exitCode(args ...string) (int, string) {
	out, errOut, err := kubectl("", args...)
	if err == nil {
		return 0, out + errOut
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out + errOut
	}
	return -1, out + errOut + err.Error()
}

// namespace creates a namespace for one test and deletes it afterwards
// (without waiting: the next test uses another one).
func namespace(t *testing.T, name string) string {
	t.Helper()
	mustKubectl(t, "", "create", "namespace", name)
	t.Cleanup(func() {
		if t.Failed() {
			out, _, _ := kubectl("", "get", "ragsvc,deploy,pods", "-n", name, "-o", "wide")
			ev, _, _ := kubectl("", "get", "events", "-n", name, "--sort-by=.metadata.creationTimestamp")
			t.Logf("namespace %s at the failure:\n%s\n%s", name, out, tail(ev, 25))
		}
		_, _, _ = kubectl("", "delete", "namespace", name, "--wait=false")
	})
	return name
}

// eventually polls cond until it says done, failing with its last message after
// timeout.
func eventually(t *testing.T, timeout, every time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
		}
		time.Sleep(every)
	}
}

func getSvc(t *testing.T, ns, name string) *ragv1.RAGService {
	t.Helper()
	var s ragv1.RAGService
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatalf("get ragsvc %s/%s: %v", ns, name, err)
	}
	return &s
}

// svcSpec is what the tests vary in a RAGService manifest.
type svcSpec struct {
	Name, Namespace string
	Replicas        int
	MaxInFlight     int
	Model           string // default hash-64 (builtin), or the upstream's model name
	Endpoint        string // provider openai at this base URL (a fake upstream of the test)
	Space           string // spec.embedding.space
	Steps           string // YAML list under rollout.steps, indented by 4
	Analysis        bool
	AnalysisExtra   string // more fields under rollout.analysis, indented by 6
	SpaceCheck      string // fields under rollout.spaceCheck, indented by 6
	Upstream        string // fields under embedding.upstream (openai), indented by 6
}

// manifest renders the RAGService as a user (or a GitOps pipeline) writes it.
func (s svcSpec) manifest() string {
	model := cmpOr(s.Model, "hash-64")
	emb := "    provider: builtin\n    model: " + model + "\n"
	if s.Endpoint != "" {
		emb = "    provider: openai\n    model: " + model + "\n    endpoint: " + s.Endpoint + "\n"
	}
	if s.Space != "" {
		emb += "    space: " + s.Space + "\n"
	}
	if s.Upstream != "" {
		emb += "    upstream:\n" + s.Upstream
	}
	steps := s.Steps
	if steps == "" {
		steps = "    - setWeight: 50\n    - pause: {duration: 3s}\n"
	}
	analysis := ""
	if s.Analysis {
		analysis = `    analysis:
      interval: 3s
      minRequests: 5
      failureLimit: 1
      maxErrorRate: "0.01"
      maxShedRate: "0.10"
      maxLatencyP99: 2s
` + s.AnalysisExtra
	}
	if s.SpaceCheck != "" {
		analysis = "    spaceCheck:\n" + s.SpaceCheck + analysis
	}
	if s.MaxInFlight == 0 {
		s.MaxInFlight = 8
	}
	return fmt.Sprintf(`apiVersion: rag.ragops.io/v1alpha1
kind: RAGService
metadata:
  name: %s
  namespace: %s
spec:
  replicas: %d
  embedding:
%s  concurrency:
    maxInFlight: %d
    maxQueue: 32
  timeouts:
    request: 10s
    queue: 2s
    drain: 3s
  rollout:
    steps:
%s    progressDeadline: 2m
%s`, s.Name, s.Namespace, s.Replicas, emb, s.MaxInFlight, steps, analysis)
}

// startUpstream serves a fake OpenAI-compatible upstream (the builtin hash
// model's vectors) on the host end of the pod network's veth pair, where pods
// reach it, until the test ends; it returns the base URL for spec.embedding.endpoint.
func startUpstream(t *testing.T, cfg fakeupstream.Config) string {
	t.Helper()
	url, _ := startUpstreamServer(t, cfg)
	return url
}

// startUpstreamServer is startUpstream that also returns the fake, for a test
// that changes its behaviour while pods call it (SetConfig).
func startUpstreamServer(t *testing.T, cfg fakeupstream.Config) (string, *fakeupstream.Server) {
	t.Helper()
	ip := os.Getenv("E2E_HOST_IP")
	if ip == "" {
		t.Fatal("E2E_HOST_IP is not set: run `make test-e2e-run`")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listening on the pod network's host address: %v", err)
	}
	up := fakeupstream.New(cfg)
	srv := &http.Server{Handler: up, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		up.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String() + "/v1", up
}

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func apply(t *testing.T, s svcSpec) {
	t.Helper()
	mustKubectl(t, s.manifest(), "apply", "-f", "-")
}

// waitHealthy waits until the operator observed the current generation and says Healthy.
func waitHealthy(t *testing.T, ns, name string, timeout time.Duration) *ragv1.RAGService {
	t.Helper()
	var s *ragv1.RAGService
	eventually(t, timeout, 500*time.Millisecond, "ragsvc "+name+" Healthy", func() (bool, string) {
		s = getSvc(t, ns, name)
		return s.Status.ObservedGeneration == s.Generation && s.Status.Phase == ragv1.PhaseHealthy,
			fmt.Sprintf("generation %d observed %d phase %s", s.Generation, s.Status.ObservedGeneration, s.Status.Phase)
	})
	return s
}
