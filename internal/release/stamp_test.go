package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
	"time"
)

type entry struct {
	name string
	mode int64
	body string
}

// helmPackage writes entries as `helm package` does: its gzip comment and
// extra field, and every entry stamped with the time given.
func helmPackage(t *testing.T, at time.Time, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Extra, zw.Comment = []byte("+aHR0cHM6Ly95b3V0dS5iZS96OVV6MWljandyTQo="), "Helm"
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: at}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRestamp(t *testing.T) {
	entries := []entry{
		{"rag-operator/Chart.yaml", 0o644, "name: rag-operator\nversion: 0.2.0\n"},
		{"rag-operator/values.yaml", 0o644, "image:\n  digest: sha256:abc\n"},
		{"rag-operator/templates/deployment.yaml", 0o600, "kind: Deployment\n"},
		{"rag-operator/LICENSE", 0o644, ""},
	}
	first := helmPackage(t, time.Date(2026, 12, 7, 15, 40, 1, 0, time.UTC), entries)
	second := helmPackage(t, time.Date(2026, 12, 7, 15, 41, 9, 0, time.UTC), entries)
	if bytes.Equal(first, second) {
		t.Fatal("packages made a minute apart are the same bytes: the test shows nothing")
	}
	epoch := time.Unix(0, 0).UTC()
	a, err := Restamp(first, epoch)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Restamp(second, epoch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("restamped packages of the same files differ")
	}

	// Nothing but the times changed.
	zr, err := gzip.NewReader(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Comment != "Helm" || string(zr.Extra) != "+aHR0cHM6Ly95b3V0dS5iZS96OVV6MWljandyTQo=" {
		t.Errorf("gzip header: comment %q extra %q, want helm's", zr.Comment, zr.Extra)
	}
	tr := tar.NewReader(zr)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			if i != len(entries) {
				t.Errorf("%d entries, want %d", i, len(entries))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		want := entries[i]
		if h.Name != want.name || h.Mode != want.mode || string(body) != want.body || !h.ModTime.Equal(epoch) {
			t.Errorf("entry %d: %s mode %o %q at %s, want %s mode %o %q at %s", i, h.Name, h.Mode, body, h.ModTime, want.name, want.mode, want.body, epoch)
		}
	}

	if _, err := Restamp([]byte("not a gzip stream"), epoch); err == nil {
		t.Error("a file that is no .tgz was restamped")
	}
}
