package controllers

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/podtemplate"
	"github.com/ragops/rag-operator/internal/rollout"
)

// Names of the objects the operator owns for a RAGService (its Deployments:
// revisionDeploymentName).
func trackServiceName(svc *ragv1.RAGService, track string) string { return svc.Name + "-" + track }
func revisionName(svc *ragv1.RAGService, revision string) string  { return svc.Name + "-" + revision }

func ownerRef(svc *ragv1.RAGService) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(ragv1.GroupVersion.String()).
		WithKind("RAGService").
		WithName(svc.Name).
		WithUID(svc.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// objectLabels label every owned object, so that `kubectl get all -l
// app.kubernetes.io/instance=docs` finds them.
func objectLabels(svc *ragv1.RAGService) map[string]string {
	l := podtemplate.SelectorLabels(svc.Name)
	l[ragv1.LabelManaged] = "rag-operator"
	return l
}

// deploymentFor is the Deployment of one revision running its template tpl,
// selected by revision, so a revision's pods serve as the canary, then as
// stable, without being recreated.
func deploymentFor(svc *ragv1.RAGService, revision string, tpl *corev1ac.PodTemplateSpecApplyConfiguration, replicas int32) (*appsv1ac.DeploymentApplyConfiguration, error) {
	tpl, err := podtemplate.WithRevision(tpl, revision)
	if err != nil {
		return nil, err
	}
	labels := objectLabels(svc)
	labels[ragv1.LabelRevision] = revision

	deadline := int32(svc.Spec.Rollout.ProgressDeadline.Seconds())
	spec := appsv1ac.DeploymentSpec().
		WithReplicas(replicas).
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(podtemplate.RevisionSelectorLabels(svc.Name, revision))).
		WithTemplate(tpl).
		// A revision's template never changes (another template is another
		// revision): the strategy only matters for a hand edit or a node
		// drain, and maxUnavailable 0 keeps capacity then too.
		WithStrategy(appsv1ac.DeploymentStrategy().
			WithType(appsv1.RollingUpdateDeploymentStrategyType).
			WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
				WithMaxUnavailable(intstr.FromInt32(rollout.MaxUnavailable)).
				WithMaxSurge(intstr.FromString(fmt.Sprintf("%d%%", rollout.MaxSurgePercent))))).
		WithRevisionHistoryLimit(1)
	if deadline > 0 {
		spec.WithProgressDeadlineSeconds(deadline)
	}
	return appsv1ac.Deployment(revisionDeploymentName(svc, revision), svc.Namespace).
		WithLabels(labels).
		WithOwnerReferences(ownerRef(svc)).
		WithSpec(spec), nil
}

// noRevision is a revision label value no pod carries (revisions are hex):
// the canary Service selects no pod while no canary runs.
const noRevision = "none"

// serviceConfigs are the shared Service, first, selecting the revisions sel
// names (traffic splits by ready pods when both), and one Service per track,
// selecting its revision. During a rolling update both revisions serve, and
// the stable Service selects them both.
func serviceConfigs(svc *ragv1.RAGService, sel rollout.Selection, stable, canary string, retiring *ragv1.RetiringRevision) []*corev1ac.ServiceApplyConfiguration {
	mk := func(name string, selector map[string]string) *corev1ac.ServiceApplyConfiguration {
		return corev1ac.Service(name, svc.Namespace).
			WithLabels(objectLabels(svc)).
			WithOwnerReferences(ownerRef(svc)).
			WithSpec(corev1ac.ServiceSpec().
				WithType(corev1.ServiceTypeClusterIP).
				WithSelector(selector).
				WithPorts(corev1ac.ServicePort().
					WithName(podtemplate.HTTPPortName).
					WithPort(80).
					WithProtocol(corev1.ProtocolTCP).
					WithTargetPort(intstr.FromString(podtemplate.HTTPPortName))))
	}
	of := func(rev string) map[string]string {
		if rev == "" {
			rev = noRevision
		}
		return podtemplate.RevisionSelectorLabels(svc.Name, rev)
	}
	rolling := retiring != nil && retiring.Since == nil
	shared := podtemplate.SelectorLabels(svc.Name)
	switch {
	case sel == selectNone:
		// No pod carries this label: the Service has no endpoints, and
		// clients get connection errors instead of vectors of another space.
		shared[labelTraffic] = trafficStopped
	case sel == rollout.SelectStable && stable != "":
		shared = of(stable)
	case sel == rollout.SelectCanary && canary != "":
		shared = of(canary)
	}
	stableSel := of(stable)
	if rolling || stable == "" {
		stableSel = podtemplate.SelectorLabels(svc.Name)
	}
	return []*corev1ac.ServiceApplyConfiguration{
		mk(svc.Name, shared),
		mk(trackServiceName(svc, ragv1.TrackStable), stableSel),
		mk(trackServiceName(svc, ragv1.TrackCanary), of(canary)),
	}
}

// pdbFor lets voluntary disruptions take one pod at a time across all revisions.
// maxUnavailable (not minAvailable) keeps it right whatever scales the service.
func pdbFor(svc *ragv1.RAGService) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(svc.Name, svc.Namespace).
		WithLabels(objectLabels(svc)).
		WithOwnerReferences(ownerRef(svc)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(podtemplate.SelectorLabels(svc.Name))).
			WithMaxUnavailable(intstr.FromInt32(1)))
}

// controllerRevisionFor stores a revision's pod template, so the stable track
// can be rebuilt (after a hand deletion, or by a restarted manager) and so
// `kubectl rag history` can list what ran.
func controllerRevisionFor(svc *ragv1.RAGService, revision string, number int64, tpl *corev1ac.PodTemplateSpecApplyConfiguration) (*appsv1ac.ControllerRevisionApplyConfiguration, error) {
	raw, err := podtemplate.Encode(tpl)
	if err != nil {
		return nil, fmt.Errorf("encoding revision %s: %w", revision, err)
	}
	labels := objectLabels(svc)
	labels[ragv1.LabelRevision] = revision
	return appsv1ac.ControllerRevision(revisionName(svc, revision), svc.Namespace).
		WithLabels(labels).
		WithOwnerReferences(ownerRef(svc)).
		WithRevision(number).
		WithData(runtime.RawExtension{Raw: raw}), nil
}

// fromApplyResult reads the object the API server returned into an apply
// configuration (client.Apply fills it from the response).
func fromApplyResult[T any](applied any) (*T, error) {
	b, err := json.Marshal(applied)
	if err != nil {
		return nil, fmt.Errorf("reading apply result: %w", err)
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("reading apply result: %w", err)
	}
	return out, nil
}
