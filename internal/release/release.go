// Package release moves what `make release` built into an OCI registry: the
// images' indexes (from their OCI layouts, pushed as they are, so the digests
// pinned in the chart and the install manifest stay true) and the Helm chart
// as an OCI artifact in the layout `helm push` uses, so `helm install
// oci://REGISTRY/charts/rag-operator --version X` finds it. Credentials come
// from the caller's remote options (the command uses the usual keychain:
// docker config, credential helpers).
package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"

	"github.com/ragops/rag-operator/internal/ociimage"
)

// Helm's media types for a chart stored in an OCI registry.
const (
	HelmConfigMediaType types.MediaType = "application/vnd.cncf.helm.config.v1+json"
	HelmChartMediaType  types.MediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// PushIndex pushes the image index in the OCI layout dir to ref (for example
// registry.example.com/ragops/manager:0.2.0) and returns the pushed digest,
// the same as the layout's.
func PushIndex(ctx context.Context, dir, ref string, opts ...remote.Option) (name.Digest, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image reference %q: %w", ref, err)
	}
	idx, err := ociimage.ReadLayout(dir)
	if err != nil {
		return name.Digest{}, err
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.WriteIndex(tag, idx, append(opts, remote.WithContext(ctx))...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", tag, err)
	}
	return tag.Context().Digest(d.String()), nil
}

// Chart is what a packaged chart says about itself.
type Chart struct {
	Name, Version string
	// Metadata is Chart.yaml as JSON: the artifact's config, as helm writes it.
	Metadata []byte
}

// ReadChart reads Chart.yaml out of a chart package (name-version.tgz).
func ReadChart(tgz []byte) (Chart, error) {
	raw, err := ChartFile(tgz, "Chart.yaml")
	if err != nil {
		return Chart{}, err
	}
	meta, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return Chart{}, fmt.Errorf("chart package Chart.yaml: %w", err)
	}
	var c struct{ Name, Version string }
	if err := json.Unmarshal(meta, &c); err != nil {
		return Chart{}, fmt.Errorf("chart package Chart.yaml: %w", err)
	}
	if c.Name == "" || c.Version == "" {
		return Chart{}, errors.New("chart package Chart.yaml: name and version are required")
	}
	return Chart{Name: c.Name, Version: c.Version, Metadata: meta}, nil
}

// ChartFile returns <chart>/<name> (at most 1 MiB) from a chart package.
func ChartFile(tgz []byte, name string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("chart package: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("chart package has no <chart>/%s", name)
		}
		if err != nil {
			return nil, fmt.Errorf("chart package: %w", err)
		}
		if parts := strings.SplitN(path.Clean(h.Name), "/", 2); len(parts) == 2 && parts[1] == name {
			return io.ReadAll(io.LimitReader(tr, 1<<20))
		}
	}
}

// rawManifest is a manifest pushed as it is (remote.Put reads its media type).
type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.body, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// PushChart pushes the chart package to repo/<chart name>:<chart version>
// (repo is for example registry.example.com/charts) and returns its digest.
func PushChart(ctx context.Context, tgz []byte, repo string, opts ...remote.Option) (name.Digest, error) {
	c, err := ReadChart(tgz)
	if err != nil {
		return name.Digest{}, err
	}
	// OCI tags cannot hold '+', so helm writes semver build metadata with '_'.
	tag, err := name.NewTag(strings.TrimSuffix(repo, "/") + "/" + c.Name + ":" + strings.ReplaceAll(c.Version, "+", "_"))
	if err != nil {
		return name.Digest{}, fmt.Errorf("chart reference: %w", err)
	}
	opts = append(opts, remote.WithContext(ctx))
	config := static.NewLayer(c.Metadata, HelmConfigMediaType)
	content := static.NewLayer(tgz, HelmChartMediaType)
	for _, l := range []v1.Layer{config, content} {
		if err := remote.WriteLayer(tag.Context(), l, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("push %s's blobs: %w", tag, err)
		}
	}
	desc := func(l v1.Layer, mt types.MediaType) (v1.Descriptor, error) {
		d, err := l.Digest()
		if err != nil {
			return v1.Descriptor{}, err
		}
		size, err := l.Size()
		return v1.Descriptor{MediaType: mt, Digest: d, Size: size}, err
	}
	cd, err := desc(config, HelmConfigMediaType)
	if err != nil {
		return name.Digest{}, err
	}
	ld, err := desc(content, HelmChartMediaType)
	if err != nil {
		return name.Digest{}, err
	}
	ld.Annotations = map[string]string{"org.opencontainers.image.title": c.Name + "-" + c.Version + ".tgz"}
	body, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: []v1.Descriptor{ld},
		Annotations: map[string]string{"org.opencontainers.image.title": c.Name, "org.opencontainers.image.version": c.Version},
	})
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.Put(tag, rawManifest{body: body, mt: types.OCIManifestSchema1}, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", tag, err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(body))
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Context().Digest(h.String()), nil
}
