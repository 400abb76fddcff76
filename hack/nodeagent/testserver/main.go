// Command testserver stands in for the embedding server in the local cluster's
// tests: it takes the same listen flags, serves /healthz and /readyz on the
// admin address and answers every other path on the main address with who it
// is, and drains on SIGTERM (readyz 503, then exit) like the real server.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", ":8080", "API listen address")
	admin := flag.String("admin-addr", ":9090", "admin listen address")
	drain := flag.Duration("drain", 500*time.Millisecond, "how long to report not ready before exiting on SIGTERM")
	flag.Parse()

	var draining atomic.Bool
	api := http.NewServeMux()
	api.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "testserver pod=%s addr=%s secret=%d\n", os.Getenv("POD_NAME"), *addr, len(os.Getenv("EMBEDSERVER_API_KEY")))
	})
	adm := http.NewServeMux()
	adm.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	adm.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	servers := []*http.Server{{Addr: *addr, Handler: api}, {Addr: *admin, Handler: adm}}
	for _, s := range servers {
		go func() {
			if err := s.ListenAndServe(); err != nil && err != http.ErrServerClosed {
				fmt.Fprintln(os.Stderr, "testserver:", err)
				os.Exit(1)
			}
		}()
	}
	fmt.Println("testserver listening", *addr, *admin)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	fmt.Println("testserver draining")
	draining.Store(true)
	time.Sleep(*drain)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		_ = s.Shutdown(ctx)
	}
	fmt.Println("testserver stopped")
}
