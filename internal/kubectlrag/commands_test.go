package kubectlrag_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/kubectlrag"
	"github.com/ragops/rag-operator/internal/testsupport/poll"
)

func TestStatusExitCodes(t *testing.T) {
	cases := []struct {
		name    string
		mutate  func(*ragv1.RAGService)
		code    int
		out     []string
		errText string
	}{
		{name: "healthy", mutate: healthy, code: kubectlrag.ExitOK,
			out: []string{"Phase:", "Healthy", "stable  7c9f5d", "Ready", "4/4 pods ready on revision 7c9f5d"}},
		{name: "healthy but generation not observed", mutate: func(s *ragv1.RAGService) {
			healthy(s)
			s.Status.ObservedGeneration = 0
		}, code: kubectlrag.ExitProgressing, errText: "waiting for the operator to observe generation 1"},
		{name: "progressing", mutate: progressing, code: kubectlrag.ExitProgressing,
			out:     []string{"Progressing", "2/4: pause 1m0s", "20% desired, 20% effective", "canary  5d2a11", "Pass", "120 requests", "p99 120ms"},
			errText: "in progress"},
		{name: "rolled back", mutate: rolledBack, code: kubectlrag.ExitFailed,
			out: []string{"RolledBack", "revision 5d2a11, AnalysisFailed"}, errText: "rolled back revision 5d2a11: AnalysisFailed"},
		{name: "degraded", mutate: func(s *ragv1.RAGService) {
			progressing(s)
			s.Status.Phase = ragv1.PhaseDegraded
			s.Status.Conditions[0] = condition(ragv1.ConditionReady, metav1.ConditionFalse, "AnalysisFailed", "holding canary: autoRollback is off")
			s.Status.Conditions = append(s.Status.Conditions, condition(ragv1.ConditionStalled, metav1.ConditionTrue, "AnalysisFailed", "holding canary: autoRollback is off"))
		}, code: kubectlrag.ExitFailed, errText: "stalled: AnalysisFailed: holding canary"},
		{name: "stalled", mutate: func(s *ragv1.RAGService) {
			progressing(s)
			s.Status.Conditions = append(s.Status.Conditions, condition(ragv1.ConditionStalled, metav1.ConditionTrue, "InvalidSpec", "secret openai not found"))
		}, code: kubectlrag.ExitFailed, errText: "stalled: InvalidSpec: secret openai not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNamespace(t)
			svc := setStatus(t, createService(t, ns, "docs"), tc.mutate)
			if svc.Status.CanaryRevision != "" {
				createRevision(t, svc, svc.Status.CanaryRevision, 1, 1)
			}
			createRevision(t, svc, svc.Status.StableRevision, 4, 4)
			r := run(t, ns, "status", "docs")
			if r.code != tc.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, tc.code, r.out, r.errOut)
			}
			for _, want := range tc.out {
				if !strings.Contains(r.out, want) {
					t.Errorf("output lacks %q:\n%s", want, r.out)
				}
			}
			if !strings.Contains(r.errOut, tc.errText) {
				t.Errorf("stderr lacks %q: %q", tc.errText, r.errOut)
			}
			if !strings.Contains(r.out, "4/4 ready") {
				t.Errorf("stable track pods missing:\n%s", r.out)
			}
		})
	}
}

// createRevision makes the Deployment of one revision as the operator does,
// <name>-<revision> selecting by revision, with ready pods in status.
func createRevision(t *testing.T, svc *ragv1.RAGService, rev string, replicas, ready int32) {
	t.Helper()
	labels := map[string]string{ragv1.LabelInstance: svc.Name, ragv1.LabelName: ragv1.NameEmbedServer, ragv1.LabelRevision: rev}
	createDeployment(t, svc, svc.Name+"-"+rev, labels, replicas, ready)
}

// createPrevious makes a Deployment of the layout before one Deployment per
// revision: <name>-<track>, selecting by the track label too.
func createPrevious(t *testing.T, svc *ragv1.RAGService, track, rev string, replicas, ready int32) {
	t.Helper()
	labels := map[string]string{ragv1.LabelInstance: svc.Name, ragv1.LabelName: ragv1.NameEmbedServer, "rag.ragops.io/track": track, ragv1.LabelRevision: rev}
	createDeployment(t, svc, svc.Name+"-"+track, labels, replicas, ready)
}

