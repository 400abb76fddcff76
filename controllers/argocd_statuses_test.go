package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/rollout"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

// The Argo CD health script (config/argocd/rag.ragops.io/RAGService/health.lua)
// is tested against these statuses, so they must be what the operator really
// writes: this test drives a RAGService to each phase on envtest and compares
// the object Argo CD would read (normalised: times, revisions and the
// namespace replaced by placeholders) with the golden files there. After a
// change of the status the operator writes, rewrite them with
//
//	make argocd-statuses
//
// (go test ./controllers/ -run '^TestArgoCDHealthStatuses$' -args -update) and
// check the health expectations in health_test.yaml next to them.
var updateGolden = flag.Bool("update", false, "rewrite the Argo CD golden statuses under config/argocd")

const argoTestdata = "../config/argocd/rag.ragops.io/RAGService/testdata"

// argoPhase brings the RAGService "docs" of its namespace to one phase.
type argoPhase struct {
	file string
	// drive creates and changes the service; it returns once the change is made.
	drive func(t *testing.T, ns string)
	// reached says the phase is there; the status is then compared once it has
	// stopped changing.
	reached func(svc *ragv1.RAGService) bool
}

// withImage: the test manager has no default image, so that a spec without
// one is the bad spec of the invalid-spec phase.
func withImage(s *ragv1.RAGService) { s.Spec.Image = testImage }

func manualSteps(pause ragv1.PauseStep) func(*ragv1.RAGService) {
	return func(s *ragv1.RAGService) {
		s.Spec.Rollout.Steps = []ragv1.RolloutStep{{SetWeight: ptr.To(int32(50))}, {Pause: &pause}}
		s.Spec.Rollout.Analysis = nil
	}
}

func createHealthy(t *testing.T, ns string, mutate ...func(*ragv1.RAGService)) {
	t.Helper()
	NewWithT(t).Expect(k8sClient.Create(context.Background(), newService(ns, "docs", 2, append([]func(*ragv1.RAGService){withImage}, mutate...)...))).To(Succeed())
	waitHealthy(t, ns, "docs", poll.Budget)
}

func reconcilingReason(svc *ragv1.RAGService) string {
	if c := condition(svc, ragv1.ConditionReconciling); c != nil && c.Status == metav1.ConditionTrue {
		return c.Reason
	}
	return ""
}

func observed(svc *ragv1.RAGService) bool { return svc.Status.ObservedGeneration == svc.Generation }

// argoPhases are the phases the health script is tested on, each written to
// testdata/<file>; a new phase is a case here, then `make argocd-statuses`,
// then its expected health in health_test.yaml (the health test fails on a
// recorded status without one).
var argoPhases = []argoPhase{
	{
		file: "progressing.json",
		drive: func(t *testing.T, ns string) {
			createHealthy(t, ns, manualSteps(ragv1.PauseStep{Duration: &metav1.Duration{Duration: time.Hour}}))
			update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 16 })
		},
		reached: func(svc *ragv1.RAGService) bool {
			return observed(svc) && svc.Status.Phase == ragv1.PhaseProgressing && reconcilingReason(svc) != "" &&
				svc.Status.CurrentStep == 1 && svc.Status.EffectiveWeight > 0
		},
	},
	{
		file: "paused-for-promote.json",
		drive: func(t *testing.T, ns string) {
			createHealthy(t, ns, manualSteps(ragv1.PauseStep{}))
			update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 16 })
		},
		reached: func(svc *ragv1.RAGService) bool {
			return observed(svc) && svc.Status.Phase == ragv1.PhasePaused && reconcilingReason(svc) != "" &&
				svc.Status.CurrentStep == 1 && svc.Status.EffectiveWeight > 0
		},
	},
	{
		file: "paused-by-spec.json",
		drive: func(t *testing.T, ns string) {
			createHealthy(t, ns, manualSteps(ragv1.PauseStep{}))
			update(t, ns, "docs", func(s *ragv1.RAGService) {
				s.Spec.Rollout.Paused = true
				s.Spec.Concurrency.MaxInFlight = 16
			})
		},
		reached: func(svc *ragv1.RAGService) bool {
			return observed(svc) && svc.Status.Phase == ragv1.PhasePaused && reconcilingReason(svc) != "" && svc.Status.CanaryRevision == ""
		},
	},
	{
		file:    "healthy.json",
		drive:   func(t *testing.T, ns string) { createHealthy(t, ns) },
		reached: func(svc *ragv1.RAGService) bool { return observed(svc) && svc.Status.Phase == ragv1.PhaseHealthy },
	},
	{
		file: "rolled-back.json",
		drive: func(t *testing.T, ns string) {
			createHealthy(t, ns, func(s *ragv1.RAGService) {
				s.Spec.Rollout.ProgressDeadline = metav1.Duration{Duration: 2 * time.Second}
			})
			// Pods of this image never become ready: rolled back at the deadline.
			update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "ragops/embedserver:stuck" })
		},
		reached: func(svc *ragv1.RAGService) bool {
			return observed(svc) && svc.Status.Phase == ragv1.PhaseRolledBack && svc.Status.Replicas == 2
		},
	},
	{
		// A declared change of embedding space: the preview runs at full size
		// on docs-canary until someone promotes.
		file: "awaiting-cutover.json",
		drive: func(t *testing.T, ns string) {
			createHealthy(t, ns, manualSteps(ragv1.PauseStep{}), func(s *ragv1.RAGService) { s.Spec.Embedding.Space = "docs-v1" })
			update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Embedding.Model, s.Spec.Embedding.Space = "hash-32", "docs-v2" })
		},
		reached: func(svc *ragv1.RAGService) bool {
			return observed(svc) && svc.Status.Phase == ragv1.PhasePaused && reconcilingReason(svc) == rollout.ReasonAwaitingCutover &&
				svc.Status.ReadyReplicas == 4
		},
	},
	{
		// The space watch found stable answering in another space than its
		// fingerprint (another model behind the same upstream URL).
		file: "space-drifted.json",
		drive: func(t *testing.T, ns string) {
			u := startLoopbackUpstream(t, fakeupstream.Space{})
			createHealthy(t, ns, watchedSpec(u, ragv1.DriftStopTraffic))
			waitFingerprint(t, ns, "docs")
			u.replace(fakeupstream.Space{Seed: 7})
		},
		reached: func(svc *ragv1.RAGService) bool {
			c := condition(svc, ragv1.ConditionSpaceDrifted)
			return observed(svc) && c != nil && c.Status == metav1.ConditionTrue
		},
	},
	{
		file: "invalid-spec.json",
		drive: func(t *testing.T, ns string) {
			createHealthy(t, ns)
			update(t, ns, "docs", func(s *ragv1.RAGService) { s.Spec.Image = "" })
		},
		reached: func(svc *ragv1.RAGService) bool {
			c := condition(svc, ragv1.ConditionStalled)
			return observed(svc) && c != nil && c.Reason == "InvalidSpec"
		},
	},
}

