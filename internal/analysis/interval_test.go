package analysis

import (
	"math"
	"testing"
	"time"
)

var inf = math.Inf(1)

func TestQuantile(t *testing.T) {
	std := []Bucket{{0.1, 50}, {0.5, 90}, {1, 99}, {inf, 100}}
	cases := []struct {
		name    string
		q       float64
		buckets []Bucket
		want    float64
	}{
		{"median in first bucket interpolates from 0", 0.5, std, 0.1},
		{"p25", 0.25, std, 0.05},
		{"p95 interpolates inside (0.5,1]", 0.95, std, 0.5 + 0.5*5.0/9.0},
		{"p99 at the bucket edge", 0.99, std, 1},
		{"p999 in +Inf takes the last finite bound", 0.999, std, 1},
		{"unsorted input", 0.5, []Bucket{{inf, 100}, {0.5, 90}, {0.1, 50}, {1, 99}}, 0.1},
		{"non-monotonic counts are repaired", 0.5, []Bucket{{0.1, 50}, {0.5, 40}, {inf, 100}}, 0.1},
		{"only a +Inf bucket", 0.5, []Bucket{{inf, 10}}, math.NaN()},
		{"all in +Inf", 0.99, []Bucket{{0.1, 0}, {0.5, 0}, {inf, 10}}, 0.5},
		{"empty bucket range keeps its upper bound", 0.5, []Bucket{{0.1, 0}, {0.2, 0}, {0.4, 10}, {inf, 10}}, 0.2 + 0.2*0.5},
		{"negative first bound", 0.5, []Bucket{{-1, 10}, {inf, 10}}, -1},
		{"no observations", 0.99, []Bucket{{0.1, 0}, {inf, 0}}, math.NaN()},
		{"no +Inf bucket", 0.99, []Bucket{{0.1, 5}, {1, 10}}, math.NaN()},
		{"no buckets", 0.99, nil, math.NaN()},
		{"q above 1", 1.5, std, inf},
		{"q below 0", -0.5, std, math.Inf(-1)},
	}
	for _, c := range cases {
		got := Quantile(c.q, c.buckets)
		if math.IsNaN(c.want) != math.IsNaN(got) || (!math.IsNaN(c.want) && math.Abs(got-c.want) > 1e-9) {
			t.Errorf("%s: Quantile(%v) = %v, want %v", c.name, c.q, got, c.want)
		}
	}
}

// sample builds one pod's counters: codes as "code=count" pairs, shed reasons,
// and a latency histogram with all observations of the pod in the given
// buckets.
func sample(codes map[string]float64, shed map[string]float64, buckets ...Bucket) Sample {
	s := Sample{Codes: codes, Shed: shed}
	if s.Codes == nil {
		s.Codes = map[string]float64{}
	}
	if s.Shed == nil {
		s.Shed = map[string]float64{}
	}
	s.Latency.Buckets = buckets
	if len(buckets) > 0 {
		s.Latency.Count = buckets[len(buckets)-1].Count
	}
	return s
}

