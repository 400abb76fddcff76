// Package kubectlrag is the logic of the kubectl-rag plugin: a readable view of a
// RAGService's rollout, a status a CI pipeline can wait on, and the manual
// controls (promote, abort, retry, pause, resume) written as the operator expects
// them: command annotations carrying tokens, and spec.rollout.paused.
package kubectlrag

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/version"
)

// FieldManager names kubectl-rag's writes in managedFields.
const FieldManager = "kubectl-rag"

// Run executes kubectl-rag with args (without the program name) and returns the
// process exit code. Errors go to streams.ErrOut.
func Run(ctx context.Context, args []string, streams genericiooptions.IOStreams) int {
	cmd := NewCommand(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
	}
	return ExitCode(err)
}

// options are shared by every subcommand.
type options struct {
	streams genericiooptions.IOStreams
	flags   *genericclioptions.ConfigFlags
}

// NewCommand builds the root command with the standard kubeconfig flags.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{streams: streams, flags: genericclioptions.NewConfigFlags(true)}
	root := &cobra.Command{
		Use:   "kubectl-rag",
		Short: "Inspect and drive RAGService rollouts",
		Long: `kubectl rag shows where a RAGService's rollout stands and drives it.

  kubectl rag status NAME [--watch] [--timeout 10m]   where a rollout stands; wait for it in CI
  kubectl rag promote [--full]|abort|retry NAME       command tokens the operator acts on once each
  kubectl rag accept-space NAME                       accept the space stable serves after a drift (a token)
  kubectl rag pause|resume NAME                       spec.rollout.paused
  kubectl rag history NAME                            revisions, results and reasons
  kubectl rag list [-A]
  status, list and history print json or yaml with -o.

Exit codes:
  0  done; for status, Healthy at the current generation
  1  status: RolledBack, Degraded or Stalled at the current generation
  2  status --watch: --timeout reached before the rollout ended
  3  status without --watch: the rollout is still in progress
  4  usage error, object not found, or the API server refused`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.Version,
		// Help and usage read "kubectl rag", as users type it.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl rag"},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	// Wrong flags or arguments are usage errors, with their own exit code.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return withCode(ExitError, "%w", err)
	})
	o.flags.AddFlags(root.PersistentFlags())
	// --version has no shorthand: kubectl users type -v=6 for verbosity, which
	// is what -v is here too (client-go's request logs go to stderr).
	root.Flags().Bool("version", false, "print the version of kubectl rag")
	root.PersistentFlags().AddFlag(verbosityFlag())

	root.AddCommand(
		newStatusCommand(o),
		newAnnotateCommand(o, "promote", ragv1.AnnotationPromote,
			"Move the canary past its current step (a pause, or a setWeight's wait); --full skips every remaining step"),
		newAnnotateCommand(o, "abort", ragv1.AnnotationAbort,
			"Abort the canary: remove its pods at once and mark the service RolledBack"),
		newAnnotateCommand(o, "retry", ragv1.AnnotationRetry,
			"Retry a rolled-back revision without changing the spec"),
		newAnnotateCommand(o, "accept-space", ragv1.AnnotationAcceptSpace,
			"Accept the vector space stable serves now as the one the space watch compares with (ends a SpaceDrifted)"),
		newPauseCommand(o, "pause", true, "Hold the rollout where it is (spec.rollout.paused: true)"),
		newPauseCommand(o, "resume", false, "Let a paused rollout continue (spec.rollout.paused: false)"),
		newHistoryCommand(o),
		newListCommand(o),
	)
	return root
}

// verbosityFlag is klog's -v, as kubectl has it: -v=6 logs each API request.
func verbosityFlag() *pflag.Flag {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	f := pflag.PFlagFromGoFlag(fs.Lookup("v"))
	f.Shorthand = "v"
	f.Usage = "log level: 6 logs each API request, 8 with its body (as kubectl -v)"
	return f
}

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{ragv1.AddToScheme, appsv1.AddToScheme, corev1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("build scheme: %w", err)
		}
	}
	return s, nil
}

// client connects with the kubeconfig flags and returns the namespace to work in.
func (o *options) client() (client.WithWatch, string, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("resolve namespace: %w", err)
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, "", err
	}
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, "", fmt.Errorf("connect to the API server: %w", err)
	}
	return c, ns, nil
}

// exactlyOneName is the Args check of the commands that act on one RAGService.
func exactlyOneName(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return withCode(ExitError, "expected exactly one RAGService name, got %d arguments", len(args))
	}
	return nil
}

// getService reads a RAGService, with an error a user understands.
func getService(ctx context.Context, c client.Client, ns, name string) (*ragv1.RAGService, error) {
	svc := &ragv1.RAGService{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
		return nil, fmt.Errorf("get ragservice %s/%s: %w", ns, name, err)
	}
	return svc, nil
}

var errDeleted = errors.New("ragservice was deleted")