func TestArgoCDHealthStatuses(t *testing.T) {
	written := map[string]bool{}

	// New: created, and no operator has looked at it yet.
	newNS := kubetest.Namespace(t, k8sClient)
	NewWithT(t).Expect(k8sClient.Create(context.Background(), newService(newNS, "docs", 2, withImage))).To(Succeed())
	checkArgoGolden(t, newNS, "new.json", func(svc *ragv1.RAGService) bool { return svc.Status.ObservedGeneration == 0 }, false)
	written["new.json"] = true
	NewWithT(t).Expect(k8sClient.Delete(context.Background(), newService(newNS, "docs", 2))).To(Succeed())

	mgr := startManager(t, func(r *RAGServiceReconciler) { r.EmbedServerImage = "" })
	// The namespace of the last phase keeps its simulated pods past the
	// parallel group below.
	editedNS := kubetest.Namespace(t, k8sClient)
	startSim(t, editedNS)
	createHealthy(t, editedNS)

	t.Run("phases", func(t *testing.T) {
		for _, p := range argoPhases {
			written[p.file] = true
			t.Run(strings.TrimSuffix(p.file, ".json"), func(t *testing.T) {
				t.Parallel()
				ns := kubetest.Namespace(t, k8sClient)
				startSim(t, ns)
				p.drive(t, ns)
				checkArgoGolden(t, ns, p.file, p.reached, true)
			})
		}
	})

	// Edited while no operator runs: the status still says Healthy, for the
	// generation before.
	mgr.stop()
	update(t, editedNS, "docs", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 12 })
	checkArgoGolden(t, editedNS, "generation-not-observed.json", func(svc *ragv1.RAGService) bool {
		return svc.Status.ObservedGeneration == svc.Generation-1 && svc.Status.Phase == ragv1.PhaseHealthy
	}, false)
	written["generation-not-observed.json"] = true

	// No golden file is left that no phase writes: the health test reads them all.
	entries, err := os.ReadDir(argoTestdata)
	NewWithT(t).Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		if !e.IsDir() && !written[e.Name()] {
			t.Errorf("%s/%s is written by no phase of this test: add its phase to argoPhases or remove it", argoTestdata, e.Name())
		}
	}
}