func TestDelta(t *testing.T) {
	podA0 := sample(map[string]float64{"200": 100, "500": 1}, nil, Bucket{0.1, 90}, Bucket{1, 101}, Bucket{inf, 101})
	podA1 := sample(map[string]float64{"200": 190, "500": 3, "504": 2, "429": 5}, map[string]float64{ShedQueueFull: 5},
		Bucket{0.1, 180}, Bucket{1, 200}, Bucket{inf, 200})
	cases := []struct {
		name      string
		prev, cur map[string]Sample
		want      Interval
	}{
		{
			name: "one pod, plain increase",
			prev: map[string]Sample{"a": podA0}, cur: map[string]Sample{"a": podA1},
			// 90 + 2 + 2 + 5 requests; errors 500s and 504s; shed the 429s.
			want: Interval{Requests: 99, Errors: 4, Failures: 4, Shed: 5, Pods: 1, HasLatency: true, P99: time.Duration((0.1 + 0.9*(98.01-90)/9) * float64(time.Second))},
		},
		{
			name: "queue-timeout and draining 503s are shed, not errors",
			prev: map[string]Sample{"a": sample(map[string]float64{"200": 10}, nil, Bucket{0.5, 10}, Bucket{inf, 10})},
			cur: map[string]Sample{"a": sample(map[string]float64{"200": 80, "503": 15, "502": 3, "429": 2},
				map[string]float64{ShedQueueTimeout: 10, ShedDraining: 4, ShedQueueFull: 2}, Bucket{0.5, 110}, Bucket{inf, 110})},
			// 503: 10 queue timeout (shed) + 4 draining (neither) + 1 real error; 502: 3 errors.
			want: Interval{Requests: 90, Errors: 4, Failures: 4, Shed: 12, Pods: 1, HasLatency: true, P99: 495 * time.Millisecond},
		},
		{
			name: "counter reset: current counters are the delta",
			prev: map[string]Sample{"a": podA1},
			cur:  map[string]Sample{"a": sample(map[string]float64{"200": 30, "500": 1}, nil, Bucket{0.1, 31}, Bucket{1, 31}, Bucket{inf, 31})},
			want: Interval{Requests: 31, Errors: 1, Failures: 1, Pods: 1, Resets: 1, HasLatency: true, P99: time.Duration(0.1 * 30.69 / 31 * float64(time.Second))},
		},
		{
			name: "pod gone between samples is left out",
			prev: map[string]Sample{"a": podA0, "b": podA0},
			cur:  map[string]Sample{"a": podA1},
			want: Interval{Requests: 99, Errors: 4, Failures: 4, Shed: 5, Pods: 1, Gone: 1, HasLatency: true, P99: time.Duration((0.1 + 0.9*(98.01-90)/9) * float64(time.Second))},
		},
		{
			name: "new pod only gives a baseline",
			prev: map[string]Sample{"a": podA0},
			cur:  map[string]Sample{"a": podA0, "c": podA1},
			want: Interval{Pods: 1, New: 1},
		},
		{
			name: "two pods sum, their buckets merge by bound",
			prev: map[string]Sample{
				"a": sample(map[string]float64{"200": 0}, nil, Bucket{0.1, 0}, Bucket{1, 0}, Bucket{inf, 0}),
				"b": sample(map[string]float64{"200": 0}, nil, Bucket{0.1, 0}, Bucket{1, 0}, Bucket{inf, 0}),
			},
			cur: map[string]Sample{
				"a": sample(map[string]float64{"200": 50}, nil, Bucket{0.1, 50}, Bucket{1, 50}, Bucket{inf, 50}),
				"b": sample(map[string]float64{"200": 50}, nil, Bucket{0.1, 0}, Bucket{1, 0}, Bucket{inf, 50}),
			},
			// Half the requests took longer than 1s: p99 falls in +Inf.
			want: Interval{Requests: 100, Pods: 2, HasLatency: true, P99: time.Second},
		},
		{
			name: "no traffic",
			prev: map[string]Sample{"a": podA0}, cur: map[string]Sample{"a": podA0},
			want: Interval{Pods: 1},
		},
		{
			name: "nothing at all",
			want: Interval{},
		},
	}
	for _, c := range cases {
		got := Delta(c.prev, c.cur)
		if d := got.P99 - c.want.P99; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("%s: p99 %s, want %s", c.name, got.P99, c.want.P99)
		}
		got.P99 = c.want.P99
		if got != c.want {
			t.Errorf("%s:\n got  %+v\n want %+v", c.name, got, c.want)
		}
	}
}

func BenchmarkDelta100Pods(b *testing.B) {
	prev, cur := map[string]Sample{}, map[string]Sample{}
	for i := range 100 {
		pod := string(rune('a'+i%26)) + string(rune('a'+i/26))
		prev[pod] = sample(map[string]float64{"200": 100, "500": 1, "429": 3}, map[string]float64{ShedQueueFull: 3},
			Bucket{0.01, 10}, Bucket{0.1, 80}, Bucket{1, 100}, Bucket{inf, 104})
		cur[pod] = sample(map[string]float64{"200": 200, "500": 2, "429": 6}, map[string]float64{ShedQueueFull: 6},
			Bucket{0.01, 20}, Bucket{0.1, 160}, Bucket{1, 200}, Bucket{inf, 208})
	}
	for b.Loop() {
		_ = Delta(prev, cur)
	}
}
