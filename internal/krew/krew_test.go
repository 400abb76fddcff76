package krew

import (
	"strings"
	"testing"
)

const good = `apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: rag
spec:
  version: v0.1.0
  homepage: https://example.com/rag
  shortDescription: Drive canary rollouts
  description: |
    Longer words.
  platforms:
  - selector:
      matchLabels:
        os: linux
        arch: amd64
    uri: https://example.com/kubectl-rag_v0.1.0_linux_amd64.tar.gz
    sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    bin: kubectl-rag
    files:
    - from: kubectl-rag
      to: .
`

func TestValidateAcceptsAGoodManifest(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate("rag", p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.Platforms[0].Selector.MatchLabels["arch"] != "amd64" || p.Spec.Platforms[0].Files[0].To != "." {
		t.Errorf("decoded %+v", p.Spec.Platforms[0])
	}
}

// Each rule krew checks refuses a manifest that breaks it, naming the field.
func TestValidateRefuses(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, old, new, want string
		plugin               string // the name the manifest is checked for; "" = rag
	}{
		{"api version", "krew.googlecontainertools.github.com/v1alpha2", "index.krew.dev/v1alpha2", "apiVersion", ""},
		{"kind", "kind: Plugin", "kind: Receipt", "kind", ""},
		{"unsafe name", "name: rag", "name: rag/x", "not allowed", "rag/x"},
		{"windows name", "name: rag", "name: con", "not allowed", "con"},
		{"name differs from the file", "name: rag", "name: rug", "metadata.name", ""},
		{"no short description", "shortDescription: Drive canary rollouts", "shortDescription: \"\"", "shortDescription", ""},
		{"line break in short description", "shortDescription: Drive canary rollouts", "shortDescription: \"Drive\\ncanaries\"", "line break", ""},
		{"no version", "version: v0.1.0", "version: \"\"", "spec.version", ""},
		{"version without v", "version: v0.1.0", "version: 0.1.0", "does not start with v", ""},
		{"version not semantic", "version: v0.1.0", "version: v0.1", "spec.version", ""},
		{"no uri", "uri: https://example.com/kubectl-rag_v0.1.0_linux_amd64.tar.gz", "uri: \"\"", "uri", ""},
		{"no sha256", "sha256: " + sha, "sha256: \"\"", "sha256 is empty", ""},
		{"upper-case sha256", "sha256: " + sha, "sha256: " + strings.ToUpper(sha), "64 lowercase hex", ""},
		{"short sha256", "sha256: " + sha, "sha256: " + sha[:40], "64 lowercase hex", ""},
		{"no bin", "bin: kubectl-rag", "bin: \"\"", "bin", ""},
		{"empty files", "files:\n    - from: kubectl-rag\n      to: .", "files: []", "files is empty", ""},
		{"file without to", "      to: .", "      to: \"\"", "files[0]", ""},
		{"no selector", "  - selector:\n      matchLabels:\n        os: linux\n        arch: amd64\n    uri", "  - uri", "selector is missing", ""},
		{"unsupported selector key", "arch: amd64", "distro: debian", "distro", ""},
		{"unknown field", "bin: kubectl-rag", "bin: kubectl-rag\n    binary: kubectl-rag", "unknown field", ""},
		{"no platforms", good[strings.Index(good, "  platforms:"):], "  platforms: []\n", "spec.platforms is empty", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("the good manifest has no %q", tc.old)
			}
			name := tc.plugin
			if name == "" {
				name = "rag"
			}
			p, err := Parse([]byte(strings.Replace(good, tc.old, tc.new, 1)))
			if err == nil {
				err = Validate(name, p)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}
