// Package analysis judges a canary on live metrics of the embedding server: it
// reads the counters and the latency histogram (scraped from each pod's
// /metrics or queried from Prometheus), computes one interval's request count,
// error rate, shed rate and p99, and gives the verdict Pass, Fail or
// Inconclusive.
//
// The maths (Delta, Quantile, Judge) is pure; Builtin and Prometheus do the I/O.
package analysis

import (
	"fmt"
	"io"
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ragops/rag-operator/internal/contract"
)

// Metric names of the embedding server the analysis reads (internal/contract).
const (
	MetricRequests = contract.MetricRequests        // counter, label code
	MetricShed     = contract.MetricShed            // counter, label reason
	MetricDuration = contract.MetricRequestDuration // histogram
)

// Shed reasons of embedserver_shed_total (internal/contract).
const (
	ShedQueueFull    = contract.ShedQueueFull    // answered 429
	ShedQueueTimeout = contract.ShedQueueTimeout // answered 503
	ShedDraining     = contract.ShedDraining     // answered 503
)

// Sample is one reading of a pod's counters (or, from Prometheus, one
// interval's increases).
type Sample struct {
	// Codes is embedserver_requests_total by status code, summed over other labels.
	Codes map[string]float64
	// Shed is embedserver_shed_total by reason.
	Shed map[string]float64
	// Latency is embedserver_request_duration_seconds.
	Latency Histogram
}

// Histogram is a Prometheus histogram: cumulative buckets ordered by upper
// bound, the last one +Inf.
type Histogram struct {
	Buckets []Bucket
	Count   float64
	Sum     float64
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64
	Count      float64
}

// ParseSample reads the Prometheus text exposition format. Metrics other than
// the three the analysis needs are ignored; missing ones read as zero.
func ParseSample(r io.Reader) (Sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Sample{}, fmt.Errorf("parse metrics: %w", err)
	}
	return FromFamilies(families), nil
}

// FromFamilies extracts a Sample from decoded metric families.
func FromFamilies(families map[string]*dto.MetricFamily) Sample {
	s := Sample{Codes: map[string]float64{}, Shed: map[string]float64{}}
	if f := families[MetricRequests]; f != nil {
		for _, m := range f.GetMetric() {
			s.Codes[label(m, "code")] += counterValue(m)
		}
	}
	if f := families[MetricShed]; f != nil {
		for _, m := range f.GetMetric() {
			s.Shed[label(m, "reason")] += counterValue(m)
		}
	}
	if f := families[MetricDuration]; f != nil {
		byBound := map[float64]float64{}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h == nil {
				continue
			}
			count := float64(h.GetSampleCount())
			if h.SampleCountFloat != nil {
				count = h.GetSampleCountFloat()
			}
			s.Latency.Count += count
			s.Latency.Sum += h.GetSampleSum()
			hasInf := false
			for _, b := range h.GetBucket() {
				c := float64(b.GetCumulativeCount())
				if b.CumulativeCountFloat != nil {
					c = b.GetCumulativeCountFloat()
				}
				byBound[b.GetUpperBound()] += c
				hasInf = hasInf || math.IsInf(b.GetUpperBound(), 1)
			}
			// The +Inf bucket is the count; exposition may leave it implicit.
			if !hasInf {
				byBound[math.Inf(1)] += count
			}
		}
		s.Latency.Buckets = bucketsOf(byBound)
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func counterValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	if u := m.GetUntyped(); u != nil {
		return u.GetValue()
	}
	return 0
}

func bucketsOf(byBound map[float64]float64) []Bucket {
	out := make([]Bucket, 0, len(byBound))
	for ub, c := range byBound {
		out = append(out, Bucket{UpperBound: ub, Count: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UpperBound < out[j].UpperBound })
	return out
}
