// Package krew reads and checks krew plugin manifests: the Plugin of
// krew.googlecontainertools.github.com/v1alpha2 that krew-index holds for
// `kubectl krew install`. The types and Validate mirror krew's own
// (sigs.k8s.io/krew pkg/index and internal/index/validation, v0.4): the krew
// module itself pins a client-go from before modules and cannot be imported.
package krew

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind are the only ones krew reads.
const (
	APIVersion = "krew.googlecontainertools.github.com/v1alpha2"
	Kind       = "Plugin"
)

// Plugin is a plugin manifest.
type Plugin struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec PluginSpec `json:"spec"`
}

// PluginSpec describes the plugin and where each platform gets it.
type PluginSpec struct {
	Version          string     `json:"version,omitempty"`
	ShortDescription string     `json:"shortDescription,omitempty"`
	Description      string     `json:"description,omitempty"`
	Caveats          string     `json:"caveats,omitempty"`
	Homepage         string     `json:"homepage,omitempty"`
	Platforms        []Platform `json:"platforms,omitempty"`
}

// Platform is one os/arch: the archive to download, its sha256, and what to
// install from it.
type Platform struct {
	URI      string                `json:"uri,omitempty"`
	Sha256   string                `json:"sha256,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	Files    []FileOperation       `json:"files"`
	License  string                `json:"license,omitempty"`
	// Bin is the executable, relative to the installation directory.
	Bin string `json:"bin"`
}

// FileOperation copies From in the archive to To in the installation directory.
type FileOperation struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Parse decodes a manifest, refusing fields krew does not know.
func Parse(data []byte) (*Plugin, error) {
	p := &Plugin{}
	if err := yaml.UnmarshalStrict(data, p); err != nil {
		return nil, fmt.Errorf("decoding plugin manifest: %w", err)
	}
	return p, nil
}

var (
	safeName = regexp.MustCompile(`^[\w-]+$`)
	sha256Re = regexp.MustCompile(`^[a-f0-9]{64}$`)
	// Names Windows cannot give a file; krew refuses them as plugin names.
	windowsForbidden = []string{"CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"}
)

// Validate checks what krew checks before it installs a plugin named name
// (the manifest's file name without .yaml).
func Validate(name string, p *Plugin) error {
	if p.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion is %q, krew reads only %q", p.APIVersion, APIVersion)
	}
	if p.Kind != Kind {
		return fmt.Errorf("kind is %q, krew reads only %q", p.Kind, Kind)
	}
	if !safeName.MatchString(name) || isWindowsForbidden(name) {
		return fmt.Errorf("plugin name %q is not allowed: it must match %s", name, safeName)
	}
	if p.Name != name {
		return fmt.Errorf("metadata.name is %q, but the manifest is for %q", p.Name, name)
	}
	if p.Spec.ShortDescription == "" {
		return errors.New("spec.shortDescription is empty")
	}
	if strings.ContainsAny(p.Spec.ShortDescription, "\r\n") {
		return errors.New("spec.shortDescription has a line break")
	}
	if len(p.Spec.Platforms) == 0 {
		return errors.New("spec.platforms is empty")
	}
	if err := validateVersion(p.Spec.Version); err != nil {
		return fmt.Errorf("spec.version: %w", err)
	}
	for i, pl := range p.Spec.Platforms {
		if err := validatePlatform(pl); err != nil {
			return fmt.Errorf("spec.platforms[%d]: %w", i, err)
		}
	}
	return nil
}

func isWindowsForbidden(name string) bool {
	for _, f := range windowsForbidden {
		if strings.EqualFold(f, name) {
			return true
		}
	}
	return false
}

// validateVersion: a semantic version with a leading v, as krew parses it.
func validateVersion(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	if !strings.HasPrefix(v, "v") {
		return fmt.Errorf("%q does not start with v", v)
	}
	if _, err := version.ParseSemantic(v); err != nil {
		return fmt.Errorf("%q: %w", v, err)
	}
	return nil
}

func validatePlatform(p Platform) error {
	switch {
	case p.URI == "":
		return errors.New("uri is empty")
	case p.Sha256 == "":
		return errors.New("sha256 is empty")
	case !sha256Re.MatchString(p.Sha256):
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", p.Sha256)
	case p.Bin == "":
		return errors.New("bin is empty")
	}
	if p.Files != nil {
		if len(p.Files) == 0 {
			return errors.New("files is empty: leave it out or list the files")
		}
		for j, f := range p.Files {
			if f.From == "" || f.To == "" {
				return fmt.Errorf("files[%d]: from and to are both needed", j)
			}
		}
	}
	return validateSelector(p.Selector)
}

func validateSelector(s *metav1.LabelSelector) error {
	if s == nil {
		return errors.New("selector is missing")
	}
	if s.MatchLabels == nil && len(s.MatchExpressions) == 0 {
		return errors.New("selector is empty")
	}
	for k := range s.MatchLabels {
		if k != "os" && k != "arch" {
			return fmt.Errorf("selector key %q: only os and arch are supported", k)
		}
	}
	for _, e := range s.MatchExpressions {
		if e.Key != "os" && e.Key != "arch" {
			return fmt.Errorf("selector key %q: only os and arch are supported", e.Key)
		}
	}
	if s.MatchLabels != nil && len(s.MatchLabels) == 0 {
		return errors.New("selector.matchLabels is there but empty")
	}
	if s.MatchExpressions != nil && len(s.MatchExpressions) == 0 {
		return errors.New("selector.matchExpressions is there but empty")
	}
	return nil
}
