package controllers

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/analysis"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
)

// The suite runs against a real kube-apiserver and etcd (envtest, with the
// binaries `make k8s-bins` builds). Nothing runs kube-controller-manager here,
// so sim (sim_test.go) plays the Deployment controller and the kubelet: it
// creates pods, runs a real embedding server for each on a loopback address
// and reports Deployment status as the real controller would.
var (
	testEnv    *envtest.Environment
	cfg        *rest.Config
	k8sClient  client.Client
	testScheme = runtime.NewScheme()

	// Every simulated pod serves its API and admin ports on these ports of its
	// own 127.0.9.x address, like a pod on its own IP.
	podAPIPort, podAdminPort int
)

const testImage = "ragops/embedserver:test"

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(ragv1.AddToScheme(testScheme))
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))

	var err error
	if testEnv, cfg, err = kubetest.Start(filepath.Join("..", "config", "crd", "bases")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}()
	if k8sClient, err = client.New(cfg, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	if podAPIPort, podAdminPort, err = freePorts(); err != nil {
		fmt.Fprintln(os.Stderr, "choosing pod ports:", err)
		return 1
	}
	return m.Run()
}

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE") != "" {
		return -1
	}
	return 3 // quiet: shutdown errors are noise; TEST_VERBOSE=1 shows all
}

// freePorts picks two ports free on the first simulated pod address; the
// same ports on the other 127.0.9.x addresses are as good as free.
func freePorts() (int, int, error) {
	var ports []int
	for range 2 {
		ln, err := net.Listen("tcp", podAddr(0)+":0")
		if err != nil {
			return 0, 0, err
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		defer ln.Close()
	}
	return ports[0], ports[1], nil
}

// manager is one running operator, as `cmd/manager` would run it.
type manager struct {
	cancel context.CancelFunc
	done   chan error
	// client reads through the manager's own cache, as the reconciler does.
	client client.Client
}

// startManager runs the reconciler in a manager until the test ends or stop
// is called; a second manager in one test is a restarted operator. configure,
// if given, changes the reconciler as cmd/manager's flags would.
func startManager(t *testing.T, configure ...func(*RAGServiceReconciler)) *manager {
	t.Helper()
	return startManagerOn(t, cfg, "", configure...)
}

// startManagerOn is startManager with the manager's own rest config (a
// counting transport, say) and, unless ns is "", watching namespace ns only
// (so that what it does is about this test's services, not earlier tests').
func startManagerOn(t *testing.T, cfg *rest.Config, ns string, configure ...func(*RAGServiceReconciler)) *manager {
	t.Helper()
	opts := ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller: config.Controller{
			SkipNameValidation:      ptr.To(true),
			MaxConcurrentReconciles: DefaultMaxConcurrentReconciles,
		},
	}
	// The cache cmd/manager runs with, so the tests see what it leaves out.
	ConfigureCache(&opts)
	if ns != "" {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{ns: {}}
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatalf("creating manager: %v", err)
	}
	r := &RAGServiceReconciler{
		Client:           mgr.GetClient(),
		APIReader:        mgr.GetAPIReader(),
		Recorder:         mgr.GetEventRecorder("rag-operator"),
		EmbedServerImage: testImage,
		Builtin:          &analysis.Builtin{Timeout: 2 * time.Second},
		MetricsPort:      podAdminPort,
		APIPort:          podAPIPort,
	}
	for _, c := range configure {
		c(r)
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatalf("setting up reconciler: %v", err)
	}
	// The budget hand-out runs beside it, as in cmd/manager: openai pods need
	// the budget Secret it creates before they start.
	b := &BudgetReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), AdminPort: podAdminPort, Resync: time.Second}
	if err := b.SetupWithManager(mgr); err != nil {
		t.Fatalf("setting up the budget controller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &manager{cancel: cancel, done: make(chan error, 1), client: mgr.GetClient()}
	go func() { m.done <- mgr.Start(ctx) }()
	t.Cleanup(m.stop)
	return m
}

func (m *manager) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	m.cancel = nil
	<-m.done
}
