package observe

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/rollout"
)

func deployment(rev string, replicas int32, gen, observed int64, st appsv1.DeploymentStatus) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "docs-stable", Generation: gen},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{ragv1.LabelRevision: rev}}},
		},
		Status: st,
	}
	d.Status.ObservedGeneration = observed
	return d
}

func pod(name, rev string, ready, terminating bool) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ragv1.LabelRevision: rev}}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: status}}
	if terminating {
		p.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	}
	return p
}

func TestReadyPods(t *testing.T) {
	pods := []corev1.Pod{
		pod("a1", "a", true, false), pod("a2", "a", false, false), pod("a3", "a", true, true),
		pod("b1", "b", true, false), {ObjectMeta: metav1.ObjectMeta{Name: "nocond", Labels: map[string]string{ragv1.LabelRevision: "a"}}},
	}
	names := func(ps []corev1.Pod) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if got := ReadyRevisions(pods); !cmp.Equal(got, []string{"a", "b"}) {
		t.Errorf("ReadyRevisions = %v, want [a b]", got)
	}
	for _, c := range []struct {
		rev  string
		want []string
	}{
		{"a", []string{"a1"}}, {"b", []string{"b1"}}, {"", []string{"a1", "b1"}}, {"c", nil},
	} {
		if got := names(ReadyPods(pods, c.rev)); !cmp.Equal(got, c.want) {
			t.Errorf("ReadyPods(%q) = %v, want %v", c.rev, got, c.want)
		}
	}
}

func TestRolledOut(t *testing.T) {
	for _, c := range []struct {
		name string
		d    *appsv1.Deployment
		want bool
		msg  string
	}{
		{"absent", nil, false, "the Deployment does not exist yet"},
		{"generation not observed", deployment("a", 3, 2, 1, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3}), false, "waiting for the Deployment to observe revision a"},
		{"updating", deployment("a", 3, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 2, ReadyReplicas: 3}), false, "rolling out revision a: 2 of 3 replicas updated"},
		{"old pods left", deployment("a", 3, 2, 2, appsv1.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3, ReadyReplicas: 4}), false, "rolling out revision a: 1 old replicas pending termination"},
		{"not ready", deployment("a", 3, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2}), false, "rolling out revision a: 2 of 3 replicas ready"},
		{"done", deployment("a", 3, 2, 2, appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3}), true, "revision a rolled out"},
		{"scaled to zero", deployment("a", 0, 2, 2, appsv1.DeploymentStatus{}), true, "revision a rolled out"},
	} {
		got, msg := RolledOut(c.d)
		if got != c.want || msg != c.msg {
			t.Errorf("%s: RolledOut = %v %q, want %v %q", c.name, got, msg, c.want, c.msg)
		}
	}
}

func TestTrack(t *testing.T) {
	done := appsv1.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3}
	deadline := done
	deadline.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"}}
	threeReady := []corev1.Pod{pod("1", "a", true, false), pod("2", "a", true, false), pod("3", "a", true, false)}
	for _, c := range []struct {
		name string
		d    *appsv1.Deployment
		pods []corev1.Pod
		want rollout.Track
	}{
		{"absent", nil, threeReady, rollout.Track{}},
		{"rolled out", deployment("a", 3, 1, 1, done), threeReady,
			rollout.Track{Revision: "a", Exists: true, Replicas: 3, ReadyReplicas: 3, ServingReplicas: 3, Pods: 3, UpdatedReplicas: 3, AvailableReplicas: 3, RolledOut: true}},
		// The Deployment reports 3 ready, but they are old-revision pods: a
		// template switch in flight is not rolled out.
		{"ready pods of another revision serve but do not count", deployment("b", 3, 1, 1, done), threeReady,
			rollout.Track{Revision: "b", Exists: true, Replicas: 3, ReadyReplicas: 0, ServingReplicas: 3, Pods: 3, UpdatedReplicas: 3, AvailableReplicas: 3}},
		{"no replicas field means 1", func() *appsv1.Deployment {
			d := deployment("a", 1, 1, 1, appsv1.DeploymentStatus{Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1})
			d.Spec.Replicas = nil
			return d
		}(), threeReady[:1], rollout.Track{Revision: "a", Exists: true, Replicas: 1, ReadyReplicas: 1, ServingReplicas: 1, Pods: 1, UpdatedReplicas: 1, RolledOut: true}},
		{"past its progress deadline", deployment("a", 3, 1, 1, deadline), threeReady,
			rollout.Track{Revision: "a", Exists: true, Replicas: 3, ReadyReplicas: 3, ServingReplicas: 3, Pods: 3, UpdatedReplicas: 3, AvailableReplicas: 3, RolledOut: true, DeadlineExceeded: true}},
	} {
		if diff := cmp.Diff(c.want, Track(c.d, c.pods)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestSecretProblem(t *testing.T) {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "openai"}, Key: "api-key"}
	for _, c := range []struct {
		name   string
		ref    *corev1.SecretKeySelector
		secret *corev1.Secret
		found  bool
		want   string
	}{
		{"no ref", nil, nil, false, ""},
		{"missing", ref, nil, false, `Secret "openai" named by spec.embedding.apiKeySecretRef does not exist`},
		{"no key", ref, &corev1.Secret{Data: map[string][]byte{"other": []byte("x")}}, true, `Secret "openai" has no key "api-key" named by spec.embedding.apiKeySecretRef`},
		{"empty key", ref, &corev1.Secret{Data: map[string][]byte{"api-key": nil}}, true, `Secret "openai" has no key "api-key" named by spec.embedding.apiKeySecretRef`},
		{"fine", ref, &corev1.Secret{Data: map[string][]byte{"api-key": []byte("sk")}}, true, ""},
	} {
		if got := SecretProblem(c.ref, c.secret, c.found); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRevisionHistory(t *testing.T) {
	rev := func(name string, n int64) appsv1.ControllerRevision {
		return appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{ragv1.LabelRevision: name}}, Revision: n}
	}
	revs := []appsv1.ControllerRevision{rev("c", 3), rev("a", 1), rev("e", 5), rev("b", 2), rev("d", 4)}
	if n := NextRevisionNumber(revs); n != 6 {
		t.Errorf("next number %d, want 6", n)
	}
	if n := NextRevisionNumber(nil); n != 1 {
		t.Errorf("next number of none %d, want 1", n)
	}
	names := func(rs []appsv1.ControllerRevision) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name)
		}
		return out
	}
	if got := names(Revisions(revs)); !cmp.Equal(got, []string{"a", "b", "c", "d", "e"}) {
		t.Errorf("ordered %v", got)
	}
	for _, c := range []struct {
		name  string
		inUse map[string]bool
		limit int
		want  []string
	}{
		{"within the limit", nil, 5, nil},
		{"oldest go first", nil, 3, []string{"a", "b"}},
		{"in use is kept, the next oldest goes", map[string]bool{"a": true}, 3, []string{"b", "c"}},
		{"all in use: more than the limit stay", map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true}, 2, nil},
		{"limit 0", map[string]bool{"e": true}, 0, []string{"a", "b", "c", "d"}},
	} {
		if got := names(Prune(revs, c.inUse, c.limit)); !cmp.Equal(got, c.want) {
			t.Errorf("%s: pruned %v, want %v", c.name, got, c.want)
		}
	}
}
