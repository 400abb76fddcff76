package release

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

// SourceDate is the time stamped in images and archives: SOURCE_DATE_EPOCH
// (the reproducible-builds convention), or the Unix epoch, never the build's
// clock, so the same sources give the same bytes.
func SourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}
