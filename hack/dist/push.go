package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/ragops/rag-operator/internal/release"
)

func runPush(ctx context.Context, args []string) error {
	fs := newFlags("push")
	version := fs.String("version", "", "release version")
	registry := fs.String("registry", "", "where the images go: <registry>/manager:<version>, <registry>/embedserver:<version>")
	chartRepo := fs.String("chart-repo", "", "where the chart goes as an OCI artifact; empty: <registry>/charts")
	dist := fs.String("dist", "dist", "release directory (make release)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := required(map[string]string{"version": *version, "registry": *registry}); err != nil {
		return err
	}
	reg := strings.TrimSuffix(*registry, "/")
	if *chartRepo == "" {
		*chartRepo = reg + "/charts"
	}
	images := filepath.Join(*dist, "images")
	digests, err := readDigests(images)
	if err != nil {
		return err
	}
	tgzPath := filepath.Join(*dist, "rag-operator-"+*version+".tgz")
	tgz, err := os.ReadFile(tgzPath)
	if err != nil {
		return fmt.Errorf("chart (run make release first): %w", err)
	}
	// A chart whose values name another registry would install images that
	// were never pushed there: refuse before pushing anything.
	if err := checkChartImages(tgz, reg, digests); err != nil {
		return fmt.Errorf("%s: %w (build the release with REGISTRY=%s)", tgzPath, err, reg)
	}
	opts := []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	for _, b := range imageBinaries {
		d, err := release.PushIndex(ctx, filepath.Join(images, b.name), reg+"/"+b.name+":"+*version, opts...)
		if err != nil {
			return err
		}
		if d.DigestStr() != digests[b.name] {
			return fmt.Errorf("pushed %s as %s, the release says %s", b.name, d.DigestStr(), digests[b.name])
		}
		fmt.Printf("pushed %s\n", d)
	}
	d, err := release.PushChart(ctx, tgz, *chartRepo, opts...)
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s (helm install oci://%s/rag-operator --version %s)\n", d, *chartRepo, *version)
	return nil
}

// checkChartImages reads the packaged chart's values.yaml and checks both
// images are <reg>/<name> pinned at the release's digests.
func checkChartImages(tgz []byte, reg string, digests map[string]string) error {
	values, err := release.ChartFile(tgz, "values.yaml")
	if err != nil {
		return err
	}
	root, err := kyaml.Parse(string(values))
	if err != nil {
		return fmt.Errorf("values.yaml: %w", err)
	}
	for _, v := range chartImageValues {
		key, image := v.key, v.image
		repo, _ := root.Pipe(kyaml.Lookup(key, "repository"))
		digest, _ := root.Pipe(kyaml.Lookup(key, "digest"))
		if repo == nil || digest == nil {
			return fmt.Errorf("values.yaml has no %s.repository or %s.digest", key, key)
		}
		if got, want := repo.YNode().Value, reg+"/"+image; got != want {
			return fmt.Errorf("values.yaml %s.repository is %s, not %s", key, got, want)
		}
		if got := digest.YNode().Value; got != digests[image] {
			return fmt.Errorf("values.yaml %s.digest is %q, the release's image is %s", key, got, digests[image])
		}
	}
	return nil
}
