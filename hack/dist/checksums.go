package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const checksumsFile = "checksums.txt"

// runChecksums writes dir/checksums.txt: the sha256 of every file a user
// downloads, in sha256sum's format (check with `sha256sum -c checksums.txt`).
// The images' blobs are left out: their names are their digests already.
func runChecksums(args []string) error {
	fs := newFlags("checksums")
	dir := fs.String("dir", "dist", "release directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lines, err := checksums(*dir)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, checksumsFile), []byte(strings.Join(lines, "")), 0o644)
}

func checksums(dir string) ([]string, error) {
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && strings.HasSuffix(rel, "/blobs") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || rel == checksumsFile || strings.HasSuffix(rel, ".sha256") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		lines = append(lines, fmt.Sprintf("%s  %s\n", hex.EncodeToString(sum[:]), rel))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("no file under %s", dir)
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][66:] < lines[j][66:] })
	return lines, nil
}
