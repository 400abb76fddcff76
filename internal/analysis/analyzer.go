package analysis

import (
	"context"
	"time"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Target is one ready pod to scrape.
type Target struct {
	// Pod name: the key that matches samples across scrapes.
	Pod string
	// URL of its metrics, e.g. http://10.0.0.7:9090/metrics (the admin port).
	URL string
}

// Query asks for one interval's verdict on a canary.
type Query struct {
	// Namespace and Name of the RAGService.
	Namespace, Name string
	// Revision of the canary, StableRevision of stable (for comparison).
	Revision, StableRevision string
	// Canary and Stable are the ready pods of each track (Builtin only).
	Canary, Stable []Target
	// Spec is spec.rollout.analysis.
	Spec v1alpha1.AnalysisSpec
	// Now ends the interval.
	Now time.Time
}

// Result is one interval's verdict.
type Result struct {
	// Status is the verdict on the canary, ready for rollout.Input.Verdict and
	// status.analysis.
	Status v1alpha1.AnalysisStatus
	// Canary is the canary's interval; Stable the stable track's, for
	// comparison (nil when it could not be read).
	Canary Interval
	Stable *Interval
}

// Analyzer gives verdicts. A nil Result with a nil error means "no verdict
// yet" (the first scrape of a canary only takes a baseline).
type Analyzer interface {
	Analyze(ctx context.Context, q Query) (*Result, error)
}

// IntervalOf is spec.interval, defaulted: the time between verdicts.
func IntervalOf(spec v1alpha1.AnalysisSpec) time.Duration {
	if d := spec.Interval.Duration; d > 0 {
		return d
	}
	return 30 * time.Second
}
