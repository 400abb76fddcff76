package budget

import "testing"

func TestDivisor(t *testing.T) {
	cases := []struct {
		name                    string
		live, draining, allowed int
		want                    int
	}{
		{"nothing yet", 0, 0, 0, 1},
		{"steady, no surge", 2, 0, 2, 2},
		{"steady with 25% surge of 2", 2, 0, 3, 3},
		{"scale-up asked, pods not there yet", 2, 0, 5, 5},
		{"more pods than allowed (scale-down under way)", 4, 0, 2, 4},
		{"draining pods count on top", 2, 2, 3, 5},
		{"canary track adds its own", 3, 0, 3 + 1 + 1 + 1, 6},
		{"negative counts are nothing", -1, -1, -1, 1},
	}
	for _, c := range cases {
		if got := Divisor(c.live, c.draining, c.allowed); got != c.want {
			t.Errorf("%s: Divisor(%d, %d, %d) = %d, want %d", c.name, c.live, c.draining, c.allowed, got, c.want)
		}
	}
}

func TestPerPod(t *testing.T) {
	cases := []struct {
		name   string
		budget Share
		pods   int
		want   Share
	}{
		{"undeclared stays undeclared", Share{}, 3, Share{}},
		{"even split", Share{6000, 1_000_000}, 4, Share{1500, 250_000}},
		{"rounded down", Share{6000, 1000}, 7, Share{857, 142}},
		{"one pod holds it all", Share{6000, 0}, 1, Share{6000, 0}},
		{"zero pods is one", Share{6000, 0}, 0, Share{6000, 0}},
		{"smaller than the pods: 1 each, never 0 (undeclared)", Share{3, 0}, 5, Share{1, 0}},
	}
	for _, c := range cases {
		got := PerPod(c.budget, c.pods)
		if got != c.want {
			t.Errorf("%s: PerPod(%v, %d) = %v, want %v", c.name, c.budget, c.pods, got, c.want)
		}
		// The property the hand-out rests on: pods shares fit the budget
		// whenever the budget is at least one a minute per pod.
		for _, kind := range []struct{ b, s int }{{c.budget.RequestsPerMinute, got.RequestsPerMinute}, {c.budget.TokensPerMinute, got.TokensPerMinute}} {
			if kind.b >= max(c.pods, 1) && kind.s*max(c.pods, 1) > kind.b {
				t.Errorf("%s: %d pods x %d > budget %d", c.name, c.pods, kind.s, kind.b)
			}
		}
	}
}

// TestHandOutSumNeverExceedsBudget walks the pod counts of a scale-up and a
// canary, as the operator sees them, and checks the worst case of the
// argument in handout.go: every pod counted holds the largest share it may
// still hold (the one told before the count grew counts until lowered, the
// new pods start on the new share).
func TestHandOutSumNeverExceedsBudget(t *testing.T) {
	b := Share{RequestsPerMinute: 6000, TokensPerMinute: 1_000_000}
	// live, draining, allowed per step: 2 replicas (surge 1), scaled to 4
	// (surge 1), a canary of 1 (surge 1) at 4 stable, promoted (old pods
	// drain), settled.
	steps := []struct{ live, draining, allowed int }{
		{2, 0, 3}, {2, 0, 5}, {3, 0, 5}, {4, 0, 5}, {4, 0, 7}, {5, 0, 7}, {5, 0, 10}, {8, 1, 10}, {4, 4, 5}, {4, 0, 5},
	}
	for i, s := range steps {
		pods := Divisor(s.live, s.draining, s.allowed)
		share := PerPod(b, pods)
		// At most pods pods exist until the next hand-out, each on share.
		if s.live+s.draining > pods {
			t.Fatalf("step %d: %d pods exist but the budget is divided by %d", i, s.live+s.draining, pods)
		}
		if got := pods * share.RequestsPerMinute; got > b.RequestsPerMinute {
			t.Fatalf("step %d: %d pods x %d = %d > %d", i, pods, share.RequestsPerMinute, got, b.RequestsPerMinute)
		}
		if got := pods * share.TokensPerMinute; got > b.TokensPerMinute {
			t.Fatalf("step %d: tokens %d > %d", i, got, b.TokensPerMinute)
		}
	}
}