func createDeployment(t *testing.T, svc *ragv1.RAGService, name string, labels map[string]string, replicas, ready int32) {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: name, Labels: labels,
			OwnerReferences: []metav1.OwnerReference{ownerRef(svc)}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "embedserver", Image: "ragops/embedserver:test"}}},
			},
		},
	}
	if err := k8s.Create(ctx, d); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	d.Status.Replicas, d.Status.ReadyReplicas = replicas, ready
	if err := k8s.Status().Update(ctx, d); err != nil {
		t.Fatalf("update deployment status: %v", err)
	}
}

func ownerRef(svc *ragv1.RAGService) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: ragv1.GroupVersion.String(), Kind: "RAGService", Name: svc.Name, UID: svc.UID,
		Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}
}

// startWatch runs `status NAME --watch` in the background.
func startWatch(t *testing.T, ns string, args ...string) (out *syncBuffer, errOut *syncBuffer, done <-chan int) {
	t.Helper()
	out, errOut = &syncBuffer{}, &syncBuffer{}
	ch := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	go func() { ch <- kubectlRag(ctx, ns, out, errOut, append([]string{"status", "--watch"}, args...)...) }()
	return out, errOut, ch
}

func waitExit(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("status --watch did not return")
		return -1
	}
}

func TestStatusWatchUntilHealthy(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	out, errOut, done := startWatch(t, ns, "docs", "--timeout", "45s")
	poll.Until(t, "the first view", func() bool { return strings.Contains(out.String(), "Progressing") })

	// The operator advances the canary, then promotes it.
	setStatus(t, svc, func(s *ragv1.RAGService) {
		progressing(s)
		s.Status.CurrentStep, s.Status.CanaryWeight, s.Status.EffectiveWeight = 2, 50, 50
	})
	poll.Until(t, "the second view", func() bool { return strings.Contains(out.String(), "50% desired, 50% effective") })
	setStatus(t, svc, func(s *ragv1.RAGService) {
		healthy(s)
		s.Status.StableRevision = "5d2a11"
	})
	if code := waitExit(t, done); code != kubectlrag.ExitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	got := out.String()
	if n := strings.Count(got, "Name:"); n != 3 {
		t.Errorf("printed %d views, want 3 (one per change):\n%s", n, got)
	}
	if !strings.Contains(got, "stable  5d2a11") || !strings.Contains(got, "Healthy") {
		t.Errorf("last view does not show the promoted stable revision:\n%s", got)
	}
}

func TestStatusWatchRolledBack(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	out, errOut, done := startWatch(t, ns, "docs", "--timeout", "45s")
	poll.Until(t, "the first view", func() bool { return strings.Contains(out.String(), "Progressing") })
	setStatus(t, svc, rolledBack)
	if code := waitExit(t, done); code != kubectlrag.ExitFailed {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut.String(), "error rate 0.20 above 0.01") {
		t.Errorf("stderr does not say why: %q", errOut)
	}
}

