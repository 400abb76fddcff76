// Command benchscale measures the operator at scale on a running local
// cluster (make bench-scale, hack/bench-scale.sh): N RAGServices on kwok nodes
// created to Ready, one template change shipped to all, the writes at idle, and
// beside it the kubectl baseline: the same Deployments, Services and
// PodDisruptionBudgets applied by kubectl and waited for, with no operator.
//
//	benchscale baseline -n 1000 -out results/baseline-1000.json
//	benchscale operator -n 1000 -out results/operator-1000.json [-unrelated-pods 5000]
//	benchscale report results/*.json
//
// API writes are counted from the kube-apiserver's audit log (the script turns
// it on): every create, update, patch and delete, by the user that sent it.
// The manager runs with a ServiceAccount token of its own, bound to the
// generated manager ClusterRole, so its writes are told apart from the
// controller manager's and the benchmark's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "baseline", "operator":
		err = runSide(cmd, args)
	case "report":
		err = runReport(args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchscale baseline|operator -n N -out FILE [flags] | benchscale report FILE...")
	os.Exit(2)
}

// config is one side's settings.
type config struct {
	side          string
	n             int
	out           string
	kubeconfig    string
	auditLog      string
	managerBin    string
	managerArgs   string
	metricsAddr   string
	pprofAddr     string
	stateDir      string
	rbacRole      string
	phaseTimeout  time.Duration
	idle          time.Duration
	unrelatedPods int
	namespace     string
}

func runSide(side string, args []string) error {
	c := config{side: side}
	fs := flag.NewFlagSet(side, flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 100, "RAGServices (or, for the baseline, sets of their objects)")
	fs.StringVar(&c.out, "out", "", "result file (JSON)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "admin kubeconfig of the local cluster")
	fs.StringVar(&c.auditLog, "audit-log", "", "the kube-apiserver's audit log (JSON lines)")
	fs.StringVar(&c.managerBin, "manager", "bin/manager", "manager binary")
	fs.StringVar(&c.managerArgs, "manager-args", "", "more manager flags, space-separated (e.g. --max-concurrent-reconciles=8)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "127.0.0.1:65080", "the manager's plain HTTP metrics address")
	fs.StringVar(&c.pprofAddr, "pprof-addr", "127.0.0.1:65082", "the manager's pprof address (heap profiles after a forced collection, unrelated pods phase)")
	fs.StringVar(&c.stateDir, "state-dir", os.TempDir(), "where the manager's kubeconfig and log go")
	fs.StringVar(&c.rbacRole, "rbac-role", "config/rbac/role.yaml", "the generated manager ClusterRole the manager runs with")
	fs.DurationVar(&c.phaseTimeout, "phase-timeout", 30*time.Minute, "longest wait of one phase; a phase that runs out is reported as such")
	fs.DurationVar(&c.idle, "idle", time.Minute, "how long writes at idle are counted")
	fs.IntVar(&c.unrelatedPods, "unrelated-pods", 0, "operator: then create this many pods of another app and measure the manager's RSS before and after")
	fs.StringVar(&c.namespace, "namespace", "bench", "namespace of the services")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.out == "" || c.auditLog == "" || c.n < 1 {
		return fmt.Errorf("-out, -audit-log and -n >= 1 are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := newBench(ctx, c)
	if err != nil {
		return err
	}
	res, err := b.run()
	if res != nil {
		if werr := writeResult(c.out, res); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}
