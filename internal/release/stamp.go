package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"time"
)

// Restamp rewrites a .tgz (a chart as `helm package` writes it) with every
// entry's time set to mtime and nothing else changed: names, modes, bodies,
// their order and the gzip header's name, comment and extra field stay. Helm
// stamps each entry with the clock, so two packages of the same chart differ
// and their digest says nothing; restamped with SourceDate they are the same
// bytes.
func Restamp(tgz []byte, mtime time.Time) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("restamping: %w", err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out) // helm's level
	zw.Header = gzip.Header{Name: zr.Name, Comment: zr.Comment, Extra: zr.Extra, OS: zr.OS}
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("restamping: %w", err)
		}
		h.ModTime, h.AccessTime, h.ChangeTime = mtime, time.Time{}, time.Time{}
		h.Format = tar.FormatUnknown // let the writer pick, as helm's did
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("restamping %s: %w", h.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return nil, fmt.Errorf("restamping %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
