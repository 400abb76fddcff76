// Package version holds the build's version, set by the linker (see Makefile).
package version

// Version of ragops; the Makefile sets it with -ldflags -X.
var Version = "0.1.0-dev"
