// Command dist assembles the parts of a release that make release puts into
// dist/ beside the kubectl-rag archives (hack/release), and pushes them:
//
//	go run ./hack/dist images   --version 0.2.0 --out dist/images          # manager and embedserver, linux/amd64 + linux/arm64, OCI layouts
//	go run ./hack/dist chart    --version 0.2.0 --repo R --images dist/images --out dist   # the chart, images pinned by digest
//	go run ./hack/dist install  --version 0.2.0 --repo R --images dist/images --out dist/install.yaml   # kustomize's install, pinned the same
//	go run ./hack/dist checksums --dir dist                                 # dist/checksums.txt
//	go run ./hack/dist push     --version 0.2.0 --registry R --dist dist   # images and chart to any OCI registry
//
// Everything it builds is reproducible: the same sources, Go and flags give
// the same bytes and digests (no timestamps but SOURCE_DATE_EPOCH's, -trimpath,
// no build id).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

const usage = "usage: dist images|chart|install|checksums|push [flags] (-h for each)"

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "images":
		return runImages(ctx, args)
	case "chart":
		return runChart(ctx, args)
	case "install":
		return runInstall(args)
	case "checksums":
		return runChecksums(args)
	case "push":
		return runPush(ctx, args)
	}
	return fmt.Errorf("unknown command %q; %s", cmd, usage)
}

// newFlags is a flag set that reports errors instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("dist "+name, flag.ContinueOnError)
	return fs
}

// required fails naming the first empty flag.
func required(flags map[string]string) error {
	var missing []string
	for name, v := range flags {
		if v == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(sortStrings(missing), ", "))
	}
	return nil
}
