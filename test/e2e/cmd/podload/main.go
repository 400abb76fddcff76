// Command podload puts load on a RAGService's pods, resolved from its Service's
// EndpointSlices (there is no kube-proxy on the local cluster), for a bounded
// time, and prints what each track answered. make demo runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/loadgen"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	ns := flag.String("namespace", "default", "namespace of the Service")
	svc := flag.String("service", "", "Service (the RAGService's name)")
	conc := flag.Int("concurrency", 4, "workers")
	rate := flag.Float64("rate", 40, "requests per second over all workers (0: back to back)")
	dur := flag.Duration("duration", 5*time.Minute, "stop after this long")
	flag.Parse()
	if *svc == "" {
		fmt.Fprintln(os.Stderr, "podload: --service is required")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "podload:", err)
		os.Exit(1)
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	// A pod's track is its revision's role in the RAGService's status.
	_ = ragv1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "podload:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	start := time.Now()
	l, err := loadgen.StartLoad(ctx, loadgen.LoadConfig{Client: c, Namespace: *ns, Service: *svc, Concurrency: *conc, Rate: *rate})
	if err != nil {
		fmt.Fprintln(os.Stderr, "podload:", err)
		os.Exit(1)
	}
	fmt.Printf("podload: %s/%s, %d workers, %.0f req/s, at most %v\n", *ns, *svc, *conc, *rate, *dur)
	<-ctx.Done()
	s := l.Stop()
	fmt.Printf("podload: %d requests in %v\n", s.Total(""), time.Since(start).Round(time.Second))
	s.Print(os.Stdout)
	for _, f := range s.Failures[:min(len(s.Failures), 5)] {
		fmt.Printf("  e.g. %s %s pod %s (%s): %s\n", f.Time.Format("15:04:05"), f.Outcome, f.Pod, f.Track, f.Detail)
	}
}
