// Command buildimage writes a container image tarball for one static binary,
// without a container engine (make images).
//
//	go run ./hack/buildimage --binary dist/bin/manager --name manager \
//	  --tag ragops/manager:0.1.0 --version 0.1.0 --out dist/manager-0.1.0.tar
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/ragops/rag-operator/internal/ociimage"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "buildimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("buildimage", flag.ContinueOnError)
	binary := fs.String("binary", "", "path of the static linux binary")
	name := fs.String("name", "", "name of the binary in the image (/NAME, the entrypoint)")
	tag := fs.String("tag", "", "image reference, e.g. ragops/manager:0.1.0")
	out := fs.String("out", "", "tarball to write")
	version := fs.String("version", "", "org.opencontainers.image.version")
	source := fs.String("source", "", "org.opencontainers.image.source")
	desc := fs.String("description", "", "org.opencontainers.image.description")
	caCerts := fs.String("ca-certs", "", "CA bundle to install as /etc/ssl/certs/ca-certificates.crt (optional)")
	arch := fs.String("arch", runtime.GOARCH, "GOARCH of the binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *binary == "" || *name == "" || *tag == "" || *out == "" {
		return errors.New("--binary, --name, --tag and --out are required")
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("read binary: %w", err)
	}
	var certs []byte
	if *caCerts != "" {
		if certs, err = os.ReadFile(*caCerts); err != nil {
			return fmt.Errorf("read CA certificates: %w", err)
		}
	}
	created := time.Unix(0, 0).UTC()
	// Reproducible builds set SOURCE_DATE_EPOCH; without it the image is dated 1970.
	if epoch := os.Getenv("SOURCE_DATE_EPOCH"); epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH: %w", err)
		}
		created = time.Unix(sec, 0).UTC()
	}
	img, err := ociimage.Build(ociimage.Spec{
		Name: *name, Binary: bin, Version: *version, Source: *source, Description: *desc,
		CACerts: certs, Arch: *arch, Created: created,
	})
	if err != nil {
		return err
	}
	if err := ociimage.WriteTarball(*out, *tag, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	fmt.Printf("%s %s %s\n", *out, *tag, digest)
	return nil
}