// A new spec makes an old Healthy status stale: the watch waits for the operator
// to observe the new generation.
func TestStatusWatchWaitsForNewGeneration(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), healthy)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"embedding":{"maxBatchSize":32}}}`))
	if err := k8s.Patch(context.Background(), svc, patch); err != nil {
		t.Fatal(err)
	}
	out, errOut, done := startWatch(t, ns, "docs", "--timeout", "45s")
	poll.Until(t, "the first view", func() bool { return strings.Contains(out.String(), "observe generation 2") })
	select {
	case code := <-done:
		t.Fatalf("returned %d before the operator observed the new generation", code)
	case <-time.After(300 * time.Millisecond):
	}
	setStatus(t, svc, healthy)
	if code := waitExit(t, done); code != kubectlrag.ExitOK {
		t.Fatalf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestStatusWatchTimeout(t *testing.T) {
	ns := newNamespace(t)
	setStatus(t, createService(t, ns, "docs"), progressing)
	out, errOut, done := startWatch(t, ns, "docs", "--timeout", "1s")
	if code := waitExit(t, done); code != kubectlrag.ExitTimeout {
		t.Fatalf("exit code %d, want 2\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut.String(), "timed out after 1s") {
		t.Errorf("stderr: %q", errOut)
	}
	if !strings.Contains(out.String(), "Progressing") {
		t.Errorf("no view printed before the timeout:\n%s", out)
	}
}

func TestStatusWatchDeleted(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	out, errOut, done := startWatch(t, ns, "docs", "--timeout", "45s")
	poll.Until(t, "the first view", func() bool { return strings.Contains(out.String(), "Progressing") })
	if err := k8s.Delete(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, done); code != kubectlrag.ExitError {
		t.Fatalf("exit code %d, want 4\nstderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "deleted") {
		t.Errorf("stderr: %q", errOut)
	}
}

func TestUsageAndNotFound(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		args    []string
		errText string
	}{
		{[]string{"status", "missing"}, "not found"},
		{[]string{"status"}, "expected exactly one RAGService name"},
		{[]string{"status", "a", "b"}, "expected exactly one RAGService name"},
		{[]string{"status", "docs", "--no-such-flag"}, "unknown flag"},
		{[]string{"status", "docs", "--watch", "--timeout", "-1s"}, "--timeout must not be negative"},
		{[]string{"promote", "missing"}, "not found"},
		{[]string{"pause", "missing"}, "not found"},
		{[]string{"history", "missing"}, "not found"},
		{[]string{"no-such-command"}, "unknown command"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, ns, tc.args...)
			if r.code != kubectlrag.ExitError {
				t.Fatalf("exit code %d, want 4; stderr %q", r.code, r.errOut)
			}
			if !strings.Contains(r.errOut, tc.errText) {
				t.Errorf("stderr lacks %q: %q", tc.errText, r.errOut)
			}
		})
	}
}

func TestAnnotations(t *testing.T) {
	for verb, key := range map[string]string{
		"promote": ragv1.AnnotationPromote,
		"abort":   ragv1.AnnotationAbort,
		"retry":   ragv1.AnnotationRetry,
	} {
		t.Run(verb, func(t *testing.T) {
			ns := newNamespace(t)
			svc := setStatus(t, createService(t, ns, "docs"), progressing)
			r := run(t, ns, verb, "docs")
			if r.code != kubectlrag.ExitOK {
				t.Fatalf("exit code %d; stderr %q", r.code, r.errOut)
			}
			if want := "ragservice " + ns + "/docs: " + verb + " requested (" + key + "="; !strings.Contains(r.out, want) {
				t.Errorf("output %q lacks %q", r.out, want)
			}
			got := &ragv1.RAGService{}
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(svc), got); err != nil {
				t.Fatal(err)
			}
			v, ok := got.Annotations[key]
			if !ok {
				t.Fatalf("annotation %s not set: %v", key, got.Annotations)
			}
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				t.Errorf("annotation value %q is not a timestamp: %v", v, err)
			}
			if !strings.Contains(r.out, v) {
				t.Errorf("output %q does not name the token %q", r.out, v)
			}
			// A second request is a new token.
			if r := run(t, ns, verb, "docs"); r.code != kubectlrag.ExitOK {
				t.Fatalf("exit code %d; stderr %q", r.code, r.errOut)
			}
			again := &ragv1.RAGService{}
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(svc), again); err != nil {
				t.Fatal(err)
			}
			if again.Annotations[key] == v {
				t.Errorf("a second %s wrote the same token %q", verb, v)
			}
			if got.Generation != svc.Generation {
				t.Errorf("an annotation changed the generation: %d -> %d", svc.Generation, got.Generation)
			}
			assertManagedBy(t, got, "kubectl-rag")
		})
	}
}

// promote --full writes the promote-full token and leaves promote alone.
func TestPromoteFull(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	r := run(t, ns, "promote", "--full", "docs")
	if r.code != kubectlrag.ExitOK {
		t.Fatalf("exit code %d; stderr %q", r.code, r.errOut)
	}
	if want := "promote --full requested (" + ragv1.AnnotationPromoteFull + "="; !strings.Contains(r.out, want) {
		t.Errorf("output %q lacks %q", r.out, want)
	}
	got := &ragv1.RAGService{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(svc), got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[ragv1.AnnotationPromoteFull] == "" {
		t.Errorf("annotation %s not set: %v", ragv1.AnnotationPromoteFull, got.Annotations)
	}
	if _, ok := got.Annotations[ragv1.AnnotationPromote]; ok {
		t.Errorf("promote --full also set %s", ragv1.AnnotationPromote)
	}
}

func assertManagedBy(t *testing.T, obj metav1.Object, manager string) {
	t.Helper()
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == manager {
			return
		}
	}
	t.Errorf("no managedFields entry for %s", manager)
}

func TestPauseResume(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	get := func() *ragv1.RAGService {
		got := &ragv1.RAGService{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(svc), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	r := run(t, ns, "pause", "docs")
	if r.code != 0 || !strings.Contains(r.out, "ragservice "+ns+"/docs: paused") {
		t.Fatalf("pause: code %d out %q err %q", r.code, r.out, r.errOut)
	}
	paused := get()
	if !paused.Spec.Rollout.Paused {
		t.Fatal("spec.rollout.paused is not true after pause")
	}
	assertManagedBy(t, paused, "kubectl-rag")
	if r := run(t, ns, "status", "docs"); !strings.Contains(r.out, "kubectl rag resume docs") {
		t.Errorf("status does not show the pause:\n%s", r.out)
	}
	r = run(t, ns, "resume", "docs")
	if r.code != 0 || !strings.Contains(r.out, "resumed") {
		t.Fatalf("resume: code %d out %q err %q", r.code, r.out, r.errOut)
	}
	if get().Spec.Rollout.Paused {
		t.Fatal("spec.rollout.paused is still true after resume")
	}
	// The rest of the spec is untouched.
	if got := get(); len(got.Spec.Rollout.Steps) != 4 || *got.Spec.Replicas != 4 {
		t.Errorf("resume changed other fields: %+v", got.Spec)
	}
}

func TestHistory(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), func(s *ragv1.RAGService) {
		progressing(s)
		s.Status.StableRevision = "bbb222"
		s.Status.CanaryRevision = "ddd444"
		s.Status.Rollback = &ragv1.RollbackStatus{Revision: "ccc333", Reason: "AnalysisFailed", Message: "error rate 0.20 above 0.01", Time: metav1.Now()}
	})
	ctx := context.Background()
	spaces := map[string]string{"ccc333": `,"args":["--model=hash-256","--space=v2"]`, "ddd444": `,"args":["--space=v2"]`}
	for i, hash := range []string{"aaa111", "bbb222", "ccc333", "ddd444"} {
		cr := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "docs-" + hash,
				Labels:          map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: hash},
				OwnerReferences: []metav1.OwnerReference{ownerRef(svc)}},
			Data:     runtime.RawExtension{Raw: []byte(`{"spec":{"containers":[{"name":"embedserver","image":"ragops/embedserver:test"` + spaces[hash] + `}]}}`)},
			Revision: int64(i + 1),
		}
		if err := k8s.Create(ctx, cr); err != nil {
			t.Fatal(err)
		}
	}
	// A revision of another service with the same instance label but another owner stays out.
	stranger := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "docs-zzz999",
			Labels: map[string]string{ragv1.LabelInstance: "docs", ragv1.LabelRevision: "zzz999"}},
		Data:     runtime.RawExtension{Raw: []byte(`{}`)},
		Revision: 9,
	}
	if err := k8s.Create(ctx, stranger); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-10 * time.Minute)
	for i, e := range []struct{ reason, msg string }{
		{"CanaryStarted", "Started canary aaa111"},
		{"Promoted", "Promoted canary aaa111 to stable"},
		{"CanaryStarted", "Started canary bbb222"},
		{"Promoted", "Promoted canary bbb222 to stable"},
		{"CanaryStarted", "Started canary ccc333"},
		{"RolledBack", "Rolled back canary ccc333: AnalysisFailed"},
		{"CanaryStarted", "Started canary ddd444"},
		{"StepAdvanced", "Advanced canary ddd444 to step 2"},
	} {
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: "docs.ev" + string(rune('a'+i))},
			InvolvedObject: corev1.ObjectReference{Kind: "RAGService", APIVersion: ragv1.GroupVersion.String(), Namespace: ns, Name: "docs", UID: svc.UID},
			Reason:         e.reason, Message: e.msg, Type: corev1.EventTypeNormal,
			FirstTimestamp: metav1.NewTime(base.Add(time.Duration(i) * time.Minute)),
			LastTimestamp:  metav1.NewTime(base.Add(time.Duration(i) * time.Minute)),
			Source:         corev1.EventSource{Component: "rag-operator"},
		}
		if err := k8s.Create(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}

	r := run(t, ns, "history", "docs")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.errOut)
	}
	lines := strings.Split(r.out, "\n")
	wantRows := [][]string{
		{"REVISION", "HASH", "AGE", "SPACE", "STATE", "MESSAGE"},
		{"1", "aaa111", " - ", "Promoted", "Promoted canary aaa111 to stable"},
		{"2", "bbb222", " - ", "Stable"},
		{"3", "ccc333", " v2 ", "RolledBack", "AnalysisFailed: error rate 0.20 above 0.01"},
		{"4", "ddd444", " v2 ", "Canary", "step 2/4, weight 20%"},
	}
	for i, want := range wantRows {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q\n%s", i, lines[i], w, r.out)
			}
		}
	}
	if strings.Contains(r.out, "zzz999") {
		t.Errorf("history shows a revision owned by another object:\n%s", r.out)
	}
	// Events in time order.
	started := strings.Index(r.out, "Started canary aaa111")
	advanced := strings.Index(r.out, "Advanced canary ddd444 to step 2")
	if !strings.Contains(r.out, "Events:") || started < 0 || advanced < started {
		t.Errorf("events missing or out of order:\n%s", r.out)
	}
}

func TestList(t *testing.T) {
	ns := newNamespace(t)
	setStatus(t, createService(t, ns, "docs"), progressing)
	setStatus(t, createService(t, ns, "faq"), healthy)
	r := run(t, ns, "list")
	if r.code != 0 {
		t.Fatalf("code %d: %s", r.code, r.errOut)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 rows:\n%s", r.out)
	}
	for i, want := range [][]string{
		{"NAME", "READY", "PHASE", "STABLE", "CANARY", "STEP", "WEIGHT", "AGE"},
		{"docs", "False", "Progressing", "7c9f5d", "5d2a11", "2/4", "20%"},
		{"faq", "True", "Healthy", "7c9f5d", "<none>"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %q lacks %q", lines[i], w)
			}
		}
	}
	r = run(t, ns, "list", "-A")
	if !strings.Contains(r.out, "NAMESPACE") || !strings.Contains(r.out, ns) {
		t.Errorf("list -A lacks the namespace column:\n%s", r.out)
	}
	empty := newNamespace(t)
	if r := run(t, empty, "list"); r.code != 0 || !strings.Contains(r.errOut, "No RAGServices found") {
		t.Errorf("empty namespace: code %d stderr %q", r.code, r.errOut)
	}
}

// The operator marks a bad new spec Stalled without a clean pass (observedGeneration
// stays behind); the condition's generation makes the watch fail fast, not time out.
func TestStatusWatchStalledNewSpec(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), healthy)
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"image":"ragops/embedserver:broken"}}`))
	if err := k8s.Patch(context.Background(), svc, patch); err != nil {
		t.Fatal(err)
	}
	out, errOut, done := startWatch(t, ns, "docs", "--timeout", "45s")
	poll.Until(t, "the first view", func() bool { return strings.Contains(out.String(), "observe generation 2") })
	setStatus(t, svc, func(s *ragv1.RAGService) {
		c := condition(ragv1.ConditionStalled, metav1.ConditionTrue, "InvalidSpec", "image ragops/embedserver:broken cannot run")
		c.ObservedGeneration = s.Generation
		s.Status.Conditions = append(s.Status.Conditions, c)
	})
	if code := waitExit(t, done); code != kubectlrag.ExitFailed {
		t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut.String(), "stalled: InvalidSpec: image ragops/embedserver:broken cannot run") {
		t.Errorf("stderr: %q", errOut)
	}
}

