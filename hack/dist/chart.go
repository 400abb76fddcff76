package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/ragops/rag-operator/internal/release"
)

func runChart(ctx context.Context, args []string) error {
	fs := newFlags("chart")
	version := fs.String("version", "", "release version: the chart's version and appVersion")
	chart := fs.String("chart", "charts/rag-operator", "chart directory")
	repo := fs.String("repo", "", "image repository prefix: <repo>/manager and <repo>/embedserver")
	images := fs.String("images", "dist/images", "directory with "+digestsFile+" (dist images)")
	out := fs.String("out", "dist", "directory for <chart>-<version>.tgz")
	license := fs.String("license", "LICENSE", "licence put into the chart")
	helm := fs.String("helm", "helm", "helm binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := required(map[string]string{"version": *version, "repo": *repo, "out": *out}); err != nil {
		return err
	}
	digests, err := readDigests(*images)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "dist-chart")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, filepath.Base(*chart))
	if err := copyDir(*chart, dir); err != nil {
		return err
	}
	lic, err := os.ReadFile(*license)
	if err != nil {
		return fmt.Errorf("licence: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "LICENSE"), lic, 0o644); err != nil {
		return err
	}
	values := filepath.Join(dir, "values.yaml")
	raw, err := os.ReadFile(values)
	if err != nil {
		return err
	}
	pinned, err := pinValues(string(raw), *repo, digests)
	if err != nil {
		return err
	}
	if err := os.WriteFile(values, []byte(pinned), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, *helm, "package", dir, "--version", *version, "--app-version", *version, "--destination", *out)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm package: %w", err)
	}
	// helm stamps every entry with the clock: restamp so that the same
	// sources give the same chart, and so the same digest once pushed.
	mtime, err := release.SourceDate()
	if err != nil {
		return err
	}
	meta, err := kyaml.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return fmt.Errorf("the chart's Chart.yaml: %w", err)
	}
	name, err := meta.GetString("name")
	if err != nil {
		return fmt.Errorf("the chart's Chart.yaml: %w", err)
	}
	tgz := filepath.Join(*out, name+"-"+*version+".tgz") // helm's file name
	packaged, err := os.ReadFile(tgz)
	if err != nil {
		return fmt.Errorf("the packaged chart: %w", err)
	}
	same, err := release.Restamp(packaged, mtime)
	if err != nil {
		return err
	}
	return os.WriteFile(tgz, same, 0o644)
}

// chartImageValues are the chart's two image values and the image each names,
// in a fixed order so errors are the same on every run.
var chartImageValues = []struct{ key, image string }{{"image", "manager"}, {"embedserverImage", "embedserver"}}

// pinValues sets both images of the chart's values to <repo>/<name> at the
// release's digests, keeping the file's comments and order.
func pinValues(values, repo string, digests map[string]string) (string, error) {
	root, err := kyaml.Parse(values)
	if err != nil {
		return "", fmt.Errorf("values.yaml: %w", err)
	}
	for _, v := range chartImageValues {
		key, image := v.key, v.image
		node, err := root.Pipe(kyaml.Lookup(key))
		if err != nil || node == nil {
			return "", fmt.Errorf("values.yaml has no %s", key)
		}
		for field, v := range map[string]string{"repository": strings.TrimSuffix(repo, "/") + "/" + image, "digest": digests[image], "tag": ""} {
			if err := node.PipeE(kyaml.SetField(field, kyaml.NewStringRNode(v))); err != nil {
				return "", fmt.Errorf("values.yaml %s.%s: %w", key, field, err)
			}
		}
	}
	return root.MustString(), nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
