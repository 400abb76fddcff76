// Package observe turns what the API server reports about a RAGService's
// owned objects (Deployments, Pods, HorizontalPodAutoscalers, Secrets,
// ControllerRevisions) into what the rollout planner reads. It is pure: the
// controller lists and gets; these functions only look.
package observe

import (
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/rollout"
)

// Revision is the revision label of a Deployment's pod template; "" for none.
func Revision(d *appsv1.Deployment) string {
	if d == nil {
		return ""
	}
	return d.Spec.Template.Labels[ragv1.LabelRevision]
}

// Track is what the planner needs of one track: d (nil when absent) and the
// pods of its track, of any revision.
func Track(d *appsv1.Deployment, pods []corev1.Pod) rollout.Track {
	if d == nil {
		return rollout.Track{}
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	rev := Revision(d)
	ready := int32(len(ReadyPods(pods, rev)))
	done, _ := RolledOut(d)
	return rollout.Track{
		Revision:          rev,
		Exists:            true,
		Replicas:          replicas,
		ReadyReplicas:     ready,
		ServingReplicas:   d.Status.ReadyReplicas,
		Pods:              d.Status.Replicas,
		UpdatedReplicas:   d.Status.UpdatedReplicas,
		AvailableReplicas: d.Status.AvailableReplicas,
		RolledOut:         done && ready >= replicas,
		DeadlineExceeded:  DeadlineExceeded(d),
	}
}

// ReadyPods are the pods that are ready, not terminating and, unless revision
// is "", of that revision: the ones that serve it.
func ReadyPods(pods []corev1.Pod, revision string) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil || !PodReady(&p) {
			continue
		}
		if revision != "" && p.Labels[ragv1.LabelRevision] != revision {
			continue
		}
		out = append(out, p)
	}
	return out
}

// ReadyRevisions are the distinct revisions of the ready, not terminating
// pods, sorted.
func ReadyRevisions(pods []corev1.Pod) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range ReadyPods(pods, "") {
		if rev := p.Labels[ragv1.LabelRevision]; !seen[rev] {
			seen[rev] = true
			out = append(out, rev)
		}
	}
	sort.Strings(out)
	return out
}

// PodReady says whether a pod's Ready condition is True.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// RolledOut is true when every pod of a Deployment runs its current template
// and is ready; otherwise the message says what is missing.
func RolledOut(d *appsv1.Deployment) (bool, string) {
	if d == nil {
		return false, "the Deployment does not exist yet"
	}
	revision := Revision(d)
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	switch {
	case st.ObservedGeneration < d.Generation:
		return false, fmt.Sprintf("waiting for the Deployment to observe revision %s", revision)
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("rolling out revision %s: %d of %d replicas updated", revision, st.UpdatedReplicas, want)
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("rolling out revision %s: %d old replicas pending termination", revision, st.Replicas-st.UpdatedReplicas)
	case st.ReadyReplicas < want:
		return false, fmt.Sprintf("rolling out revision %s: %d of %d replicas ready", revision, st.ReadyReplicas, want)
	}
	return true, fmt.Sprintf("revision %s rolled out", revision)
}

// DeadlineExceeded says whether the Deployment controller reports that the
// Deployment missed its own progress deadline.
func DeadlineExceeded(d *appsv1.Deployment) bool {
	if d == nil {
		return false
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return true
		}
	}
	return false
}

// SecretProblem says why the API key Secret named by ref is unusable, "" when
// it is fine. found is false when the Secret does not exist.
func SecretProblem(ref *corev1.SecretKeySelector, secret *corev1.Secret, found bool) string {
	switch {
	case ref == nil:
		return ""
	case !found || secret == nil:
		return fmt.Sprintf("Secret %q named by spec.embedding.apiKeySecretRef does not exist", ref.Name)
	case len(secret.Data[ref.Key]) == 0:
		return fmt.Sprintf("Secret %q has no key %q named by spec.embedding.apiKeySecretRef", ref.Name, ref.Key)
	}
	return ""
}

// Revisions orders ControllerRevisions oldest first.
func Revisions(revs []appsv1.ControllerRevision) []appsv1.ControllerRevision {
	out := append([]appsv1.ControllerRevision(nil), revs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out
}

// NextRevisionNumber numbers a new ControllerRevision after the newest of revs.
func NextRevisionNumber(revs []appsv1.ControllerRevision) int64 {
	next := int64(1)
	for _, r := range revs {
		if r.Revision >= next {
			next = r.Revision + 1
		}
	}
	return next
}

// Prune picks the ControllerRevisions to delete, oldest first, so that at most
// limit remain; never one in use, which may leave more than limit.
func Prune(revs []appsv1.ControllerRevision, inUse map[string]bool, limit int) []appsv1.ControllerRevision {
	ordered := Revisions(revs)
	excess := len(ordered) - limit
	var out []appsv1.ControllerRevision
	for i := 0; i < len(ordered) && excess > 0; i++ {
		if inUse[ordered[i].Labels[ragv1.LabelRevision]] {
			continue
		}
		out = append(out, ordered[i])
		excess--
	}
	return out
}
