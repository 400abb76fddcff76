package ociimage_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ragops/rag-operator/internal/ociimage"
)

// buildTiny compiles a real static binary, as make images does.
func buildTiny(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() { println(\"hello from the image\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tiny")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build tiny binary: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBuildWriteReadBack(t *testing.T) {
	bin := buildTiny(t)
	img, err := ociimage.Build(ociimage.Spec{
		Name: "manager", Binary: bin, Version: "1.2.3", Source: "https://github.com/ragops/rag-operator",
		Description: "the operator", CACerts: []byte("-----BEGIN CERTIFICATE-----\n"), Arch: runtime.GOARCH,
	})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "manager.tar")
	if err := ociimage.WriteTarball(out, "ragops/manager:1.2.3", img); err != nil {
		t.Fatal(err)
	}

	tag, err := name.NewTag("ragops/manager:1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	back, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("read the tarball back: %v", err)
	}
	cfg, err := back.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/manager" {
		t.Errorf("entrypoint %v, want [/manager]", got)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cfg.Config.User)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cfg.OS, cfg.Architecture)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.source":  "https://github.com/ragops/rag-operator",
		"org.opencontainers.image.version": "1.2.3",
		"org.opencontainers.image.title":   "manager",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cfg.Created.IsZero() {
		t.Errorf("created %v, want the zero time for a reproducible build", cfg.Created)
	}
	// The built image is OCI; the tarball (docker save format) keeps its layers and config.
	if mt, err := img.MediaType(); err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s (%v), want OCI", mt, err)
	}
	wantDigest, _ := img.ConfigName()
	if gotDigest, _ := back.ConfigName(); gotDigest != wantDigest {
		t.Errorf("config digest read back %s, built %s", gotDigest, wantDigest)
	}

	layers, err := back.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	contents := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], contents[h.Name] = h, data
	}
	h, ok := files["manager"]
	if !ok {
		t.Fatalf("no /manager in the layer; files: %v", keys(files))
	}
	if h.FileInfo().Mode().Perm() != 0o755 || !h.FileInfo().Mode().IsRegular() {
		t.Errorf("/manager mode %v, want -rwxr-xr-x", h.FileInfo().Mode())
	}
	if !bytes.Equal(contents["manager"], bin) {
		t.Error("/manager in the layer differs from the binary")
	}
	if !strings.Contains(string(contents["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the nonroot user:\n%s", contents["etc/passwd"])
	}
	if _, ok := files["etc/ssl/certs/ca-certificates.crt"]; !ok {
		t.Error("CA certificates missing")
	}
	if h := files["home/nonroot/"]; h == nil || h.Uid != 65532 {
		t.Errorf("home of nonroot missing or not owned by 65532: %+v", h)
	}
}

// Two builds of the same input give the same digest: images are reproducible.
func TestBuildReproducible(t *testing.T) {
	spec := ociimage.Spec{Name: "embedserver", Binary: []byte("\x7fELF not really"), Version: "0.1.0", Arch: "amd64"}
	a, err := ociimage.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ociimage.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("digests differ: %s vs %s", da, db)
	}
}

func TestBuildRefusesBadSpecs(t *testing.T) {
	for _, s := range []ociimage.Spec{
		{Name: "", Binary: []byte("x"), Arch: "amd64"},
		{Name: "bin/manager", Binary: []byte("x"), Arch: "amd64"},
		{Name: "manager", Arch: "amd64"},
		{Name: "manager", Binary: []byte("x")},
		{Name: "manager", Binary: []byte("x"), Arch: "amd64", Files: map[string][]byte{"../etc/shadow": nil}},
		{Name: "manager", Binary: []byte("x"), Arch: "amd64", Files: map[string][]byte{"/licenses/LICENSE": nil}},
		{Name: "manager", Binary: []byte("x"), Arch: "amd64", Files: map[string][]byte{"licenses//LICENSE": nil}},
	} {
		if _, err := ociimage.Build(s); err == nil {
			t.Errorf("Build(%+v) succeeded", s)
		}
	}
}

// An index of two platforms written as an OCI layout reads back with the
// same digest, each manifest naming its platform; the extra files (the
// licences) are in every image's layer, and two builds give the same index.
func TestIndexLayoutRoundTrip(t *testing.T) {
	build := func() v1.ImageIndex {
		var imgs []v1.Image
		for _, arch := range []string{"amd64", "arm64"} {
			img, err := ociimage.Build(ociimage.Spec{
				Name: "embedserver", Binary: []byte("binary for " + arch), Version: "0.2.0", Arch: arch,
				Files: map[string][]byte{"licenses/LICENSE": []byte("Apache-2.0"), "licenses/third_party/k8s.io/api/LICENSE": []byte("Apache-2.0 too")},
			})
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, img)
		}
		idx, err := ociimage.Index(imgs...)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	idx := build()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := ociimage.WriteLayout(dir, idx); err != nil {
		t.Fatal(err)
	}
	back, err := ociimage.ReadLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	got, _ := back.Digest()
	if got != want {
		t.Errorf("index digest read back %s, built %s", got, want)
	}
	if again, _ := build().Digest(); again != want {
		t.Errorf("a second build's index digest %s, first %s", again, want)
	}
	im, err := back.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	for i, arch := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != arch {
			t.Errorf("manifest %d platform %+v, want linux/%s", i, d.Platform, arch)
		}
		img, err := back.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("layers: %d, %v", len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names[h.Name] = true
		}
		rc.Close()
		for _, n := range []string{"licenses/", "licenses/LICENSE", "licenses/third_party/", "licenses/third_party/k8s.io/api/", "licenses/third_party/k8s.io/api/LICENSE", "embedserver"} {
			if !names[n] {
				t.Errorf("%s image: no %s in the layer", arch, n)
			}
		}
	}
}

func TestIndexRefusesTwoImagesOfOnePlatform(t *testing.T) {
	a, err := ociimage.Build(ociimage.Spec{Name: "manager", Binary: []byte("a"), Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ociimage.Build(ociimage.Spec{Name: "manager", Binary: []byte("b"), Arch: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ociimage.Index(a, b); err == nil || !strings.Contains(err.Error(), "linux/amd64") {
		t.Errorf("Index of two amd64 images: %v, want an error naming linux/amd64", err)
	}
	if _, err := ociimage.Index(); err == nil {
		t.Error("Index of no image succeeded")
	}
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
