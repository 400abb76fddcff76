// Command release builds the kubectl-rag release: one tarball per platform
// (reproducible: same sources and Go, same bytes), its sha256, and the krew
// plugin manifest rendered from plugins/rag.yaml with the version and those
// checksums, checked as krew checks it. make release runs it for every
// platform; make test-platform for one.
//
//	go run ./hack/release --version v0.1.0 --platforms linux/amd64,darwin/arm64 --out dist/release
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/ragops/rag-operator/internal/krew"
	"github.com/ragops/rag-operator/internal/release"
)

const binary = "kubectl-rag"

// platform is one archive of the release, as the manifest template sees it.
type platform struct {
	OS, Arch string
	Bin      string // the executable's name in the tarball (.exe on windows)
	Archive  string // file name of the tarball
	SHA256   string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	ver := fs.String("version", "", "release version with a leading v, e.g. v0.1.0")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64,windows/arm64", "os/arch list, comma or space separated")
	license := fs.String("license", "LICENSE", "licence file packed beside the binary (krew's index requires one)")
	tmpl := fs.String("template", "plugins/rag.yaml", "krew manifest template")
	out := fs.String("out", "dist/release", "output directory")
	pkg := fs.String("pkg", "./cmd/kubectl-rag", "package of the plugin binary")
	ldflags := fs.String("ldflags", "", "extra -ldflags for go build (e.g. -X .../version.Version=...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !strings.HasPrefix(*ver, "v") {
		return fmt.Errorf("--version %q must start with v (krew's rule)", *ver)
	}
	mtime, err := release.SourceDate()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	lic, err := os.ReadFile(*license)
	if err != nil {
		return fmt.Errorf("licence: %w", err)
	}
	var built []platform
	var sums strings.Builder
	for _, p := range strings.FieldsFunc(*platforms, func(r rune) bool { return r == ',' || r == ' ' }) {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok || goos == "" || goarch == "" {
			return fmt.Errorf("platform %q is not os/arch", p)
		}
		pl, err := buildArchive(*pkg, *ldflags, *ver, goos, goarch, *out, mtime, lic)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s  %s\n", pl.SHA256, pl.Archive)
		if err := os.WriteFile(filepath.Join(*out, pl.Archive+".sha256"), []byte(line), 0o644); err != nil {
			return err
		}
		sums.WriteString(line)
		built = append(built, pl)
		fmt.Printf("%s  %s\n", pl.SHA256, filepath.Join(*out, pl.Archive))
	}
	if len(built) == 0 {
		return errors.New("no platform to build")
	}
	if err := os.WriteFile(filepath.Join(*out, "checksums.txt"), []byte(sums.String()), 0o644); err != nil {
		return err
	}
	manifest, err := renderManifest(*tmpl, *ver, built)
	if err != nil {
		return err
	}
	name := filepath.Base(*tmpl)
	if err := os.WriteFile(filepath.Join(*out, name), manifest, 0o644); err != nil {
		return err
	}
	fmt.Printf("krew manifest: %s (%d platforms)\n", filepath.Join(*out, name), len(built))
	return nil
}

// buildArchive cross-compiles the plugin and packs it with the licence as
// kubectl-rag_<version>_<os>_<arch>.tar.gz.
func buildArchive(pkg, ldflags, ver, goos, goarch, out string, mtime time.Time, license []byte) (platform, error) {
	tmp, err := os.MkdirTemp("", "release-"+goos+"-"+goarch)
	if err != nil {
		return platform{}, err
	}
	defer os.RemoveAll(tmp)
	exe := binary
	if goos == "windows" {
		exe += ".exe"
	}
	bin := filepath.Join(tmp, exe)
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", strings.TrimSpace("-s -w -buildid= "+ldflags), "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return platform{}, fmt.Errorf("go build %s for %s/%s: %w", pkg, goos, goarch, err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return platform{}, err
	}
	var buf bytes.Buffer
	if err := writeTarGz(&buf, mtime, archiveFile{exe, 0o755, data}, archiveFile{"LICENSE", 0o644, license}); err != nil {
		return platform{}, err
	}
	pl := platform{OS: goos, Arch: goarch, Bin: exe, Archive: fmt.Sprintf("%s_%s_%s_%s.tar.gz", binary, ver, goos, goarch)}
	sum := sha256.Sum256(buf.Bytes())
	pl.SHA256 = hex.EncodeToString(sum[:])
	return pl, os.WriteFile(filepath.Join(out, pl.Archive), buf.Bytes(), 0o644)
}

// archiveFile is one regular file of a tarball.
type archiveFile struct {
	name string
	mode int64
	data []byte
}

// writeTarGz writes a gzipped tar of files, with nothing that depends on the
// machine or the clock: fixed owner, mode and time, no gzip name or time.
func writeTarGz(w io.Writer, mtime time.Time, files ...archiveFile) error {
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// renderManifest fills the template with the version and the platforms built,
// and checks the result as krew would before installing from it.
func renderManifest(tmplPath, ver string, built []platform) ([]byte, error) {
	src, err := os.ReadFile(tmplPath)
	if err != nil {
		return nil, err
	}
	t, err := template.New(filepath.Base(tmplPath)).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", tmplPath, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, struct {
		Version   string
		Platforms []platform
	}{ver, built}); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", tmplPath, err)
	}
	p, err := krew.Parse(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tmplPath, err)
	}
	name := strings.TrimSuffix(filepath.Base(tmplPath), filepath.Ext(tmplPath))
	if err := krew.Validate(name, p); err != nil {
		return nil, fmt.Errorf("%s renders a manifest krew refuses: %w", tmplPath, err)
	}
	if len(p.Spec.Platforms) != len(built) {
		return nil, fmt.Errorf("%s renders %d platforms, %d were built", tmplPath, len(p.Spec.Platforms), len(built))
	}
	for i, pl := range p.Spec.Platforms {
		if path.Base(pl.URI) != built[i].Archive || pl.Sha256 != built[i].SHA256 {
			return nil, fmt.Errorf("%s: platform %d points at %s (%s), not at %s (%s)", tmplPath, i, pl.URI, pl.Sha256, built[i].Archive, built[i].SHA256)
		}
	}
	return buf.Bytes(), nil
}
