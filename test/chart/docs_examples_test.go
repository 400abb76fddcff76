package chart_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// docsExamples are the manifests the docs tell readers to apply: GitOps
// (docs/operations.md), autoscaling (docs/operations.md), security
// (docs/security.md) and providers (docs/providers.md).
const docsExamples = root + "/docs/examples"

// writeKubeconfig adds an admin to env and writes its kubeconfig into dir.
func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.AddUser(envtest.User{Name: "docs-reader", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("adding a user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

// TestDocsExamplesDryRunApply applies every manifest under docs/examples as a
// reader would, `kubectl apply --server-side --dry-run=server`, with strict
// field validation (kubectl's default): the RAGService schema and its CEL
// rules, the built-in kinds (HPA, NetworkPolicy, ValidatingAdmissionPolicy,
// ConfigMap) and the GitOps tools' kinds (stand-in CRDs in
// testdata/gitops-crds) all check them; nothing is stored.
func TestDocsExamplesDryRunApply(t *testing.T) {
	var files []string
	err := filepath.WalkDir(docsExamples, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d manifests under %s: %v", len(files), docsExamples, files)
	}
	// The namespaces the examples name exist for real (a dry-run namespace holds nothing).
	for _, ns := range []string{"search", "argocd", "flux-system", "rag-operator-system", "monitoring"} {
		ensureNamespace(t, ns)
	}
	for _, f := range files {
		name, _ := filepath.Rel(docsExamples, f)
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "--dry-run=server",
				"--validate=strict", "--field-manager=docs-reader", "-f", f)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply --server-side --dry-run=server -f %s: %v\n%s", name, err, out)
			}
			if strings.Contains(strings.ToLower(string(out)), "warning") {
				t.Errorf("kubectl warned on %s:\n%s", name, out)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
		})
	}
}
