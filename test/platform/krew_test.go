package platform

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ragops/rag-operator/internal/krew"
)

const releaseMk = root + "/hack/make/release.mk"

// make release builds the six platforms krew users need.
func TestReleasePlatforms(t *testing.T) {
	m := regexp.MustCompile(`(?m)^RELEASE_PLATFORMS := (.+)$`).FindSubmatch(readFile(t, releaseMk))
	if m == nil {
		t.Fatalf("no RELEASE_PLATFORMS in %s", releaseMk)
	}
	got := strings.Fields(string(m[1]))
	slices.Sort(got)
	want := []string{"darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64", "windows/amd64", "windows/arm64"}
	if !slices.Equal(got, want) {
		t.Errorf("RELEASE_PLATFORMS %v, want %v", got, want)
	}
}

// release runs the release generator for one platform into a new directory.
func release(t *testing.T, platform string) string {
	t.Helper()
	gen, err := buildBinary("./hack/release")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(gen, "--version", "v0.1.0", "--platforms", platform, "--template", "plugins/rag.yaml", "--out", out)
	cmd.Dir = root
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "SOURCE_DATE_EPOCH=") })
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/release: %v\n%s", err, b)
	}
	return out
}

// One platform of a real release, built as make release builds all four
// (the other three are the same code with another GOOS/GOARCH, and take two
// more minutes of cross-compiling): the manifest is one krew accepts, its
// sha256 is the tarball's, the tarball holds the executable it names, and a
// second build gives the same bytes, so a checksum published once stays true.
func TestKrewManifestOfARelease(t *testing.T) {
	out := release(t, "linux/amd64")
	const archive = "kubectl-rag_v0.1.0_linux_amd64.tar.gz"

	p, err := krew.Parse(readFile(t, filepath.Join(out, "rag.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if err := krew.Validate("rag", p); err != nil {
		t.Fatalf("krew would refuse the manifest: %v", err)
	}
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" || p.Spec.Version != "v0.1.0" {
		t.Errorf("manifest %s %s version %s", p.APIVersion, p.Kind, p.Spec.Version)
	}
	if len(p.Spec.Platforms) != 1 {
		t.Fatalf("%d platforms, want the one built", len(p.Spec.Platforms))
	}
	pl := p.Spec.Platforms[0]
	if ml := pl.Selector.MatchLabels; len(ml) != 2 || ml["os"] != "linux" || ml["arch"] != "amd64" {
		t.Errorf("selector %+v", pl.Selector)
	}
	if want := "https://github.com/ragops/rag-operator/releases/download/v0.1.0/" + archive; pl.URI != want {
		t.Errorf("uri %s, want %s", pl.URI, want)
	}
	tarball := readFile(t, filepath.Join(out, archive))
	sum := sha256.Sum256(tarball)
	if hex.EncodeToString(sum[:]) != pl.Sha256 {
		t.Errorf("manifest sha256 %s, tarball's %x", pl.Sha256, sum)
	}
	sumLine := hex.EncodeToString(sum[:]) + "  " + archive + "\n"
	if got := string(readFile(t, filepath.Join(out, archive+".sha256"))); got != sumLine {
		t.Errorf("%s.sha256: %q, want %q", archive, got, sumLine)
	}
	if got := string(readFile(t, filepath.Join(out, "checksums.txt"))); got != sumLine {
		t.Errorf("checksums.txt: %q, want %q", got, sumLine)
	}

	// What krew installs: the files entries and the bin exist in the archive,
	// the bin is an executable for the platform, and it runs.
	entries := untar(t, tarball)
	for _, f := range pl.Files {
		if _, ok := entries[f.From]; !ok {
			t.Errorf("files: %s is not in the archive (%v)", f.From, keys(entries))
		}
	}
	if lic, ok := entries["LICENSE"]; !ok || !bytes.Equal(lic.data, readFile(t, root+"/LICENSE")) {
		t.Errorf("the archive does not carry the project's LICENSE (krew's index requires one): %v", keys(entries))
	}
	exe, ok := entries[pl.Bin]
	if !ok {
		t.Fatalf("bin %s is not in the archive (%v)", pl.Bin, keys(entries))
	}
	if exe.mode&0o111 == 0 {
		t.Errorf("%s has mode %o, not executable", pl.Bin, exe.mode)
	}
	f, err := elf.NewFile(bytes.NewReader(exe.data))
	if err != nil || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		t.Fatalf("%s is not a linux/amd64 executable: %v %v", pl.Bin, err, f)
	}
	bin := filepath.Join(t.TempDir(), pl.Bin)
	if err := os.WriteFile(bin, exe.data, 0o755); err != nil {
		t.Fatal(err)
	}
	if help, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(help), "promote") {
		t.Errorf("the packaged kubectl-rag --help: %v\n%s", err, help)
	}

	if again := readFile(t, filepath.Join(release(t, "linux/amd64"), archive)); !bytes.Equal(again, tarball) {
		t.Error("a second build of the same sources gives another tarball: its published sha256 would not hold")
	}
}

type tarEntry struct {
	mode int64
	data []byte
}

func untar(t *testing.T, tgz []byte) map[string]tarEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]tarEntry{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = tarEntry{mode: h.Mode, data: data}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
