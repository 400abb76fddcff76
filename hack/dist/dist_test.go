package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsImage(t *testing.T) {
	for _, tc := range []struct {
		ref, name string
		want      bool
	}{
		{"ragops/manager:0.1.0", "manager", true},
		{"registry.example.com:5000/team/manager@sha256:abc", "manager", true},
		{"manager", "manager", true},
		{"localhost:5000/manager", "manager", true},
		{"ragops/embedserver:0.1.0", "manager", false},
		{"ragops/manager-proxy:1", "manager", false},
		{"localhost:5000/notmanager", "manager", false},
	} {
		if got := isImage(tc.ref, tc.name); got != tc.want {
			t.Errorf("isImage(%q, %q) = %v, want %v", tc.ref, tc.name, got, tc.want)
		}
	}
}

// pinValues sets both images to the release's repository and digest, clears
// the tag, and keeps every comment a user reads in values.yaml.
func TestPinValues(t *testing.T) {
	values, err := os.ReadFile("../../charts/rag-operator/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const m, e = "sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	out, err := pinValues(string(values), "registry.example.com/ragops/", map[string]string{"manager": m, "embedserver": e})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"repository: registry.example.com/ragops/manager\n", `digest: "` + m + `"`, "repository: registry.example.com/ragops/embedserver\n", `digest: "` + e + `"`,
		"# Manager replicas.", "pullPolicy: IfNotPresent"} {
		if !strings.Contains(out, want) {
			t.Errorf("pinned values lack %q:\n%s", want, out)
		}
	}
	// kyaml drops blank lines; every other line (comments included) stays.
	if got, was := nonBlank(out), nonBlank(string(values)); got != was {
		t.Errorf("pinned values have %d non-blank lines, values.yaml %d", got, was)
	}
	if _, err := pinValues("replicaCount: 1\n", "r", map[string]string{"manager": m, "embedserver": e}); err == nil || !strings.Contains(err.Error(), "image") {
		t.Errorf("values without image: %v", err)
	}
}

func TestChecksumsSkipBlobs(t *testing.T) {
	dir := t.TempDir()
	for p, data := range map[string]string{
		"install.yaml": "a", "images/digests.txt": "b", "images/manager/index.json": "c",
		"images/manager/blobs/sha256/aa": "d", "release/x.tar.gz.sha256": "e", "checksums.txt": "old",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lines, err := checksums(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(lines, "")
	want := "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d  images/digests.txt\n" +
		"2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6  images/manager/index.json\n" +
		"ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb  install.yaml\n"
	if got != want {
		t.Errorf("checksums:\n%s\nwant\n%s", got, want)
	}
}

func nonBlank(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}