// checkArgoGolden waits until the service has reached its phase and its status
// stopped changing, then compares it with (or, with -update, writes) the golden
// file. With nudge, the operator is made to reconcile once more after the phase
// is reached (an annotation on the stable Deployment it owns): the pass that
// reaches a phase words it as a transition ("Advanced canary ... to step 1"),
// and whether another pass follows before the test reads the status depends on
// the order of events; the next pass words the phase itself, which is what
// Argo CD shows for as long as the phase lasts.
func checkArgoGolden(t *testing.T, ns, file string, reached func(*ragv1.RAGService) bool, nudge bool) {
	t.Helper()
	path := filepath.Join(argoTestdata, file)
	var want map[string]any
	if !*updateGolden {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("reading golden status: %v (write it with `make argocd-statuses`)", err)
		}
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	var last map[string]any
	steady := 0
	nudged := !nudge
	NewWithT(t).Eventually(func(g Gomega) {
		svc := get(g, ns, "docs")
		g.Expect(reached(svc)).To(BeTrue(), "phase of %s not reached; status: %+v", file, svc.Status)
		if !nudged {
			d := stableDeployment(g, ns, "docs")
			patch := client.MergeFrom(d.DeepCopy())
			d.Annotations = map[string]string{"test.ragops.io/nudge": "1"}
			g.Expect(k8sClient.Patch(context.Background(), d, patch)).To(Succeed())
			nudged = true
			g.Expect(nudged).To(BeFalse(), "nudged the operator; waiting for it to settle")
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(ragv1.GroupVersion.WithKind("RAGService"))
		g.Expect(k8sClient.Get(context.Background(), keyOf(ns, "docs"), u)).To(Succeed())
		got, err := normaliseForArgo(u.Object)
		g.Expect(err).NotTo(HaveOccurred())
		if cmp.Equal(got, last) {
			steady++
		} else {
			last, steady = got, 0
		}
		// Five equal reads 100ms apart: the operator has settled in this phase.
		g.Expect(steady).To(BeNumerically(">=", 5), "status still changing")
		if !*updateGolden {
			g.Expect(cmp.Diff(want, got)).To(BeEmpty(), "%s differs from the status the operator wrote (-want +got); rewrite with `make argocd-statuses` if the change is intended", path)
		}
	}, poll.Budget, 100*time.Millisecond).Should(Succeed())
	if *updateGolden {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(last); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

var (
	rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	// revisionWord is a pod template hash as podtemplate.Revision writes it.
	revisionWord = regexp.MustCompile(`\b[0-9a-f]{10}\b`)
)

const (
	placeholderTime      = "2000-01-01T00:00:00Z"
	placeholderNamespace = "ns"
)

// normaliseForArgo keeps what Argo CD's health check reads (apiVersion, kind,
// name, namespace, generation, spec.rollout, status) and replaces what differs from run to
// run: times, the namespace, and revision hashes (rev-a, rev-b, ... in order
// of first appearance: stable, canary, rollback). Conditions are sorted by type.
func normaliseForArgo(obj map[string]any) (map[string]any, error) {
	meta, _ := obj["metadata"].(map[string]any)
	spec, _ := obj["spec"].(map[string]any)
	status, _ := obj["status"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	out := map[string]any{
		"apiVersion": obj["apiVersion"],
		"kind":       obj["kind"],
		"metadata":   map[string]any{"name": meta["name"], "namespace": placeholderNamespace, "generation": meta["generation"]},
		"spec":       map[string]any{"rollout": spec["rollout"]},
	}
	if status == nil {
		return out, nil
	}
	status = deepCopyJSON(status).(map[string]any)
	revs := map[string]string{}
	addRev := func(v any) {
		if s, ok := v.(string); ok && s != "" && revs[s] == "" {
			revs[s] = "rev-" + string(rune('a'+len(revs)))
		}
	}
	addRev(status["stableRevision"])
	addRev(status["canaryRevision"])
	if rb, ok := status["rollback"].(map[string]any); ok {
		addRev(rb["revision"])
	}
	if an, ok := status["analysis"].(map[string]any); ok {
		addRev(an["revision"])
		// Measured numbers change from run to run; their presence does not.
		for _, k := range []string{"requests", "errorRate", "shedRate", "latencyP99", "message"} {
			if _, ok := an[k]; ok {
				an[k] = "<measured>"
			}
		}
	}
	// Revisions that only a message names (a canary not started yet).
	walkStrings(status, func(s string) {
		for _, r := range revisionWord.FindAllString(s, -1) {
			addRev(r)
		}
	})
	status = replaceStrings(status, func(s string) string {
		if s != "" && rfc3339.FindString(s) == s {
			return placeholderTime
		}
		s = rfc3339.ReplaceAllString(s, "<time>")
		s = revisionWord.ReplaceAllStringFunc(s, func(r string) string { return revs[r] })
		if ns != "" {
			s = strings.ReplaceAll(s, ns, placeholderNamespace)
		}
		return s
	}).(map[string]any)
	if conds, ok := status["conditions"].([]any); ok {
		sort.SliceStable(conds, func(i, j int) bool {
			return conds[i].(map[string]any)["type"].(string) < conds[j].(map[string]any)["type"].(string)
		})
	}
	out["status"] = status
	// Numbers as a JSON file holds them (float64), so the two compare equal.
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	var back map[string]any
	return back, json.Unmarshal(data, &back)
}

func deepCopyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopyJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = deepCopyJSON(e)
		}
		return l
	}
	return v
}

// walkStrings calls f on every string in v, map keys in sorted order, so
// placeholders are handed out the same way on every run.
func walkStrings(v any, f func(string)) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			walkStrings(x[k], f)
		}
	case []any:
		for _, e := range x {
			walkStrings(e, f)
		}
	case string:
		f(x)
	}
}

func replaceStrings(v any, f func(string) string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = replaceStrings(e, f)
		}
	case []any:
		for i, e := range x {
			x[i] = replaceStrings(e, f)
		}
	case string:
		return f(x)
	}
	return v
}
