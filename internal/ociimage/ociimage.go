// Package ociimage builds container images from a static binary without a
// container engine: one layer holding the binary and a minimal /etc for the
// non-root user, on an empty base (what distroless/static gives, minus the rest).
// Images of one binary for several platforms go into one image index, written
// as an OCI image layout that a registry client pushes as it is.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRootUID is the user and group the images run as (distroless's "nonroot").
const NonRootUID = 65532

// User is the image config's User field.
var User = fmt.Sprintf("%d:%d", NonRootUID, NonRootUID)

// Spec describes one image.
type Spec struct {
	// Name of the binary; it lands at /<Name> and is the entrypoint.
	Name string
	// Binary is the content of a static (CGO_ENABLED=0) linux executable.
	Binary []byte
	// Args are the default arguments (the config's Cmd).
	Args []string
	// Version, Source, Title and Description become OCI labels.
	Version, Source, Title, Description string
	// CACerts, when set, is installed as /etc/ssl/certs/ca-certificates.crt so the
	// binary can reach https endpoints.
	CACerts []byte
	// Arch is the GOARCH the binary was built for.
	Arch string
	// Created is the image's creation time; the zero value keeps builds reproducible.
	Created time.Time
	// Files are more regular files, by relative path (for example
	// "licenses/LICENSE"); their directories are made as needed.
	Files map[string][]byte
}

// Build assembles the image.
func Build(s Spec) (v1.Image, error) {
	if s.Name == "" || path.Base(s.Name) != s.Name {
		return nil, fmt.Errorf("binary name %q must be a plain file name", s.Name)
	}
	if len(s.Binary) == 0 {
		return nil, fmt.Errorf("binary %s is empty", s.Name)
	}
	if s.Arch == "" {
		return nil, fmt.Errorf("arch of %s is not set", s.Name)
	}
	for p := range s.Files {
		if p == "" || path.IsAbs(p) || path.Clean(p) != p || strings.HasPrefix(p, "..") {
			return nil, fmt.Errorf("file %q: want a clean relative path", p)
		}
	}
	content, err := rootfs(s)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{CreatedBy: "ragops ociimage: /" + s.Name + " and /etc for user nonroot", Created: v1.Time{Time: s.Created}},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS = "linux"
	cfg.Architecture = s.Arch
	cfg.Created = v1.Time{Time: s.Created}
	cfg.Config.Entrypoint = []string{"/" + s.Name}
	cfg.Config.Cmd = s.Args
	cfg.Config.User = User
	cfg.Config.WorkingDir = "/"
	cfg.Config.Env = []string{"PATH=/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       orDefault(s.Title, s.Name),
		"org.opencontainers.image.version":     s.Version,
		"org.opencontainers.image.source":      s.Source,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// WriteTarball writes the image as a tarball that `docker load`, `podman load` and
// `crane push` read, tagged with tag (for example ragops/manager:0.1.0).
func WriteTarball(file, tag string, img v1.Image) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("parse tag %q: %w", tag, err)
	}
	if err := tarball.WriteToFile(file, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// Index puts the images of one binary for several platforms into an OCI
// image index; each manifest's platform comes from its image's config, so a
// runtime pulls the one for its node. The order of imgs is kept.
func Index(imgs ...v1.Image) (v1.ImageIndex, error) {
	if len(imgs) == 0 {
		return nil, fmt.Errorf("an index needs at least one image")
	}
	adds := make([]mutate.IndexAddendum, 0, len(imgs))
	seen := map[string]bool{}
	for i, img := range imgs {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("image %d: read config: %w", i, err)
		}
		p := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		if seen[p.String()] {
			return nil, fmt.Errorf("image %d: a second image for %s", i, p.String())
		}
		seen[p.String()] = true
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Platform: &p}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// WriteLayout writes the index and every blob it names as an OCI image layout
// in dir (index.json is the index itself, so its digest is the index's).
func WriteLayout(dir string, idx v1.ImageIndex) error {
	if _, err := layout.Write(dir, idx); err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return nil
}

// ReadLayout reads back an index that WriteLayout wrote.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w", dir, err)
	}
	return idx, nil
}

const passwd = `root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nonroot:x:65532:
`

// rootfs is the layer: a few directories, /etc/passwd and /etc/group naming the
// non-root user, optional CA certificates, and the binary.
func rootfs(s Spec) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := s.Created
	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	steps := []func() error{
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/nonroot", 0o700, NonRootUID) },
		func() error { return dir("tmp", 0o1777, 0) },
	}
	if len(s.CACerts) > 0 {
		steps = append(steps,
			func() error { return dir("etc/ssl", 0o755, 0) },
			func() error { return dir("etc/ssl/certs", 0o755, 0) },
			func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, s.CACerts) },
		)
	}
	// Extra files in a stable order, each directory written once before its files.
	made := map[string]bool{"etc": true, "etc/ssl": len(s.CACerts) > 0, "etc/ssl/certs": len(s.CACerts) > 0, "home": true, "tmp": true}
	paths := make([]string, 0, len(s.Files))
	for p := range s.Files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		var parents []string
		for d := path.Dir(p); d != "." && !made[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
			made[d] = true
		}
		for _, d := range parents {
			steps = append(steps, func() error { return dir(d, 0o755, 0) })
		}
		data := s.Files[p]
		steps = append(steps, func() error { return file(p, 0o644, data) })
	}
	steps = append(steps, func() error { return file(s.Name, 0o755, s.Binary) })
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("write layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	return buf.Bytes(), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
