package fleet

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// base is a steady service whose spec the operator read at generation 3,
// now asked (by a new default image v2) for revision "new".
func base(mutate ...func(*Facts)) Facts {
	f := Facts{
		Key: "ns/a", Image: "embedserver:v2",
		Generation: 3, ObservedGeneration: 3,
		SpecHash: "spec1", DesiredRevision: "new",
		Stable:         "old",
		CanaryStrategy: true,
		Record:         &v1alpha1.FleetRolloutStatus{SpecGeneration: 3, SpecHash: "spec1"},
	}
	for _, m := range mutate {
		m(&f)
	}
	return f
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name       string
		facts      Facts
		role       Role
		user       bool
		failed     bool
		revision   string // the record's revision after the pass
		rolledBack string // the record's rolledBackImage after the pass
	}{
		{"new default image, spec unchanged: pending", base(), RolePending, false, false, "new", ""},
		{"steady: nothing", base(func(f *Facts) { f.DesiredRevision = "old" }), RoleNone, false, false, "", ""},
		{"first revision: nothing", base(func(f *Facts) { f.Stable = "" }), RoleNone, false, false, "", ""},
		{"spec cannot be built: nothing", base(func(f *Facts) { f.DesiredRevision, f.SpecHash = "", "" }), RoleNone, false, false, "", ""},
		{"user edited the template: never queued", base(func(f *Facts) { f.Generation, f.SpecHash = 4, "spec2" }), RoleNone, true, false, "", ""},
		{"HPA wrote replicas (generation only): still pending", base(func(f *Facts) { f.Generation = 4 }), RolePending, false, false, "new", ""},
		{"CRD defaults on read (hash only): still pending", base(func(f *Facts) { f.SpecHash = "spec2" }), RolePending, false, false, "new", ""},
		{"no record, operator acted on this generation: pending", base(func(f *Facts) { f.Record = nil }), RolePending, false, false, "new", ""},
		{"no record, a generation not acted on: the user's", base(func(f *Facts) { f.Record, f.Generation = nil, 4 }), RoleNone, true, false, "", ""},
		{"RollingUpdate: not staged", base(func(f *Facts) { f.CanaryStrategy = false }), RoleNone, false, false, "", ""},
		{"paused: the planner holds it", base(func(f *Facts) { f.Paused = true }), RoleNone, false, false, "", ""},
		{"its canary runs", base(func(f *Facts) { f.Canary, f.Record.Revision, f.Record.Image = "new", "new", "embedserver:v2" }), RoleRunning, false, false, "new", ""},
		{"promoting: already stable, the canary not yet cleared: still runs", base(func(f *Facts) {
			f.Stable, f.Canary, f.Record.Revision, f.Record.Image = "new", "new", "new", "embedserver:v2"
		}), RoleRunning, false, false, "new", ""},
		{"a user's canary of the desired revision runs: not the fleet's", base(func(f *Facts) { f.Canary = "new" }), RoleNone, false, false, "", ""},
		{"a user's canary runs, a new default image: pending", base(func(f *Facts) { f.Canary = "users" }), RolePending, false, false, "new", ""},
		{"a newer image replaces a running fleet canary in its slot", base(func(f *Facts) {
			f.Canary, f.Record.Revision, f.Record.Image = "mid", "mid", "embedserver:v1.5"
		}), RoleRunning, false, false, "new", ""},
		{"user edits during a fleet canary: the user's", base(func(f *Facts) {
			f.Canary, f.Record.Revision, f.Record.Image = "new", "new", "embedserver:v2"
			f.Generation, f.SpecHash, f.DesiredRevision = 4, "spec2", "users"
		}), RoleNone, true, false, "", ""},
		{"rolled back: a failure of the image", base(func(f *Facts) {
			f.RolledBack, f.Record.Revision, f.Record.Image = "new", "new", "embedserver:v2"
		}), RoleNone, false, true, "new", "embedserver:v2"},
		{"rolled back an older image: not a failure of this one", base(func(f *Facts) {
			f.RolledBack, f.Record.Revision, f.Record.Image = "mid", "mid", "embedserver:v1.5"
		}), RolePending, false, false, "new", "embedserver:v1.5"},
		{"a user's own rollback: not the fleet's", base(func(f *Facts) { f.RolledBack = "users" }), RolePending, false, false, "new", ""},
		{"failure stays after the user's change", base(func(f *Facts) {
			f.Record.Revision, f.Record.Image, f.Record.RolledBackImage = "new", "embedserver:v2", "embedserver:v2"
			f.Generation, f.SpecHash, f.DesiredRevision = 4, "spec2", "users"
		}), RoleNone, true, true, "", "embedserver:v2"},
		{"retried and promoted: no longer a failure", base(func(f *Facts) {
			f.Stable, f.RolledBack = "new", "new"
			f.Record.Revision, f.Record.Image, f.Record.RolledBackImage = "new", "embedserver:v2", "embedserver:v2"
		}), RoleNone, false, false, "new", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Classify(tc.facts)
			if c.Role != tc.role || c.UserChange != tc.user || c.Failed != tc.failed {
				t.Errorf("role %s user %v failed %v, want %s %v %v", c.Role, c.UserChange, c.Failed, tc.role, tc.user, tc.failed)
			}
			if c.Record.Revision != tc.revision || c.Record.RolledBackImage != tc.rolledBack {
				t.Errorf("record %+v, want revision %q rolledBackImage %q", c.Record, tc.revision, tc.rolledBack)
			}
			if tc.facts.SpecHash != "" && (c.Record.SpecHash != tc.facts.SpecHash || c.Record.SpecGeneration != tc.facts.Generation) {
				t.Errorf("baseline %d/%q, want the spec read now %d/%q", c.Record.SpecGeneration, c.Record.SpecHash, tc.facts.Generation, tc.facts.SpecHash)
			}
		})
	}
}

