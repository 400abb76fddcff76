// Command manager runs the ragops operator: the RAGService controller.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/controllers"
	"github.com/ragops/rag-operator/internal/fleet"
	"github.com/ragops/rag-operator/internal/version"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

// options are the manager's flags.
type options struct {
	embedServerImage string
	metricsAddr      string
	metricsSecure    bool
	metricsCertDir   string
	probeAddr        string
	pprofAddr        string
	leaderElect      bool
	leaderElectNS    string

	maxConcurrentReconciles int
	maxFleetCanaries        int // --max-fleet-canaries
	fleetFailureLimit       int // --fleet-failure-limit
	kubeAPIQPS              float64
	kubeAPIBurst            int
	progressWindow          time.Duration // deprecated, no effect

	zap zap.Options

	version bool // --version: print the version and exit

	// skipNameValidation lets one process build several managers (tests).
	skipNameValidation bool
}

// parseFlags reads the flags of args (without the program name).
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.embedServerImage, "embedserver-image", "ragops/embedserver:"+version.Version,
		"Embedding server image for RAGServices whose spec names none.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint; 0 turns it off.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true,
		"Serve metrics over HTTPS, to clients the API server authenticates (TokenReview) and authorizes (SubjectAccessReview: get on /metrics); false serves plain HTTP to anyone, for local runs.")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "",
		"Directory with tls.crt and tls.key for the secure metrics endpoint (reloaded when they change); empty: a self-signed certificate made at start.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's /debug/pprof/ profiles; empty: off. Never expose it beyond the pod.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader, so that only one of several replicas reconciles.")
	fs.StringVar(&o.leaderElectNS, "leader-election-namespace", "", "Namespace of the leader election Lease; empty: the pod's own.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "RAGServices reconciled at the same time (one service is never reconciled twice at once).")
	fs.IntVar(&o.maxFleetCanaries, "max-fleet-canaries", fleet.DefaultMaxCanaries,
		"Canaries the operator itself causes (a new --embedserver-image for services whose spec names none) that run at once across all RAGServices; the rest wait, in namespace/name order (docs/operations.md).")
	fs.IntVar(&o.fleetFailureLimit, "fleet-failure-limit", fleet.DefaultFailureLimit,
		"Rollbacks of one default image's operator-caused canaries after which its fleet rollout stops: the services still waiting stay on their image.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 50, "Requests per second the manager sends to the API server, on average (client-side limit).")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 100, "Requests the manager may send to the API server in a burst above --kube-api-qps.")
	fs.DurationVar(&o.progressWindow, "status-progress-window", 0,
		"Deprecated, no effect: a RAGService's status is written when what it stores changes, and nothing is held back (docs/scale.md). Accepted so that deployments that pass it keep starting.")
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")
	o.zap.BindFlags(fs)
	ctrlconfig.RegisterFlags(fs) // --kubeconfig, read by ctrl.GetConfig
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.version {
		return o, nil
	}
	switch {
	case o.maxConcurrentReconciles < 1:
		return o, fmt.Errorf("--max-concurrent-reconciles must be at least 1, not %d", o.maxConcurrentReconciles)
	case o.maxFleetCanaries < 1:
		return o, fmt.Errorf("--max-fleet-canaries must be at least 1, not %d", o.maxFleetCanaries)
	case o.fleetFailureLimit < 1:
		return o, fmt.Errorf("--fleet-failure-limit must be at least 1, not %d", o.fleetFailureLimit)
	case o.kubeAPIQPS <= 0:
		return o, fmt.Errorf("--kube-api-qps must be above 0, not %g", o.kubeAPIQPS)
	case o.kubeAPIBurst < 1:
		return o, fmt.Errorf("--kube-api-burst must be at least 1, not %d", o.kubeAPIBurst)
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.version {
		fmt.Fprintln(stdout, "manager", version.Version)
		return nil
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	mgr, err := newManager(cfg, o)
	if err != nil {
		return err
	}
	log.Info("Starting manager", "version", version.Version, "embedserverImage", o.embedServerImage,
		"maxConcurrentReconciles", o.maxConcurrentReconciles, "maxFleetCanaries", o.maxFleetCanaries, "fleetFailureLimit", o.fleetFailureLimit, "kubeAPIQPS", o.kubeAPIQPS, "kubeAPIBurst", o.kubeAPIBurst,
		"metricsSecure", o.metricsSecure)
	// SetupSignalHandler cancels on SIGTERM/SIGINT: controllers finish their
	// current reconcile and the manager returns.
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// newManager builds the manager and its controller as the flags say.
func newManager(cfg *rest.Config, o options) (ctrl.Manager, error) {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(ragv1.AddToScheme(scheme))

	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst

	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsOptions(o),
		HealthProbeBindAddress: o.probeAddr,
		PprofBindAddress:       o.pprofAddr,
		Controller: config.Controller{
			MaxConcurrentReconciles: o.maxConcurrentReconciles,
			SkipNameValidation:      &o.skipNameValidation,
		},
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "rag-operator.ragops.io",
		LeaderElectionNamespace: o.leaderElectNS,
		// Step down at once on SIGTERM so that a new leader need not wait out the lease.
		LeaderElectionReleaseOnCancel: true,
	}
	controllers.ConfigureCache(&mgrOpts)
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}

	if err := (&controllers.RAGServiceReconciler{
		Client:            mgr.GetClient(),
		APIReader:         mgr.GetAPIReader(),
		Recorder:          mgr.GetEventRecorder("rag-operator"),
		EmbedServerImage:  o.embedServerImage,
		MaxFleetCanaries:  o.maxFleetCanaries,
		FleetFailureLimit: o.fleetFailureLimit,
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the RAGService controller: %w", err)
	}
	// The upstream budget's hand-out to the pods: its own controller, so a
	// budget or replica change never passes through the rollout.
	if err := (&controllers.BudgetReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
	}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the budget controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// metricsOptions serves metrics as kubebuilder v4 scaffolds it: HTTPS, and only
// to clients the API server authenticates and authorizes (a ClusterRole
// granting get on the non-resource URL /metrics: the chart's and kustomize's
// metrics-reader); or plain HTTP with --metrics-secure=false.
func metricsOptions(o options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: o.metricsAddr}
	if !o.metricsSecure {
		return m
	}
	m.SecureServing = true
	m.FilterProvider = filters.WithAuthenticationAndAuthorization
	m.CertDir = o.metricsCertDir
	// HTTP/1.1 only: HTTP/2's stream reset and rapid reset attacks
	// (CVE-2023-44487, CVE-2023-39325) need not be served to anyone here.
	m.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	return m
}
