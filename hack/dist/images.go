package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ragops/rag-operator/internal/ociimage"
	"github.com/ragops/rag-operator/internal/release"
)

// imageBinaries are the release's images: one binary each, its package and
// what the image is.
var imageBinaries = []struct{ name, pkg, desc string }{
	{"manager", "./cmd/manager", "ragops operator: reconciles RAGServices"},
	{"embedserver", "./cmd/embedserver", "ragops bounded-concurrency embedding server"},
}

// digestsFile lists each image's index digest, one "name digest" per line.
const digestsFile = "digests.txt"

func runImages(ctx context.Context, args []string) error {
	fs := newFlags("images")
	version := fs.String("version", "", "release version, e.g. 0.2.0")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "platforms of each image, comma separated")
	out := fs.String("out", "dist/images", "directory for one OCI layout per image and "+digestsFile)
	ldflags := fs.String("ldflags", "", "extra -ldflags for go build (the version: -X .../version.Version=...)")
	license := fs.String("license", "LICENSE", "the project's licence, put at /licenses/LICENSE")
	thirdParty := fs.String("third-party-licenses", "", "directory of the dependencies' licences (go-licenses save), put under /licenses/third_party; empty: none")
	source := fs.String("source", "https://github.com/ragops/rag-operator", "org.opencontainers.image.source")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle installed in the images; empty: none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := required(map[string]string{"version": *version, "out": *out, "license": *license}); err != nil {
		return err
	}
	created, err := release.SourceDate()
	if err != nil {
		return err
	}
	files, err := licenseFiles(*license, *thirdParty)
	if err != nil {
		return err
	}
	var certs []byte
	if *caCerts != "" {
		if certs, err = os.ReadFile(*caCerts); err != nil {
			return fmt.Errorf("CA certificates: %w", err)
		}
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "dist-images")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var digests strings.Builder
	for _, b := range imageBinaries {
		var imgs []v1.Image
		for _, p := range plats {
			bin := filepath.Join(tmp, b.name+"-"+p.OS+"-"+p.Architecture)
			if err := goBuild(ctx, b.pkg, bin, p, *ldflags); err != nil {
				return err
			}
			data, err := os.ReadFile(bin)
			if err != nil {
				return err
			}
			img, err := ociimage.Build(ociimage.Spec{Name: b.name, Binary: data, Version: *version, Source: *source,
				Title: b.name, Description: b.desc, CACerts: certs, Arch: p.Architecture, Created: created, Files: files})
			if err != nil {
				return err
			}
			imgs = append(imgs, img)
		}
		idx, err := ociimage.Index(imgs...)
		if err != nil {
			return err
		}
		dir := filepath.Join(*out, b.name)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := ociimage.WriteLayout(dir, idx); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(&digests, "%s %s\n", b.name, d)
		fmt.Printf("%s %s (%s)\n", dir, d, *platforms)
	}
	return os.WriteFile(filepath.Join(*out, digestsFile), []byte(digests.String()), 0o644)
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		os, arch, ok := strings.Cut(p, "/")
		if !ok || os != "linux" || arch == "" {
			return nil, fmt.Errorf("platform %q: want linux/<arch>", p)
		}
		out = append(out, v1.Platform{OS: os, Architecture: arch})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platform in %q", s)
	}
	return out, nil
}

// goBuild cross-compiles a static binary without anything that varies between
// builds (paths, VCS stamps, build ids), so images are reproducible.
func goBuild(ctx context.Context, pkg, out string, p v1.Platform, ldflags string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", strings.TrimSpace("-s -w -buildid= "+ldflags), "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w", pkg, p.OS, p.Architecture, err)
	}
	return nil
}

// licenseFiles is the licences every image and archive carries: the
// project's, and the dependencies' as go-licenses saved them.
func licenseFiles(license, thirdParty string) (map[string][]byte, error) {
	data, err := os.ReadFile(license)
	if err != nil {
		return nil, fmt.Errorf("licence: %w", err)
	}
	files := map[string][]byte{"licenses/LICENSE": data}
	if thirdParty == "" {
		return files, nil
	}
	err = filepath.WalkDir(thirdParty, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(thirdParty, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files["licenses/third_party/"+filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("third-party licences: %w", err)
	}
	if len(files) == 1 {
		return nil, fmt.Errorf("third-party licences: no file under %s", thirdParty)
	}
	return files, nil
}

// readDigests reads digests.txt back: image name to index digest.
func readDigests(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, digestsFile))
	if err != nil {
		return nil, fmt.Errorf("image digests (run dist images first): %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, d, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok || !strings.HasPrefix(d, "sha256:") {
			return nil, fmt.Errorf("%s: bad line %q", f.Name(), sc.Text())
		}
		out[name] = d
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, b := range imageBinaries {
		if out[b.name] == "" {
			return nil, fmt.Errorf("%s names no digest for %s", f.Name(), b.name)
		}
	}
	return out, nil
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}
