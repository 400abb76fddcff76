package deploysim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ragops/rag-operator/internal/rollout"
)

// operators is the strategy the operator gives both tracks.
func operators(replicas int32) Strategy {
	return Strategy{MaxSurge: rollout.MaxSurge(replicas), MaxUnavailable: rollout.MaxUnavailable}
}

func pods(spec string) []Pod {
	// "a+ a- b+": revision a ready, a not ready, b ready.
	var out []Pod
	for _, f := range strings.Fields(spec) {
		out = append(out, Pod{Revision: f[:len(f)-1], Ready: f[len(f)-1] == '+'})
	}
	return out
}

func TestNext(t *testing.T) {
	for _, c := range []struct {
		replicas int32
		pods     string
		want     Action
	}{
		{3, "", Action{Create: true, Delete: -1}},
		{3, "b- b-", Action{Create: true, Delete: -1}},
		{3, "b+ b+ b+", None},
		{2, "b+ b- b+", Action{Delete: 1}},
		{2, "b+ b+ b+", Action{Delete: 2}},
		{0, "b+", Action{Delete: 0}},
		// Rolling a to b with 4 replicas: surge 1, maxUnavailable 0.
		{4, "a+ a+ a+ a+", Action{Create: true, Delete: -1}},
		{4, "a+ a+ a+ a+ b-", None},
		{4, "a+ a+ a+ a+ b+", Action{Delete: 3}},
		// Unready old pods go first, they serve nothing.
		{4, "a+ a- a+ a+ b-", Action{Delete: 1}},
		// 8 replicas: surge 2.
		{8, "a+ a+ a+ a+ a+ a+ a+ a+ b-", Action{Create: true, Delete: -1}},
		{8, "a+ a+ a+ a+ a+ a+ a+ a+ b- b-", None},
	} {
		if got := Next(operators(c.replicas), c.replicas, "b", pods(c.pods)); got != c.want {
			t.Errorf("Next(%d, b, %q) = %+v, want %+v", c.replicas, c.pods, got, c.want)
		}
	}
}

// Rolling any size to a new revision, pods becoming ready one move later,
// never drops the ready pods below replicas and ends with exactly replicas
// pods of the new revision.
func TestRollingNeverDropsCapacity(t *testing.T) {
	for replicas := int32(1); replicas <= 12; replicas++ {
		t.Run(fmt.Sprint(replicas), func(t *testing.T) {
			ps := make([]Pod, replicas)
			for i := range ps {
				ps[i] = Pod{Revision: "a", Ready: true}
			}
			for moves := 0; moves < 1000; moves++ {
				a := Next(operators(replicas), replicas, "b", ps)
				if a == None {
					// Nothing to do until a pod becomes ready.
					progressed := false
					for i := range ps {
						if !ps[i].Ready {
							ps[i].Ready, progressed = true, true
							break
						}
					}
					if !progressed {
						break
					}
					continue
				}
				if a.Create {
					ps = append(ps, Pod{Revision: "b"})
				} else {
					ps = append(ps[:a.Delete], ps[a.Delete+1:]...)
				}
				ready := int32(0)
				for _, p := range ps {
					if p.Ready {
						ready++
					}
				}
				if ready < replicas {
					t.Fatalf("ready %d below %d after %+v: %+v", ready, replicas, a, ps)
				}
			}
			if len(ps) != int(replicas) {
				t.Fatalf("ended with %d pods, want %d: %+v", len(ps), replicas, ps)
			}
			for _, p := range ps {
				if p.Revision != "b" || !p.Ready {
					t.Fatalf("ended with %+v", ps)
				}
			}
		})
	}
}