// -o json and -o yaml against the API server: the documents decode, say what
// the exit code says, and an unknown format is a usage error.
func TestOutputFlag(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	createRevision(t, svc, "7c9f5d", 4, 4)
	createRevision(t, svc, "5d2a11", 1, 1)

	r := run(t, ns, "status", "docs", "-o", "json")
	var view kubectlrag.StatusView
	if err := json.Unmarshal([]byte(r.out), &view); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.out)
	}
	if r.code != kubectlrag.ExitProgressing || view.Outcome != "InProgress" || view.Step != "2/4" || len(view.Tracks) != 2 || view.Status.CanaryRevision != "5d2a11" {
		t.Errorf("status -o json: exit %d, %+v", r.code, view)
	}

	r = run(t, ns, "list", "-o", "yaml")
	var list kubectlrag.ListView
	if err := yaml.Unmarshal([]byte(r.out), &list); err != nil || r.code != 0 {
		t.Fatalf("list -o yaml: exit %d, %v\n%s", r.code, err, r.out)
	}
	if list.Kind != "List" || len(list.Items) != 1 || list.Items[0].Name != "docs" || list.Items[0].Kind != "RAGService" || list.Items[0].Status.Phase != ragv1.PhaseProgressing {
		t.Errorf("list -o yaml: %+v", list)
	}

	r = run(t, ns, "history", "docs", "-o", "json")
	var hist kubectlrag.HistoryView
	if err := json.Unmarshal([]byte(r.out), &hist); err != nil || r.code != 0 || hist.Name != "docs" || hist.Revisions == nil || hist.Events == nil {
		t.Fatalf("history -o json: exit %d, %v, %+v\n%s", r.code, err, hist, r.out)
	}

	for _, args := range [][]string{{"status", "docs", "-o", "wide"}, {"list", "-o", "name"}, {"history", "docs", "-o", "table"}} {
		if r := run(t, ns, args...); r.code != kubectlrag.ExitError || !strings.Contains(r.errOut, "unknown output format") {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.errOut)
		}
	}
}

