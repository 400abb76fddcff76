package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/loadgen"
)

// previousRelease is the commit of the last operator before one Deployment per
// revision: it ran `<svc>-stable` and `<svc>-canary`, selected by the track
// label. The repository has no release tags; this commit is that release.
const previousRelease = "32bcbd9"

// buildPreviousManager builds cmd/manager of previousRelease from the
// repository's own history (git archive, so no checkout is touched), or skips
// the test when the history does not have it (a shallow clone).
func buildPreviousManager(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) *exec.Cmd {
		// safe.directory: the suite runs as root, the checkout may belong to someone else.
		return exec.Command("git", append([]string{"-c", "safe.directory=*", "-C", root}, args...)...)
	}
	if out, err := git("cat-file", "-e", previousRelease+"^{commit}").CombinedOutput(); err != nil {
		t.Skipf("the previous release's commit %s is not in this clone's history (a shallow clone? fetch with --unshallow): %v %s", previousRelease, err, out)
	}
	src := t.TempDir()
	archive := git("archive", "--format=tar", previousRelease)
	var tarOut bytes.Buffer
	archive.Stdout = &tarOut
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", previousRelease, err)
	}
	untar := exec.Command("tar", "-x", "-C", src)
	untar.Stdin = &tarOut
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpacking %s: %v %s", previousRelease, err, out)
	}
	bin := filepath.Join(stateDir, "bin", "manager-"+previousRelease)
	start := time.Now()
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/manager")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the manager of %s: %v\n%s", previousRelease, err, out)
	}
	t.Logf("built the manager of %s in %s", previousRelease, time.Since(start).Round(100*time.Millisecond))
	return bin
}

