package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/ragops/rag-operator/internal/kubectlrag"
	"github.com/ragops/rag-operator/internal/testsupport/golden"
)

// The help texts are what users read first: each is kept in testdata and a
// change shows in review. None needs a cluster.
func TestHelpTexts(t *testing.T) {
	// The cache directory's default is under $HOME: the same on every machine here.
	t.Setenv("HOME", "/home/user")
	for _, tc := range []struct{ name, args string }{
		{"help", "--help"},
		{"help-status", "status --help"},
		{"help-list", "list --help"},
		{"help-history", "history --help"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := kubectlrag.Run(context.Background(), strings.Fields(tc.args), genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
			if code != kubectlrag.ExitOK || errOut.Len() > 0 {
				t.Fatalf("exit %d, stderr %q", code, errOut.String())
			}
			golden.Check(t, tc.name, out.Bytes())
		})
	}
}

// The root help names every exit code of the contract.
func TestRootHelpListsEveryExitCode(t *testing.T) {
	var out bytes.Buffer
	kubectlrag.Run(context.Background(), []string{"--help"}, genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	for _, code := range []int{kubectlrag.ExitOK, kubectlrag.ExitFailed, kubectlrag.ExitTimeout, kubectlrag.ExitProgressing, kubectlrag.ExitError} {
		if !strings.Contains(out.String(), "\n  "+string(rune('0'+code))+"  ") {
			t.Errorf("root help does not list exit code %d:\n%s", code, out.String())
		}
	}
}

// --version prints the version; -v is verbosity (kubectl's -v=6), not the version.
func TestVersionAndVerbosity(t *testing.T) {
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}
	if code := kubectlrag.Run(context.Background(), []string{"--version"}, streams); code != 0 || !strings.HasPrefix(out.String(), "kubectl rag version ") {
		t.Fatalf("--version: exit %d, %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	// -v=6 is accepted as verbosity; with no kubeconfig the command then fails on
	// the kubeconfig, never prints the version.
	code := kubectlrag.Run(context.Background(), []string{"list", "-v=6", "--kubeconfig=/nonexistent/kubeconfig"}, streams)
	if code != kubectlrag.ExitError || strings.Contains(out.String(), "version") || !strings.Contains(errOut.String(), "kubeconfig") {
		t.Fatalf("list -v=6: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
}
