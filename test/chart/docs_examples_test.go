package chart_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/ragops/rag-operator/internal/testsupport/poll"
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

// TestDocsAdmissionPolicyRefuses installs the ValidatingAdmissionPolicy of
// docs/security.md for real and checks that it does what the page says: a
// RAGService with another image, another service account or another
// Prometheus address is refused with the policy's message; one within the
// lists is admitted.
func TestDocsAdmissionPolicyRefuses(t *testing.T) {
	ensureNamespace(t, "search")
	policy := docsExamples + "/security/admission-policy.yaml"
	kubectl := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := kubectl("", "apply", "--server-side", "--field-manager=docs-reader", "-f", policy); err != nil {
		t.Fatalf("installing %s: %v\n%s", policy, err, out)
	}
	t.Cleanup(func() { _, _ = kubectl("", "delete", "--ignore-not-found", "-f", policy) })

	svc := func(extra string) string {
		return `apiVersion: rag.ragops.io/v1alpha1
kind: RAGService
metadata: {name: docs, namespace: search}
spec:
  embedding: {provider: builtin, model: hash-384}
` + extra
	}
	const allowed = `  image: registry.example.com/ragops/embedserver:0.1.0
  pod: {serviceAccountName: default}
  rollout:
    analysis: {provider: Prometheus, prometheus: {address: "http://prometheus-operated.monitoring:9090"}}
`
	cases := []struct {
		name, spec, refusal string
	}{
		{"another image", "  image: attacker.example/miner:1\n", "spec.image must come from registry.example.com/ragops/embedserver"},
		{"another service account", "  pod: {serviceAccountName: cluster-admin-sa}\n", "spec.pod.serviceAccountName may not name another service account"},
		{"another Prometheus", "  rollout:\n    analysis: {provider: Prometheus, prometheus: {address: \"http://169.254.169.254\"}}\n",
			"spec.rollout.analysis.prometheus.address must be one of the cluster's Prometheus servers"},
	}
	// A policy takes effect a moment after it is created: wait until the
	// first refusal shows, then check every case once.
	poll.UntilSaw(t, fmt.Sprintf("the policy to refuse %q", cases[0].name), func() (bool, string) {
		out, err := kubectl(svc(cases[0].spec), "apply", "--server-side", "--dry-run=server", "-f", "-")
		return err != nil && strings.Contains(out, cases[0].refusal), fmt.Sprintf("%v\n%s", err, out)
	})
	for _, c := range cases {
		out, err := kubectl(svc(c.spec), "apply", "--server-side", "--dry-run=server", "-f", "-")
		if err == nil || !strings.Contains(out, c.refusal) {
			t.Errorf("%s: want a refusal naming %q, got err=%v\n%s", c.name, c.refusal, err, out)
		}
	}
	if out, err := kubectl(svc(allowed), "apply", "--server-side", "--dry-run=server", "-f", "-"); err != nil {
		t.Errorf("a RAGService within the policy's lists was refused: %v\n%s", err, out)
	}
}
