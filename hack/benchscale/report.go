package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// runReport prints the results as docs/scale.md's tables: Flux's benchmark
// shape (objects, type, component, duration, max memory) with the baseline
// and the ratios beside, then the scale targets (docs/scale.md) marked met or not.
func runReport(files []string) error {
	if len(files) == 0 {
		return fmt.Errorf("report: no result files")
	}
	bySide := map[string]map[int]*Result{"baseline": {}, "operator": {}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		r := &Result{}
		if err := json.Unmarshal(b, r); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if bySide[r.Side] == nil {
			return fmt.Errorf("%s: unknown side %q", f, r.Side)
		}
		bySide[r.Side][r.N] = r
	}
	report(os.Stdout, bySide["baseline"], bySide["operator"])
	return nil
}

func report(w io.Writer, base, op map[int]*Result) {
	var ns []int
	for n := range op {
		ns = append(ns, n)
	}
	sort.Ints(ns)

	fmt.Fprintln(w, "| Objects | Type | Component | Duration | Max Memory | CPU | API writes | Queue depth (max / mean) | kubectl baseline | Ratio |")
	fmt.Fprintln(w, "|---------|------|-----------|----------|------------|-----|------------|--------------------------|------------------|-------|")
	for _, n := range ns {
		o, b := op[n], base[n]
		create, rollout, idle := phase(o, "create"), phase(o, "rollout"), phase(o, "idle")
		bc, br := phase(b, "create"), phase(b, "rollout")
		if create != nil {
			fmt.Fprintf(w, "| %d | created to all Ready | rag-operator | %s | %s | %.0fs | %s | %s | %s | %s |\n",
				n, dur(create), mib(create.PeakRSSMiB), create.CPUSeconds, perService(create, n), depth(create),
				baselineCell(bc, n), ratio(create, bc))
		}
		if rollout != nil {
			r := "–"
			if create != nil && !rollout.TimedOut {
				r = fmt.Sprintf("%.2fx the create", rollout.Seconds/create.Seconds)
			}
			fmt.Fprintf(w, "| %d | template change, all promoted | rag-operator | %s | %s | %.0fs | %s | %s | %s | %s |\n",
				n, dur(rollout), mib(rollout.PeakRSSMiB), rollout.CPUSeconds, perService(rollout, n), depth(rollout),
				baselineCell(br, n), r)
		}
		if idle != nil {
			fmt.Fprintf(w, "| %d | idle, %s | rag-operator | – | %s | %.1fs | %.1f per minute | %s | – | – |\n",
				n, dur(idle), mib(idle.PeakRSSMiB), idle.CPUSeconds, float64(idle.ManagerWrites)/(idle.Seconds/60), depth(idle))
		}
		if u := phase(o, "unrelated-pods"); u != nil {
			heap := ""
			if u.HeapBeforeMiB > 0 && u.HeapAfterMiB > 0 {
				heap = fmt.Sprintf("; heap in use %s -> %s (%+.1f MiB)", mib(u.HeapBeforeMiB), mib(u.HeapAfterMiB), u.HeapAfterMiB-u.HeapBeforeMiB)
			}
			if u.LiveBeforeMiB > 0 && u.LiveAfterMiB > 0 {
				heap += fmt.Sprintf("; live heap after a forced collection %s -> %s (%+.1f MiB)", mib(u.LiveBeforeMiB), mib(u.LiveAfterMiB), u.LiveAfterMiB-u.LiveBeforeMiB)
			}
			fmt.Fprintf(w, "| %d | + %d unrelated Pods | rag-operator | %s | RSS %s -> %s (%+.1f MiB)%s | %.1fs | %d | – | – | – |\n",
				n, u.Total, dur(u), mib(u.RSSBeforeMiB), mib(u.RSSAfterMiB), u.RSSAfterMiB-u.RSSBeforeMiB, heap, u.CPUSeconds, u.ManagerWrites)
		}
	}

	if len(ns) == 0 {
		return
	}
	top := ns[len(ns)-1]
	o, b := op[top], base[top]
	fmt.Fprintf(w, "\nWrites per service by request, N = %d (from the audit log; the manager's ServiceAccount):\n\n", top)
	fmt.Fprintln(w, "| Request | create | rollout |")
	fmt.Fprintln(w, "|---------|--------|---------|")
	create, rollout := phase(o, "create"), phase(o, "rollout")
	kinds := map[string]bool{}
	for _, p := range []*Phase{create, rollout} {
		if p != nil {
			for k := range p.ManagerKinds {
				kinds[k] = true
			}
		}
	}
	var ks []string
	for k := range kinds {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		fmt.Fprintf(w, "| %s | %s | %s |\n", k, kindPerService(create, k, top), kindPerService(rollout, k, top))
	}

	fmt.Fprintf(w, "\nThe cluster's controllers' writes per service, N = %d (from the audit log; each controller has its own client and rate limit, 20 requests per second by default):\n\n", top)
	fmt.Fprintln(w, "| Controller | baseline create | operator create | baseline rollout | operator rollout |")
	fmt.Fprintln(w, "|------------|-----------------|-----------------|------------------|------------------|")
	bcreate, brollout := phase(b, "create"), phase(b, "rollout")
	for _, c := range clusterControllers {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", c,
			clusterPerService(bcreate, c, top), clusterPerService(create, c, top), clusterPerService(brollout, c, top), clusterPerService(rollout, c, top))
	}

	fmt.Fprintf(w, "\nTargets, N = %d:\n\n", top)
	bc := phase(b, "create")
	idle := phase(o, "idle")
	target := func(ok bool, known bool, what string) {
		mark := "not met"
		switch {
		case !known:
			mark = "not measured"
		case ok:
			mark = "met"
		}
		fmt.Fprintf(w, "- %s: **%s**\n", what, mark)
	}
	if create != nil && bc != nil {
		target(!create.TimedOut && !bc.TimedOut && create.Seconds <= bc.Seconds, true,
			fmt.Sprintf("created to all Ready <= 1.0x the kubectl baseline: %.1fs vs %.1fs, %.3fx", create.Seconds, bc.Seconds, create.Seconds/bc.Seconds))
	} else {
		target(false, false, "created to all Ready <= 1.0x the kubectl baseline")
	}
	if create != nil && rollout != nil {
		target(!rollout.TimedOut && rollout.Seconds <= 1.3*create.Seconds, true,
			fmt.Sprintf("template change to all <= 1.3x the create time: %s, %.2fx (manager CPU %.0fs, queue depth max %.0f)",
				dur(rollout), rollout.Seconds/create.Seconds, rollout.CPUSeconds, rollout.MaxQueueDepth))
	}
	if rollout != nil {
		// Every service has one replica: a rollout that hands the canary's
		// pod over creates one pod per service.
		perSvc := float64(rollout.PodsCreated) / float64(top)
		baseline := "not measured"
		if br := phase(b, "rollout"); br != nil {
			baseline = fmt.Sprintf("%.2f", float64(br.PodsCreated)/float64(top))
		}
		target(!rollout.TimedOut && rollout.PodsCreated <= top, true,
			fmt.Sprintf("pods created per one-step rollout = spec.replicas (1): %.2f (kubectl baseline's rolling update: %s)", perSvc, baseline))
	}
	if idle != nil {
		perMin := float64(idle.ManagerWrites) / (idle.Seconds / 60)
		target(idle.ManagerWrites == 0, true, fmt.Sprintf("0 API writes per minute at idle: %.1f", perMin))
	}
	// Not targets any more (status is written by one rule, not held back
	// to save writes): what the manager wrote, for comparison with earlier runs.
	for _, p := range []*Phase{create, rollout} {
		if p != nil {
			fmt.Fprintf(w, "- API writes per service for the %s (no target): %.1f\n", p.Name, float64(p.ManagerWrites)/float64(top))
		}
	}
	found := false
	for _, n := range ns {
		if u := phase(op[n], "unrelated-pods"); u != nil {
			found = true
			d := u.RSSAfterMiB - u.RSSBeforeMiB
			target(!u.TimedOut && d < 10, true, fmt.Sprintf("%d unrelated Pods add < 10 MiB of manager RSS (N = %d): %+.1f MiB", u.Total, n, d))
		}
	}
	if !found {
		target(false, false, "unrelated Pods add < 10 MiB of manager RSS")
	}
	var loads []string
	for _, n := range ns {
		for _, p := range op[n].Phases {
			loads = append(loads, fmt.Sprintf("N=%d %s: %s", n, p.Name, p.LoadAverage))
		}
	}
	fmt.Fprintf(w, "\nLoad average (1, 5, 15 min) at the end of each operator phase: %s.\n", strings.Join(loads, "; "))
	var warm []string
	for _, n := range ns {
		if p := phase(base[n], "create"); p != nil && p.WarmUpSeconds > 0 {
			warm = append(warm, fmt.Sprintf("N=%d baseline %.1fs", n, p.WarmUpSeconds))
		}
		if p := phase(op[n], "create"); p != nil && p.WarmUpSeconds > 0 {
			warm = append(warm, fmt.Sprintf("N=%d operator %.1fs", n, p.WarmUpSeconds))
		}
	}
	if len(warm) > 0 {
		fmt.Fprintf(w, "\nkubectl warm-up before each create's timer (the same apply as a server-side dry run; not in the durations): %s.\n", strings.Join(warm, "; "))
	}
}

