package analysis

import (
	"math"
	"sort"
	"strings"
	"time"
)

// Interval is what the canary (or stable) pods did between two samples.
type Interval struct {
	// Requests answered, every status code.
	Requests int64
	// Errors: 5xx answers that were not shed (504 deadline and 502 upstream
	// failures count; queue-timeout and draining 503s do not).
	Errors int64
	// Shed: 429 (queue full, memory) plus queue-timeout 503.
	Shed int64
	// Failures: every answer that is neither 2xx nor shed (a 429, a
	// queue-timeout or draining 503): 4xx a client got as much as 5xx.
	Failures int64
	// P99 of the request duration, interpolated within the histogram bucket as
	// Prometheus' histogram_quantile does. HasLatency is false when the interval
	// has no observation (P99 is then meaningless).
	P99        time.Duration
	HasLatency bool
	// Pods compared; New pods only gave a baseline; Gone pods disappeared
	// between the samples and are left out.
	Pods, New, Gone int
	// Resets counts pods whose counters went down (a restarted process): their
	// current counters are taken as the interval's.
	Resets int
}

// Delta computes the interval between two readings of a set of pods, keyed by
// pod name. A pod present only in cur gives a baseline (its earlier requests are
// unknown); a pod present only in prev is gone and left out; a pod whose
// counters went down restarted, and its current counters are its delta.
func Delta(prev, cur map[string]Sample) Interval {
	var iv Interval
	total := Sample{Codes: map[string]float64{}, Shed: map[string]float64{}}
	buckets := map[float64]float64{}
	for pod, c := range cur {
		p, ok := prev[pod]
		if !ok {
			iv.New++
			continue
		}
		iv.Pods++
		d, reset := podDelta(p, c)
		if reset {
			iv.Resets++
		}
		for k, v := range d.Codes {
			total.Codes[k] += v
		}
		for k, v := range d.Shed {
			total.Shed[k] += v
		}
		for _, b := range d.Latency.Buckets {
			buckets[b.UpperBound] += b.Count
		}
	}
	for pod := range prev {
		if _, ok := cur[pod]; !ok {
			iv.Gone++
		}
	}
	total.Latency.Buckets = bucketsOf(buckets)
	iv.fill(total)
	return iv
}

// FromIncrease builds the interval from one summed increase (the Prometheus
// provider's query results).
func FromIncrease(s Sample) Interval {
	var iv Interval
	iv.fill(s)
	return iv
}

func (iv *Interval) fill(s Sample) {
	var requests, fiveXX, tooMany, ok float64
	for code, v := range s.Codes {
		requests += v
		if strings.HasPrefix(code, "5") && len(code) == 3 {
			fiveXX += v
		}
		if strings.HasPrefix(code, "2") && len(code) == 3 {
			ok += v
		}
		if code == "429" {
			tooMany += v
		}
	}
	shed503 := s.Shed[ShedQueueTimeout] + s.Shed[ShedDraining]
	iv.Requests = round(requests)
	iv.Errors = max(round(fiveXX-shed503), 0)
	iv.Shed = round(tooMany + s.Shed[ShedQueueTimeout])
	iv.Failures = max(round(requests-ok-tooMany-shed503), 0)
	if q := Quantile(0.99, s.Latency.Buckets); !math.IsNaN(q) {
		iv.P99 = time.Duration(q * float64(time.Second))
		iv.HasLatency = true
	}
}

func round(f float64) int64 { return int64(math.Round(f)) }

// podDelta is cur - prev for one pod, or cur when any counter went down.
func podDelta(prev, cur Sample) (Sample, bool) {
	reset := cur.Latency.Count < prev.Latency.Count
	for k, v := range prev.Codes {
		reset = reset || cur.Codes[k] < v
	}
	for k, v := range prev.Shed {
		reset = reset || cur.Shed[k] < v
	}
	if reset {
		return cur, true
	}
	d := Sample{Codes: map[string]float64{}, Shed: map[string]float64{}}
	for k, v := range cur.Codes {
		d.Codes[k] = v - prev.Codes[k]
	}
	for k, v := range cur.Shed {
		d.Shed[k] = v - prev.Shed[k]
	}
	pb := map[float64]float64{}
	for _, b := range prev.Latency.Buckets {
		pb[b.UpperBound] = b.Count
	}
	for _, b := range cur.Latency.Buckets {
		d.Latency.Buckets = append(d.Latency.Buckets, Bucket{UpperBound: b.UpperBound, Count: max(b.Count-pb[b.UpperBound], 0)})
	}
	d.Latency.Count = cur.Latency.Count - prev.Latency.Count
	d.Latency.Sum = cur.Latency.Sum - prev.Latency.Sum
	return d, false
}

// Quantile estimates the q-quantile (0..1) from cumulative buckets the way
// Prometheus' histogram_quantile does: linear interpolation inside the bucket
// the rank falls in, the lower bound of the first bucket taken as 0, and the
// upper bound of the last finite bucket when the rank falls in +Inf. NaN when
// there are no observations or no +Inf bucket.
func Quantile(q float64, buckets []Bucket) float64 {
	if len(buckets) == 0 || math.IsNaN(q) {
		return math.NaN()
	}
	b := append([]Bucket(nil), buckets...)
	sort.Slice(b, func(i, j int) bool { return b[i].UpperBound < b[j].UpperBound })
	if !math.IsInf(b[len(b)-1].UpperBound, 1) {
		return math.NaN()
	}
	// Summed deltas of scraped counters can be slightly non-monotonic.
	for i := 1; i < len(b); i++ {
		if b[i].Count < b[i-1].Count {
			b[i].Count = b[i-1].Count
		}
	}
	if q < 0 {
		return math.Inf(-1)
	}
	if q > 1 {
		return math.Inf(1)
	}
	observations := b[len(b)-1].Count
	if observations <= 0 {
		return math.NaN()
	}
	rank := q * observations
	i := sort.Search(len(b)-1, func(i int) bool { return b[i].Count >= rank })
	if i == len(b)-1 {
		if len(b) < 2 {
			return math.NaN()
		}
		return b[len(b)-2].UpperBound
	}
	if i == 0 && b[0].UpperBound <= 0 {
		return b[0].UpperBound
	}
	start, end, below := 0.0, b[i].UpperBound, 0.0
	if i > 0 {
		start, below = b[i-1].UpperBound, b[i-1].Count
	}
	count := b[i].Count - below
	if count <= 0 {
		return end
	}
	return start + (end-start)*((rank-below)/count)
}
