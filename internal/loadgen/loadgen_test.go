package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	d := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.5, 0},
		{d(7), 0.99, 7},
		{d(1, 2, 3, 4), 0.5, 2},
		{d(1, 2, 3, 4), 0.99, 4},
		{d(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.5, 5},
		{d(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 0.9, 9},
	}
	for _, tt := range tests {
		if got := Percentile(tt.in, tt.q); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}

func TestClassifies(t *testing.T) {
	statuses := []int{200, 429, 503, 504, 500, 200}
	i := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One client sends in order, so answers follow the list; the last one hangs.
		if i == len(statuses) {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(statuses[i])
		i++
	}))
	defer ts.Close()
	r := Run(context.Background(), Config{URL: ts.URL, Concurrency: 1, Requests: 7, Deadline: 100 * time.Millisecond, Margin: 50 * time.Millisecond})
	if r.Requests != 7 || r.OK != 2 || r.Shed != 2 || r.Timeouts != 1 || r.Errors != 1 || r.Hung != 1 {
		t.Fatalf("%+v", r)
	}
}
