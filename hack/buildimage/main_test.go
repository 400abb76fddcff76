package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestRunWritesTarball(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "embedserver")
	if err := os.WriteFile(bin, []byte("\x7fELF binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "embedserver.tar")
	err := run([]string{"--binary", bin, "--name", "embedserver", "--tag", "ragops/embedserver:0.1.0",
		"--version", "0.1.0", "--source", "https://github.com/ragops/rag-operator", "--out", out})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ragops/embedserver:0.1.0")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatalf("tarball does not hold ragops/embedserver:0.1.0: %v", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Entrypoint[0] != "/embedserver" || cfg.Config.User != "65532:65532" {
		t.Errorf("config %+v", cfg.Config)
	}
}

func TestRunRequiresFlags(t *testing.T) {
	err := run([]string{"--name", "x"})
	if err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("err = %v", err)
	}
}
