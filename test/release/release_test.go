// Package release_test checks a release end to end as a platform team would
// use it: the images of both platforms built, the chart and the install
// manifest pinned to their digests, all pushed to an OCI registry (go-
// containerregistry's, in process, on loopback), pulled back, and the amd64
// images' binaries run from their extracted layers. make test-release runs it
// (HELM names the helm binary).
package release_test

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const version = "9.8.7-test.1"

var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}()

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repoRoot
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Fatal("HELM is not set: run `make test-release`, which builds helm into ./bin and sets HELM")
	}
	return h
}

func buildDist(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dist")
	run(t, "go", "build", "-o", bin, "./hack/dist")
	return bin
}

func images(t *testing.T, dist, out string) map[string]string {
	t.Helper()
	run(t, dist, "images", "--version", version, "--platforms", "linux/amd64,linux/arm64", "--out", out,
		"--ldflags", "-X github.com/ragops/rag-operator/internal/version.Version="+version)
	digests := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(read(t, filepath.Join(out, "digests.txt")))), "\n") {
		n, d, _ := strings.Cut(line, " ")
		digests[n] = d
	}
	if len(digests) != 2 || digests["manager"] == "" || digests["embedserver"] == "" {
		t.Fatalf("digests.txt: %v", digests)
	}
	return digests
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReleaseRoundTrip(t *testing.T) {
	helm := helmBin(t)
	dist := buildDist(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://") + "/ragops"

	dir := t.TempDir()
	digests := images(t, dist, filepath.Join(dir, "images"))
	// Reproducible: a second build of the same sources gives the same digests.
	if again := images(t, dist, filepath.Join(t.TempDir(), "images")); again["manager"] != digests["manager"] || again["embedserver"] != digests["embedserver"] {
		t.Errorf("a second build gives other digests: %v, first %v", again, digests)
	}
	run(t, dist, "chart", "--version", version, "--repo", reg, "--images", filepath.Join(dir, "images"), "--helm", helm, "--out", dir)
	run(t, dist, "install", "--repo", reg, "--images", filepath.Join(dir, "images"), "--out", filepath.Join(dir, "install.yaml"))
	run(t, dist, "checksums", "--dir", dir)
	sums := string(read(t, filepath.Join(dir, "checksums.txt")))
	for _, f := range []string{"rag-operator-" + version + ".tgz", "install.yaml", "images/digests.txt", "images/manager/index.json"} {
		if !strings.Contains(sums, "  "+f+"\n") {
			t.Errorf("checksums.txt lacks %s:\n%s", f, sums)
		}
	}
	if strings.Contains(sums, "/blobs/") {
		t.Errorf("checksums.txt lists content-addressed blobs:\n%s", sums)
	}

	install := string(read(t, filepath.Join(dir, "install.yaml")))
	for _, want := range []string{"image: " + reg + "/manager@" + digests["manager"], "--embedserver-image=" + reg + "/embedserver@" + digests["embedserver"]} {
		if !strings.Contains(install, want) {
			t.Errorf("install.yaml lacks %q", want)
		}
	}

	out := run(t, dist, "push", "--version", version, "--registry", reg, "--dist", dir)
	t.Log(out)

	// The images: an index of both platforms at the release's digest, and the
	// amd64 binaries run from the pulled layers.
	for _, b := range []string{"manager", "embedserver"} {
		ref, err := name.ParseReference(reg + "/" + b + ":" + version)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref)
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		if d, _ := idx.Digest(); d.String() != digests[b] {
			t.Errorf("%s pulled as %s, released as %s", ref, d, digests[b])
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		byArch := map[string]v1.Hash{}
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.OS == "linux" {
				byArch[m.Platform.Architecture] = m.Digest
			}
		}
		if len(im.Manifests) != 2 || byArch["amd64"] == (v1.Hash{}) || byArch["arm64"] == (v1.Hash{}) {
			t.Fatalf("%s: manifests %+v, want linux/amd64 and linux/arm64", ref, im.Manifests)
		}
		for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
			img, err := idx.Image(byArch[arch])
			if err != nil {
				t.Fatal(err)
			}
			root := extract(t, img)
			exe := filepath.Join(root, b)
			f, err := elf.Open(exe)
			if err != nil || f.Machine != machine {
				t.Fatalf("%s %s: /%s is not a %v executable: %v", ref, arch, b, machine, err)
			}
			f.Close()
			if lic := read(t, filepath.Join(root, "licenses", "LICENSE")); !bytes.Equal(lic, read(t, filepath.Join(repoRoot, "LICENSE"))) {
				t.Errorf("%s %s: /licenses/LICENSE is not the project's licence", ref, arch)
			}
			if arch != runtime.GOARCH {
				continue
			}
			if got := run(t, exe, "--version"); !strings.Contains(got, version) {
				t.Errorf("%s %s: /%s --version printed %q, want the release's version %s", ref, arch, b, got, version)
			}
		}
	}

	// The chart: pulled as helm pulls it, it renders both images pinned to
	// what was pushed.
	pulled := t.TempDir()
	run(t, helm, "pull", "oci://"+reg+"/charts/rag-operator", "--version", version, "--plain-http", "--destination", pulled)
	tgz := filepath.Join(pulled, "rag-operator-"+version+".tgz")
	rendered := run(t, helm, "template", "rag", tgz)
	for _, want := range []string{`image: "` + reg + "/manager@" + digests["manager"] + `"`, "--embedserver-image=" + reg + "/embedserver@" + digests["embedserver"]} {
		if !strings.Contains(rendered, want) {
			t.Errorf("the pulled chart renders no %q", want)
		}
	}
	if files := run(t, "tar", "-tzf", tgz); !strings.Contains(files, "rag-operator/LICENSE\n") {
		t.Errorf("the chart carries no LICENSE:\n%s", files)
	}
	// Reproducible too: the same chart packaged again, seconds after the
	// first (helm stamps each entry with the clock), is the pushed bytes.
	again := t.TempDir()
	run(t, dist, "chart", "--version", version, "--repo", reg, "--images", filepath.Join(dir, "images"), "--helm", helm, "--out", again)
	if a, b := read(t, filepath.Join(again, "rag-operator-"+version+".tgz")), read(t, tgz); !bytes.Equal(a, b) {
		t.Errorf("the chart packaged again is not the pushed one: %d bytes against %d", len(a), len(b))
	}

	// A chart built for another registry is refused before anything is pushed.
	other := t.TempDir()
	if err := os.CopyFS(filepath.Join(other, "images"), os.DirFS(filepath.Join(dir, "images"))); err != nil {
		t.Fatal(err)
	}
	run(t, dist, "chart", "--version", version, "--repo", "elsewhere.example.com/ragops", "--images", filepath.Join(other, "images"), "--helm", helm, "--out", other)
	cmd := exec.Command(dist, "push", "--version", version, "--registry", reg, "--dist", other)
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "elsewhere.example.com/ragops/manager") {
		t.Errorf("push of a chart pinned to another registry: %v\n%s", err, b)
	}
}

// extract unpacks the image's layers into a new directory.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, filepath.FromSlash(h.Name))
			if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
				t.Fatalf("layer entry %q escapes the root", h.Name)
			}
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(p, 0o755); err != nil {
					t.Fatal(err)
				}
			case tar.TypeReg:
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				data, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, data, os.FileMode(h.Mode)&0o755|0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	return dir
}