func phase(r *Result, name string) *Phase {
	if r == nil {
		return nil
	}
	for i := range r.Phases {
		if r.Phases[i].Name == name {
			return &r.Phases[i]
		}
	}
	return nil
}

func dur(p *Phase) string {
	d := time.Duration(p.Seconds * float64(time.Second)).Round(time.Second).String()
	if p.TimedOut {
		return fmt.Sprintf("timed out (%d/%d after %s)", p.Done, p.Total, d)
	}
	return d
}

func mib(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0fMi", v)
}

func perService(p *Phase, n int) string {
	return fmt.Sprintf("%.1f per service", float64(p.ManagerWrites)/float64(n))
}

func kindPerService(p *Phase, kind string, n int) string {
	if p == nil || p.ManagerKinds[kind] == 0 {
		return "0"
	}
	return fmt.Sprintf("%.2f", float64(p.ManagerKinds[kind])/float64(n))
}

// clusterPerService is controller's writes per service in p; "–" for a
// phase not run or a result from before they were counted.
func clusterPerService(p *Phase, controller string, n int) string {
	if p == nil || p.ClusterWrites == nil {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(p.ClusterWrites[controller])/float64(n))
}

func depth(p *Phase) string {
	return fmt.Sprintf("%.0f / %.0f", p.MaxQueueDepth, p.MeanQueueDepth)
}

func baselineCell(b *Phase, n int) string {
	if b == nil {
		return "–"
	}
	return fmt.Sprintf("%s (%.0f kubectl writes per service)", dur(b), float64(b.KubectlWrites)/float64(n))
}

func ratio(p, b *Phase) string {
	if p == nil || b == nil || p.TimedOut || b.TimedOut || b.Seconds == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", p.Seconds/b.Seconds)
}
