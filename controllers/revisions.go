package controllers

import (
	"context"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/observe"
	"github.com/ragops/rag-operator/internal/rollout"
)

// One Deployment per revision: which revision is stable, which the canary
// and which retiring lives in the RAGService's status only, so a revision's
// pods change role (a promotion hands the service over to the canary's pods)
// without being recreated. The Services select by revision.

// revisionDeploymentName is the Deployment of one revision.
func revisionDeploymentName(svc *ragv1.RAGService, revision string) string {
	return svc.Name + "-" + revision
}

// legacyDeployment says whether d is a Deployment of the previous layout
// (`<name>-stable` / `<name>-canary`, selected by track): an upgrade moves its
// revision to the new shape and removes it once that serves (applyRevisions).
func legacyDeployment(svc *ragv1.RAGService, d *appsv1.Deployment) bool {
	if d.Name != svc.Name+"-"+ragv1.TrackStable && d.Name != svc.Name+"-"+ragv1.TrackCanary {
		return false
	}
	if d.Spec.Selector == nil {
		return false
	}
	_, tracked := d.Spec.Selector.MatchLabels[ragv1.LabelTrack]
	return tracked
}

// deploymentOf is the Deployment that runs revision: its own, or while an
// upgrade moves the service, the previous layout's that runs it.
func (o *observation) deploymentOf(svc *ragv1.RAGService, revision string) *appsv1.Deployment {
	if revision == "" {
		return nil
	}
	var legacy *appsv1.Deployment
	for _, d := range o.deployments {
		switch {
		case d.Name == revisionDeploymentName(svc, revision):
			return d
		case legacyDeployment(svc, d) && observe.Revision(d) == revision:
			legacy = d
		}
	}
	return legacy
}

// podsOf are the pods of revision, whichever Deployment made them.
func (o *observation) podsOf(revision string) []corev1.Pod {
	if revision == "" {
		return nil
	}
	var out []corev1.Pod
	for _, p := range o.pods {
		if p.Labels[ragv1.LabelRevision] == revision {
			out = append(out, p)
		}
	}
	return out
}

// assign sets the tracks to the Deployments and pods of the given revisions.
// With no stable revision (a lost status) it takes the ones AdoptTracks
// picks, for the planner to adopt.
func (o *observation) assign(svc *ragv1.RAGService, stable, canary, retiring string) {
	if stable == "" {
		all := make([]rollout.Track, 0, len(o.deployments))
		for _, d := range o.deployments {
			all = append(all, observe.Track(d, o.podsOf(observe.Revision(d))))
		}
		st, cn := rollout.AdoptTracks(all)
		stable = st.Revision
		if canary == "" {
			canary = cn.Revision
		}
	}
	o.stable, o.stablePods = o.deploymentOf(svc, stable), o.podsOf(stable)
	o.canary, o.canaryPods = o.deploymentOf(svc, canary), o.podsOf(canary)
	o.retiring, o.retiringPods = o.deploymentOf(svc, retiring), o.podsOf(retiring)
	r := svc.Status.Retiring
	o.rolling = r != nil && r.Since == nil && r.Revision == retiring
}

// listRevisionObjects reads the service's Deployments (its own: controlled
// by it) and pods.
func (r *RAGServiceReconciler) listRevisionObjects(ctx context.Context, s *scope) error {
	deps := &appsv1.DeploymentList{}
	if err := r.List(ctx, deps, client.InNamespace(s.obj.Namespace), ofInstance(s.obj)); err != nil {
		return fmt.Errorf("listing Deployments: %w", err)
	}
	s.deployments = s.deployments[:0]
	for i := range deps.Items {
		if metav1.IsControlledBy(&deps.Items[i], s.obj) {
			s.deployments = append(s.deployments, &deps.Items[i])
		}
	}
	sort.Slice(s.deployments, func(i, j int) bool { return s.deployments[i].Name < s.deployments[j].Name })
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(s.obj.Namespace), ofInstance(s.obj)); err != nil {
		return fmt.Errorf("listing pods: %w", err)
	}
	s.pods = pods.Items
	return nil
}

// applyRevisions applies the Deployments of the plan's revisions at their
// sizes and deletes every other one the service owns. A Deployment of the
// previous layout goes once its revision's own Deployment has as many ready
// pods as it was asked for (so an upgrade never lowers ready capacity), or
// at once when the plan runs its revision no more.
func (r *RAGServiceReconciler) applyRevisions(ctx context.Context, s *scope) {
	plan := s.plan
	want := map[string]int32{}
	order := []string{}
	for _, w := range []struct {
		rev string
		n   int32
	}{{plan.StableRevision, plan.StableReplicas}, {plan.CanaryRevision, plan.CanaryReplicas}, {plan.RetiringRevision, plan.RetiringReplicas}} {
		if _, dup := want[w.rev]; w.rev != "" && !dup {
			want[w.rev] = w.n
			order = append(order, w.rev)
		}
	}
	for _, rev := range order {
		if err := r.applyRevision(ctx, s, rev, want[rev]); err != nil {
			s.fail(err)
		}
	}
	kept := s.deployments[:0]
	for _, d := range s.deployments {
		rev := observe.Revision(d)
		n, wanted := want[rev]
		switch {
		case wanted && d.Name == revisionDeploymentName(s.obj, rev):
			kept = append(kept, d)
			continue
		case wanted && legacyDeployment(s.obj, d):
			own := s.byName(revisionDeploymentName(s.obj, rev))
			need := min(n, replicasOfDeployment(d))
			if own == nil || own.Status.ReadyReplicas < need {
				kept = append(kept, d)
				continue
			}
			ctrl.LoggerFrom(ctx).Info("Moved a revision off the previous layout", "deployment", d.Name, "revision", rev, "replacement", own.Name)
		}
		if err := r.Delete(ctx, d, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
			s.fail(fmt.Errorf("deleting Deployment %s: %w", d.Name, err))
			kept = append(kept, d)
		}
	}
	s.deployments = kept
	s.assign(s.obj, plan.StableRevision, plan.CanaryRevision, plan.RetiringRevision)
}

// applyRevision applies the Deployment of one revision at replicas.
func (r *RAGServiceReconciler) applyRevision(ctx context.Context, s *scope, revision string, replicas int32) error {
	tpl, err := r.templateOf(ctx, s, revision)
	if err != nil {
		return err
	}
	dep, err := deploymentFor(s.obj, revision, tpl, replicas)
	if err != nil {
		return err
	}
	applied, err := applyOwned[appsv1.Deployment](ctx, r, s.obj, dep)
	if err != nil {
		return fmt.Errorf("applying Deployment %s: %w", *dep.Name, err)
	}
	s.setDeployment(applied)
	return nil
}

// byName is the observed Deployment called name, or nil.
func (o *observation) byName(name string) *appsv1.Deployment {
	for _, d := range o.deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// setDeployment records d as the pass now leaves it.
func (o *observation) setDeployment(d *appsv1.Deployment) {
	for i, old := range o.deployments {
		if old.Name == d.Name {
			o.deployments[i] = d
			return
		}
	}
	o.deployments = append(o.deployments, d)
}

func replicasOfDeployment(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}