// Tracks come from status, pods from the Deployments <name>-<revision>: when
// status makes the canary's revision stable, the same Deployment shows as
// stable, with no pod label involved. A Deployment of the layout before one
// Deployment per revision is named for what it is during the upgrade, and
// another service's Deployment is not shown.
func TestStatusTracksFromStatus(t *testing.T) {
	ns := newNamespace(t)
	svc := setStatus(t, createService(t, ns, "docs"), progressing)
	createRevision(t, svc, "7c9f5d", 4, 4)
	createRevision(t, svc, "5d2a11", 1, 1)
	other := createService(t, ns, "faq")
	createRevision(t, other, "0f0f0f", 2, 2)

	r := run(t, ns, "status", "docs")
	for _, want := range []string{
		"  stable  7c9f5d    docs-7c9f5d  4/4 ready\n",
		"  canary  5d2a11    docs-5d2a11  1/1 ready\n",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("canary: output lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "0f0f0f") {
		t.Errorf("another service's Deployment shown:\n%s", r.out)
	}

	// The handover: status alone changes the roles.
	setStatus(t, svc, func(s *ragv1.RAGService) {
		healthy(s)
		s.Status.StableRevision = "5d2a11"
	})
	r = run(t, ns, "status", "docs")
	for _, want := range []string{
		"  stable  5d2a11    docs-5d2a11  1/1 ready\n",
		"  none    7c9f5d    docs-7c9f5d  4/4 ready  not named in status\n",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("promoted: output lacks %q:\n%s", want, r.out)
		}
	}

	// The upgrade from <name>-stable: both Deployments of the stable revision.
	up := setStatus(t, createService(t, ns, "web"), healthy)
	createPrevious(t, up, "stable", "7c9f5d", 4, 4)
	createRevision(t, up, "7c9f5d", 4, 1)
	r = run(t, ns, "status", "web", "-o", "json")
	var view kubectlrag.StatusView
	if err := json.Unmarshal([]byte(r.out), &view); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, r.out)
	}
	want := []kubectlrag.TrackView{
		{Track: "stable", Revision: "7c9f5d", Deployment: "web-7c9f5d", Replicas: 4, Ready: 1},
		{Track: "stable", Revision: "7c9f5d", Deployment: "web-stable", Replicas: 4, Ready: 4, Note: "previous layout, removed once web-7c9f5d has 4 ready"},
	}
	if !reflect.DeepEqual(view.Tracks, want) {
		t.Errorf("upgrade: tracks %+v, want %+v", view.Tracks, want)
	}
}
