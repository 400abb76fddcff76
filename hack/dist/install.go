package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// embedserverImageFlag is the manager's flag naming the embedding server image.
const embedserverImageFlag = "--embedserver-image="

func runInstall(args []string) error {
	fs := newFlags("install")
	kustomization := fs.String("kustomization", "config/default", "kustomize directory of the install")
	repo := fs.String("repo", "", "image repository prefix: <repo>/manager and <repo>/embedserver")
	images := fs.String("images", "dist/images", "directory with "+digestsFile+" (dist images)")
	out := fs.String("out", "dist/install.yaml", "file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := required(map[string]string{"repo": *repo, "out": *out}); err != nil {
		return err
	}
	digests, err := readDigests(*images)
	if err != nil {
		return err
	}
	y, err := renderInstall(*kustomization, *repo, digests)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(*out, y, 0o644)
}

// renderInstall builds the kustomization and pins the manager's image and the
// embedding server image it deploys to <repo>/<name>@<digest>. It fails when
// either is not found, so a renamed container or flag cannot ship unpinned.
func renderInstall(dir, repo string, digests map[string]string) ([]byte, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	ref := func(name string) string { return strings.TrimSuffix(repo, "/") + "/" + name + "@" + digests[name] }
	var managers, flags int
	for _, r := range m.Resources() {
		if r.GetKind() != "Deployment" {
			continue
		}
		containers, err := r.Pipe(kyaml.Lookup("spec", "template", "spec", "containers"))
		if err != nil || containers == nil {
			continue
		}
		items, err := containers.Elements()
		if err != nil {
			return nil, err
		}
		for _, c := range items {
			img, err := c.Pipe(kyaml.Lookup("image"))
			if err != nil || img == nil || !isImage(img.YNode().Value, "manager") {
				continue
			}
			img.YNode().Value = ref("manager")
			managers++
			argList, err := c.Pipe(kyaml.Lookup("args"))
			if err != nil || argList == nil {
				continue
			}
			args, err := argList.Elements()
			if err != nil {
				return nil, err
			}
			for _, a := range args {
				if strings.HasPrefix(a.YNode().Value, embedserverImageFlag) {
					a.YNode().Value = embedserverImageFlag + ref("embedserver")
					flags++
				}
			}
		}
	}
	if managers != 1 || flags != 1 {
		return nil, fmt.Errorf("kustomize build %s: found %d manager containers and %d %s flags, want one each", dir, managers, flags, embedserverImageFlag)
	}
	return m.AsYaml()
}

// isImage says whether ref names the image called name (any registry, tag or digest).
func isImage(ref, name string) bool {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref == name || strings.HasSuffix(ref, "/"+name)
}