// The baseline moves every pass: a change is the user's in the pass that
// first sees it, and the next pass compares with the spec it left.
func TestClassifyBaselineMoves(t *testing.T) {
	f := base(func(f *Facts) { f.Generation, f.SpecHash = 4, "spec2" })
	c := Classify(f)
	if !c.UserChange {
		t.Fatal("an edit of the template is the user's change")
	}
	f.Record = &c.Record
	if again := Classify(f); again.UserChange {
		t.Fatal("the same spec read again is no change")
	}
}

func members(n int, role Role) []Member {
	out := make([]Member, n)
	for i := range out {
		out[i] = Member{Key: fmt.Sprintf("ns/svc-%02d", i), Role: role}
	}
	return out
}

func TestDecide(t *testing.T) {
	l := Limits{MaxCanaries: 5, FailureLimit: 2}
	cases := []struct {
		name    string
		fleet   func() []Member
		key     string
		admit   bool
		stopped bool
		pos     int
		waiting int
		running int
		next    int
	}{
		{"the first five by name start", func() []Member { return members(50, RolePending) }, "ns/svc-04", true, false, 0, 45, 0, 4},
		{"the sixth waits first in line", func() []Member { return members(50, RolePending) }, "ns/svc-05", false, false, 1, 45, 0, 5},
		{"the last waits last", func() []Member { return members(50, RolePending) }, "ns/svc-49", false, false, 45, 45, 0, 5},
		{"five running: none starts", func() []Member {
			m := members(50, RolePending)
			for i := range 5 {
				m[i].Role = RoleRunning
			}
			return m
		}, "ns/svc-05", false, false, 1, 45, 5, 0},
		{"one of five done: the next by name starts", func() []Member {
			m := members(50, RolePending)
			m[0].Role = RoleNone
			for i := 1; i < 5; i++ {
				m[i].Role = RoleRunning
			}
			return m
		}, "ns/svc-05", true, false, 0, 44, 4, 0},
		{"reserved and still pending counts as running", func() []Member {
			m := members(10, RolePending)
			for i := range 5 {
				m[i].Reserved = true
			}
			return m
		}, "ns/svc-05", false, false, 1, 5, 5, 0},
		{"a reserved service is admitted again", func() []Member {
			m := members(10, RolePending)
			for i := range 5 {
				m[i].Reserved = true
			}
			return m
		}, "ns/svc-03", true, false, 0, 5, 5, 0},
		{"one failure: still going", func() []Member {
			m := members(10, RolePending)
			m[0].Role, m[0].Failed = RoleNone, true
			return m
		}, "ns/svc-01", true, false, 0, 4, 0, 4},
		{"two failures: stopped, nobody starts", func() []Member {
			m := members(10, RolePending)
			m[0].Role, m[0].Failed = RoleNone, true
			m[1].Role, m[1].Failed = RoleNone, true
			return m
		}, "ns/svc-02", false, true, 1, 8, 0, 0},
		{"stopped: a reserved one does not start either", func() []Member {
			m := members(10, RolePending)
			m[0].Role, m[0].Failed = RoleNone, true
			m[1].Role, m[1].Failed = RoleNone, true
			m[2].Reserved = true
			return m
		}, "ns/svc-02", false, true, 0, 7, 1, 0},
		{"not pending: never admitted", func() []Member { return members(3, RoleNone) }, "ns/svc-00", false, false, 0, 0, 0, 0},
		{"running canaries over the limit (flag lowered): none starts", func() []Member {
			m := members(10, RoleRunning)
			m[9].Role = RolePending
			return m
		}, "ns/svc-09", false, false, 1, 1, 9, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.fleet(), tc.key, l)
			if d.Admit != tc.admit || d.Stopped != tc.stopped || d.Position != tc.pos || d.Waiting != tc.waiting || d.Running != tc.running || len(d.Next) != tc.next {
				t.Errorf("got %+v, want admit %v stopped %v position %d waiting %d running %d next %d", d, tc.admit, tc.stopped, tc.pos, tc.waiting, tc.running, tc.next)
			}
			if slices.Contains(d.Next, tc.key) {
				t.Errorf("Next %v names the service itself", d.Next)
			}
		})
	}
}

