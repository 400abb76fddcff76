package openai

import "time"

// How long a small request waits for company while an upstream call is in
// flight. Waiting buys fewer upstream calls and costs latency; what a wait is
// worth depends on how long the call itself takes. So the wait is a fixed share
// of the recent call latency: against a 20 ms upstream it is 250 µs, against a
// 150 ms one the configured ceiling (2 ms by default). The benchmarks' tradeoff
// is in docs/embedserver.md ("Choosing the linger").
const (
	lingerShare = 80                     // wait at most 1/80 of a call, about 1% of its latency
	minLinger   = 100 * time.Microsecond // below this a timer costs more than it gathers
	lingerEWMA  = 8                      // a new call's latency weighs 1/8 in the estimate
)

// lingerFor is the wait for a recent call latency (0: none measured yet) under
// ceiling. Before any call has finished there is nothing to scale by, so the
// ceiling applies.
func lingerFor(recent, ceiling time.Duration) time.Duration {
	if recent <= 0 {
		return ceiling
	}
	return min(ceiling, max(minLinger, recent/lingerShare))
}

// smoothLatency folds one successful call's latency into the running estimate.
func smoothLatency(estimate, sample time.Duration) time.Duration {
	if estimate <= 0 {
		return sample
	}
	return estimate + (sample-estimate)/lingerEWMA
}
