// Command nodeagent is the local node agent of the ragops development cluster
// (`make cluster-up` starts it): it registers a Node and runs the pods scheduled
// to it whose image is named *embedserver as local embedserver processes, each
// on its own local address. See docs/local-cluster.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ragops/rag-operator/internal/nodeagent"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		kubeconfig = flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
		cfg        nodeagent.Config
		labels     string
		verbose    bool
	)
	flag.StringVar(&cfg.NodeName, "node-name", "local-1", "name of the Node to register")
	flag.StringVar(&cfg.Binary, "embedserver-binary", "bin/embedserver", "binary run for every container whose image is named *embedserver")
	flag.StringVar(&cfg.PodCIDR, "pod-cidr", "198.18.0.0/17", "range pod IPs come from; every address in it must be local where the pods run (see docs/local-cluster.md)")
	flag.StringVar(&cfg.PodNetNS, "pod-netns", "", "network namespace (from `ip netns add`) the pods run in, where --pod-cidr is local; empty: the agent's own")
	flag.StringVar(&cfg.HostIP, "host-ip", "127.0.0.1", "address shown as the node's InternalIP and the pods' hostIP")
	flag.StringVar(&cfg.StateDir, "state-dir", ".local/cluster/nodeagent", "directory for per-pod logs and pid files")
	flag.StringVar(&labels, "node-labels", "", "extra node labels, k=v,k=v")
	flag.StringVar(&cfg.CPU, "cpu", fmt.Sprint(runtime.NumCPU()), "CPU capacity the node reports")
	flag.StringVar(&cfg.Memory, "memory", "16Gi", "memory capacity the node reports")
	flag.IntVar(&cfg.MaxPods, "max-pods", 110, "pod capacity the node reports")
	flag.BoolVar(&verbose, "v", false, "log probe failures")
	flag.Parse()

	cfg.Labels = map[string]string{}
	for kv := range strings.SplitSeq(labels, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			cfg.Labels[k] = v
		}
	}
	var err error
	if cfg.Binary, err = filepath.Abs(cfg.Binary); err != nil {
		return fmt.Errorf("binary path: %w", err)
	}
	if cfg.StateDir, err = filepath.Abs(cfg.StateDir); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	rc, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	rc.UserAgent = "ragops-nodeagent/" + cfg.NodeName
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	check := func() error { return nodeagent.CheckBindable(cfg.PodCIDR) }
	if cfg.PodNetNS != "" {
		check = func() error { return nodeagent.CheckNetNS(cfg.PodNetNS) }
	}
	if err := check(); err != nil {
		return err
	}
	agent, err := nodeagent.New(cfg, client, log)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return agent.Run(ctx)
}