// A service created by the previous release's manager (`docs-stable`,
// `docs-canary`), left in the middle of a canary, is moved to one Deployment
// per revision by the current manager: `docs-<revision>` for each revision at
// its size, the old Deployments gone once those are ready; ready pods never
// below spec.replicas meanwhile (sampled every 200ms, clients on docs' ready
// endpoints answered 200 throughout); status keeps its revisions; the canary
// then promotes, and a following canary is promoted in the new shape.
func TestUpgradeFromPreviousLayout(t *testing.T) {
	previous := &managerProc{bin: buildPreviousManager(t)}
	manager.stop()
	defer func() { // the rest of the suite runs the current manager
		previous.stop()
		if manager.cmd == nil {
			if err := manager.start(); err != nil {
				t.Errorf("restarting the suite's manager: %v", err)
			}
		}
	}()
	if err := previous.start(); err != nil {
		t.Fatal(err)
	}

	ns := namespace(t, "e2e-upgrade")
	const replicas = 2
	base := svcSpec{Name: "docs", Namespace: ns, Replicas: replicas, Steps: "    - setWeight: 50\n    - pause: {}\n"}
	apply(t, base)
	first := waitHealthy(t, ns, "docs", 90*time.Second).Status.StableRevision
	change := base
	change.MaxInFlight = 12
	apply(t, change)
	var before *ragv1.RAGService
	eventually(t, 90*time.Second, 300*time.Millisecond, "the previous manager's canary paused at 50%", func() (bool, string) {
		before = getSvc(t, ns, "docs")
		d, err := deploymentOf(ns, "docs-canary")
		ready := int32(0)
		if err == nil {
			ready = d.Status.ReadyReplicas
		}
		return before.Status.Phase == ragv1.PhasePaused && before.Status.CanaryRevision != "" && before.Status.EffectiveWeight > 0 && ready == 1,
			fmt.Sprintf("phase %s canary %q effective weight %d, docs-canary ready %d (%v)", before.Status.Phase, before.Status.CanaryRevision, before.Status.EffectiveWeight, ready, err)
	})
	canary := before.Status.CanaryRevision
	old := deploymentNames(t, ns)
	if !slices.Equal(old, []string{"docs-canary", "docs-stable"}) {
		t.Fatalf("the previous release runs Deployments %v, want docs-canary docs-stable", old)
	}
	t.Logf("the previous manager (%s): stable %s, canary %s at weight %d, Deployments %v", previousRelease, first, canary, before.Status.EffectiveWeight, old)

	load := startClients(t, ns, "docs")
	capa := watchCapacity(ns, "docs")
	loadDone := false
	defer func() {
		if !loadDone {
			load.Stop()
			capa.finish()
		}
	}()
	time.Sleep(2 * time.Second) // clients on the previous layout first
	previous.stop()
	if err := manager.start(); err != nil {
		t.Fatal(err)
	}
	upgraded := time.Now()
	want := []string{revisionDeployment("docs", canary), revisionDeployment("docs", first)}
	slices.Sort(want)
	eventually(t, 120*time.Second, 300*time.Millisecond, "the service on docs-<revision> Deployments only", func() (bool, string) {
		names := deploymentNames(t, ns)
		if !slices.Equal(names, want) {
			return false, fmt.Sprintf("Deployments %v, want %v", names, want)
		}
		st, err1 := deploymentOf(ns, revisionDeployment("docs", first))
		ca, err2 := deploymentOf(ns, revisionDeployment("docs", canary))
		if err1 != nil || err2 != nil {
			return false, fmt.Sprintf("%v %v", err1, err2)
		}
		return st.Status.ReadyReplicas == replicas && ca.Status.ReadyReplicas == 1,
			fmt.Sprintf("ready: stable %d of %d, canary %d of 1", st.Status.ReadyReplicas, replicas, ca.Status.ReadyReplicas)
	})
	for _, name := range []string{"docs-stable", "docs-canary"} {
		if _, err := deploymentOf(ns, name); !apierrors.IsNotFound(err) {
			t.Errorf("the previous layout's Deployment %s is still there: %v", name, err)
		}
	}
	movedIn := time.Since(upgraded)
	s := getSvc(t, ns, "docs")
	if s.Status.StableRevision != first || s.Status.CanaryRevision != canary || s.Status.Phase != ragv1.PhasePaused || s.Status.ObservedGeneration != s.Generation {
		t.Errorf("status after the upgrade: stable %s (was %s) canary %q (was %s) phase %s generation %d observed %d",
			s.Status.StableRevision, first, s.Status.CanaryRevision, canary, s.Status.Phase, s.Generation, s.Status.ObservedGeneration)
	}
	// The Services pick pods by revision, so the old pods served until they went.
	if sel := selectedRevision(t, ns, "docs-stable"); sel != first {
		t.Errorf("docs-stable selects revision %q, want %s", sel, first)
	}
	if sel := selectedRevision(t, ns, "docs-canary"); sel != canary {
		t.Errorf("docs-canary selects revision %q, want %s", sel, canary)
	}

	// The canary goes on after the upgrade: promoted by hand (its step waits for it).
	mustKubectl(t, "", "rag", "promote", "docs", "-n", ns)
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "120s"); code != 0 {
		t.Fatalf("promoting the canary the previous manager started: exit %d\n%s", code, tail(out, 30))
	}
	if s := getSvc(t, ns, "docs"); s.Status.StableRevision != canary || s.Status.CanaryRevision != "" {
		t.Fatalf("after the promote: stable %s (want %s) canary %q", s.Status.StableRevision, canary, s.Status.CanaryRevision)
	}
	// And a following canary, in the new shape from its start.
	next := change
	next.MaxInFlight = 16
	apply(t, next)
	var third string
	eventually(t, 90*time.Second, 300*time.Millisecond, "the following canary paused at 50%", func() (bool, string) {
		s := getSvc(t, ns, "docs")
		third = s.Status.CanaryRevision
		return s.Status.Phase == ragv1.PhasePaused && third != "" && s.Status.EffectiveWeight > 0 && s.Status.ObservedGeneration == s.Generation,
			fmt.Sprintf("phase %s canary %q effective weight %d", s.Status.Phase, third, s.Status.EffectiveWeight)
	})
	if d, err := deploymentOf(ns, revisionDeployment("docs", third)); err != nil || d.Status.ReadyReplicas < 1 {
		t.Fatalf("the following canary's Deployment %s: %v", revisionDeployment("docs", third), err)
	}
	mustKubectl(t, "", "rag", "promote", "docs", "-n", ns)
	if code, out := exitCode("rag", "status", "docs", "-n", ns, "--watch", "--timeout", "120s"); code != 0 {
		t.Fatalf("promoting the following canary: exit %d\n%s", code, tail(out, 30))
	}
	if s := getSvc(t, ns, "docs"); s.Status.StableRevision != third || s.Status.CanaryRevision != "" || s.Status.Phase != ragv1.PhaseHealthy {
		t.Fatalf("after the following canary: stable %s (want %s) canary %q phase %s", s.Status.StableRevision, third, s.Status.CanaryRevision, s.Status.Phase)
	}
	for _, name := range deploymentNames(t, ns) {
		if name == "docs-stable" || name == "docs-canary" {
			t.Errorf("the previous layout's Deployment %s came back", name)
		}
	}

	stats := load.Stop()
	loadDone = true
	polls, minTotal, minStable, worst := capa.finish()
	t.Logf("upgrade: the service on docs-%s and docs-%s %s after the current manager started; capacity from before the upgrade to the following canary's promotion: %d polls every 200ms, fewest ready pods %d in total, %d of the stable revision (spec.replicas %d); worst: %s",
		first, canary, movedIn.Round(100*time.Millisecond), polls, minTotal, minStable, replicas, worst)
	allOK(t, "the upgrade and the canaries after it", stats)
	if n := stats.Total(loadgen.TrackUnknown); n > 0 {
		t.Errorf("%d requests went to pods of no known track: %v", n, stats.Counts[loadgen.TrackUnknown])
	}
	if stats.Count("", loadgen.OutcomeOK) < 100 {
		t.Errorf("only %d answers: the load did not run", stats.Count("", loadgen.OutcomeOK))
	}
	if minTotal < replicas || minStable < replicas {
		t.Errorf("ready pods dropped below spec.replicas %d: total %d, stable %d at %s", replicas, minTotal, minStable, worst)
	}
}

// deploymentNames lists the Deployments of the RAGService docs, sorted.
func deploymentNames(t *testing.T, ns string) []string {
	t.Helper()
	var list appsv1.DeploymentList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns), client.MatchingLabels{ragv1.LabelInstance: "docs"}); err != nil {
		t.Fatalf("listing Deployments: %v", err)
	}
	var names []string
	for _, d := range list.Items {
		if d.DeletionTimestamp == nil {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return names
}