// The queue's order is the keys' order, whatever the members' order: the
// admitted are always a prefix of the sorted queue.
func TestDecideOrderIsStable(t *testing.T) {
	m := members(20, RolePending)
	slices.Reverse(m)
	var admitted []string
	for _, x := range m {
		if Decide(m, x.Key, Limits{MaxCanaries: 3, FailureLimit: 2}).Admit {
			admitted = append(admitted, x.Key)
		}
	}
	slices.Sort(admitted)
	if want := []string{"ns/svc-00", "ns/svc-01", "ns/svc-02"}; !slices.Equal(admitted, want) {
		t.Fatalf("admitted %v, want %v", admitted, want)
	}
}

func TestDefaultsApply(t *testing.T) {
	d := Decide(members(10, RolePending), "ns/svc-04", Limits{})
	if !d.Admit || d.Waiting != 10-DefaultMaxCanaries {
		t.Fatalf("zero limits use the defaults: %+v", d)
	}
}

func TestMessage(t *testing.T) {
	reason, msg := Decision{Position: 3, Waiting: 40, Running: 5, MaxCanaries: 5}.Message("embedserver:v2")
	if reason != ReasonWaiting || !strings.Contains(msg, "embedserver:v2") || !strings.Contains(msg, "at most 5 operator-caused canaries") {
		t.Errorf("%s: %s", reason, msg)
	}
	// The queue moving does not change the words: no status write per pass.
	if _, again := (Decision{Position: 1, Waiting: 39, Running: 4, MaxCanaries: 5}).Message("embedserver:v2"); again != msg {
		t.Errorf("the message changed with the queue: %q, then %q", msg, again)
	}
	reason, msg = Decision{Stopped: true, Failures: 2, FailureLimit: 2}.Message("embedserver:bad")
	if reason != ReasonStopped || !strings.Contains(msg, "embedserver:bad") || !strings.Contains(msg, "2 services rolled it back (limit 2") {
		t.Errorf("%s: %s", reason, msg)
	}
}

// BenchmarkFleetPass is the gate's pure work in one pass of a fleet of
// 1,000 services, 995 of them waiting and 5 running: classify each (as
// consultFleet does from the cache) and decide for the last in the queue.
// A waiting service rechecks once a minute, so a minute of rechecks costs
// 1,000 times one op.
func BenchmarkFleetPass(b *testing.B) {
	const n = 1000
	facts := make([]Facts, n)
	for i := range facts {
		facts[i] = base(func(f *Facts) {
			f.Key = fmt.Sprintf("ns/svc-%04d", i)
			if i < 5 {
				f.Canary = f.DesiredRevision
				f.Record = &v1alpha1.FleetRolloutStatus{SpecGeneration: 3, SpecHash: "spec1", Revision: "new", Image: "embedserver:v2"}
			}
		})
	}
	key := facts[n-1].Key
	ms := make([]Member, n)
	b.ReportAllocs()
	for b.Loop() {
		for i, f := range facts {
			c := Classify(f)
			ms[i] = Member{Key: f.Key, Role: c.Role, Failed: c.Failed}
		}
		d := Decide(ms, key, Limits{MaxCanaries: 5, FailureLimit: 2})
		if d.Admit || d.Running != 5 || d.Waiting != n-5 {
			b.Fatalf("decision %+v: want 5 running and %d waiting", d, n-5)
		}
	}
}
