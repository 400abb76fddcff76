// Package podtemplate builds the embedding server's pod template from a
// RAGService spec, and the revision hash that names it. It is pure: no client,
// no clock. The controller applies what it returns.
package podtemplate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
)

// Ports of the embedding server (see internal/contract). The admin port is
// never behind the limiter, so probes and metrics answer under any load.
const (
	HTTPPort      = contract.HTTPPort
	AdminPort     = contract.AdminPort
	HTTPPortName  = "http"
	AdminPortName = "admin"

	// ContainerName of the embedding server in every pod.
	ContainerName = "embedserver"
	// APIKeyEnv carries the upstream API key; never an argument.
	APIKeyEnv = contract.APIKeyEnv

	// exitMargin is the time the server has to exit once its drain is over
	// (the admin port closes, the process ends); see GracePeriod.
	exitMargin = time.Second

	// nonRootUID is the distroless "nonroot" user the images run as.
	nonRootUID int64 = 65532
)

// Default resources of the embedding server's container, when
// spec.pod.resources sets nothing (anything set there replaces them whole, so
// no mix of defaults and the user's values can make a request above a limit).
// Sized from the measurements in docs/embedserver.md, so that the pods are
// Burstable rather than BestEffort (the first evicted) and a CPU
// HorizontalPodAutoscaler has a request to measure against:
//
//   - memory: the server bounds the bodies it holds by --max-pending-bytes
//     (64 MiB) and tunes its collector to that plus 32 MiB; the request covers
//     that budget and the runtime. The limit is above the highest RSS measured
//     (158 MiB under 10,000 connections; 69-89 MiB of growth in the 150 x 3.9 MB
//     upload storm), so only a leak is killed.
//   - CPU: 100m is about what a pod uses at 10 clients against a real upstream
//     (about 300 us of CPU per request at 470 requests/s); at 100 clients it
//     uses about 0.6 cores. No CPU limit: throttling would add its 100 ms
//     periods to the latency the canary analysis judges.
const (
	DefaultCPURequest    = "100m"
	DefaultMemoryRequest = "128Mi"
	DefaultMemoryLimit   = "256Mi"
)

// DefaultResources are the requests and limits above.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(DefaultCPURequest), corev1.ResourceMemory: resource.MustParse(DefaultMemoryRequest)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(DefaultMemoryLimit)},
	}
}

// Build returns the pod template of the embedding server for svc. image is used
// when the spec names none. The template carries the instance and name labels;
// the controller adds the track and revision labels per Deployment, after
// hashing, so both tracks of one spec share one revision.
func Build(svc *ragv1.RAGService, image string) (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	spec := &svc.Spec
	if spec.Image != "" {
		image = spec.Image
	}
	if image == "" {
		return nil, fmt.Errorf("no embedding server image: spec.image is empty and the manager has no --embedserver-image")
	}

	container := corev1ac.Container().
		WithName(ContainerName).
		WithImage(image).
		WithArgs(Args(spec)...).
		WithPorts(
			corev1ac.ContainerPort().WithName(HTTPPortName).WithContainerPort(HTTPPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(AdminPortName).WithContainerPort(AdminPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithReadinessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/readyz").WithPort(intstrName(AdminPortName))).
			WithPeriodSeconds(2).WithFailureThreshold(1).WithTimeoutSeconds(1)).
		WithLivenessProbe(corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath("/healthz").WithPort(intstrName(AdminPortName))).
			WithPeriodSeconds(10).WithFailureThreshold(3).WithTimeoutSeconds(2)).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))

	if ref := spec.Embedding.APIKeySecretRef; ref != nil {
		container.WithEnv(corev1ac.EnvVar().WithName(APIKeyEnv).WithValueFrom(
			corev1ac.EnvVarSource().WithSecretKeyRef(
				corev1ac.SecretKeySelector().WithName(ref.Name).WithKey(ref.Key))))
	}
	if spec.Embedding.Provider == ragv1.ProviderOpenAI {
		// Always for openai, whatever the budget: declaring or changing a
		// budget later must not change the template (a new revision, every pod
		// restarted). The token is required: a pod never starts before the
		// operator's Secret exists (the kubelet holds it in
		// CreateContainerConfigError), so no pod runs without the token and
		// the safe start share. The operator creates the Secret on the same
		// event that creates the Deployments, and makes it again if deleted.
		// The start-share keys are optional: absent means not declared.
		secret := BudgetSecretName(svc.Name)
		for _, e := range []struct {
			env, key string
			optional bool
		}{
			{contract.BudgetTokenEnv, contract.BudgetSecretTokenKey, false},
			{contract.BudgetStartRequestsEnv, contract.BudgetSecretRequestsKey, true},
			{contract.BudgetStartTokensEnv, contract.BudgetSecretTokensKey, true},
		} {
			ref := corev1ac.SecretKeySelector().WithName(secret).WithKey(e.key)
			if e.optional {
				ref.WithOptional(true)
			}
			container.WithEnv(corev1ac.EnvVar().WithName(e.env).WithValueFrom(corev1ac.EnvVarSource().WithSecretKeyRef(ref)))
		}
	}
	resources := spec.Pod.Resources
	if len(resources.Limits)+len(resources.Requests)+len(resources.Claims) == 0 {
		resources = DefaultResources()
	}
	res, err := convert[corev1ac.ResourceRequirementsApplyConfiguration](resources)
	if err != nil {
		return nil, fmt.Errorf("spec.pod.resources: %w", err)
	}
	container.WithResources(res)

	podSpec := corev1ac.PodSpec().
		WithContainers(container).
		WithTerminationGracePeriodSeconds(GracePeriod(spec.Timeouts.Drain.Duration)).
		WithEnableServiceLinks(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(nonRootUID).
			WithRunAsGroup(nonRootUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))

	pod := &spec.Pod
	if len(pod.NodeSelector) > 0 {
		podSpec.WithNodeSelector(pod.NodeSelector)
	}
	for i := range pod.Tolerations {
		t, err := convert[corev1ac.TolerationApplyConfiguration](pod.Tolerations[i])
		if err != nil {
			return nil, fmt.Errorf("spec.pod.tolerations[%d]: %w", i, err)
		}
		podSpec.WithTolerations(t)
	}
	if pod.Affinity != nil {
		a, err := convert[corev1ac.AffinityApplyConfiguration](pod.Affinity)
		if err != nil {
			return nil, fmt.Errorf("spec.pod.affinity: %w", err)
		}
		podSpec.WithAffinity(a)
	}
	for i := range pod.TopologySpreadConstraints {
		c, err := convert[corev1ac.TopologySpreadConstraintApplyConfiguration](pod.TopologySpreadConstraints[i])
		if err != nil {
			return nil, fmt.Errorf("spec.pod.topologySpreadConstraints[%d]: %w", i, err)
		}
		podSpec.WithTopologySpreadConstraints(c)
	}
	if pod.ServiceAccountName != "" {
		podSpec.WithServiceAccountName(pod.ServiceAccountName)
	}
	if pod.PriorityClassName != "" {
		podSpec.WithPriorityClassName(pod.PriorityClassName)
	}
	for _, s := range pod.ImagePullSecrets {
		podSpec.WithImagePullSecrets(corev1ac.LocalObjectReference().WithName(s.Name))
	}

	tpl := corev1ac.PodTemplateSpec().
		WithLabels(Labels(svc.Name, pod.Labels)).
		WithSpec(podSpec)
	if len(pod.Annotations) > 0 {
		tpl.WithAnnotations(pod.Annotations)
	}
	return tpl, nil
}

// GracePeriod is the pods' terminationGracePeriodSeconds for timeouts.drain:
// the server's whole drain, so that the kubelet's SIGKILL never lands before
// it ends. On SIGTERM the server serves for its --drain-delay (the template
// passes none, so contract.DefaultDrainDelay), then closes its listener and
// waits up to --drain-timeout (timeouts.drain) for the requests inside, then
// gives the ones still running contract.DrainCutoffGrace to be answered, then
// exits. With the 3s delay this is timeouts.drain + 5s, as it was when the
// delay ran inside the drain timeout: the templates (and revisions) of
// existing services do not change.
func GracePeriod(drain time.Duration) int64 {
	return int64(math.Ceil((contract.DefaultDrainDelay + drain + contract.DrainCutoffGrace + exitMargin).Seconds()))
}

// BudgetSecretName is the Secret holding a service's budget token and the
// share its pods start with; the operator creates it, owned by the service.
func BudgetSecretName(instance string) string { return instance + "-budget" }

// Labels are the pod labels of a service: the user's, then the operator's own,
// which win so that selectors can never be broken from the spec.
func Labels(instance string, user map[string]string) map[string]string {
	out := make(map[string]string, len(user)+3)
	maps.Copy(out, user)
	maps.Copy(out, SelectorLabels(instance))
	out[ragv1.LabelManaged] = "rag-operator"
	return out
}

// SelectorLabels select the pods of every revision of a service.
func SelectorLabels(instance string) map[string]string {
	return map[string]string{
		ragv1.LabelInstance: instance,
		ragv1.LabelName:     ragv1.NameEmbedServer,
	}
}

// RevisionSelectorLabels select the pods of one revision: a revision's
// Deployment and the Services of its track. No track label: which revision
// is stable lives in the RAGService's status, so pods change role without
// being recreated.
func RevisionSelectorLabels(instance, revision string) map[string]string {
	l := SelectorLabels(instance)
	l[ragv1.LabelRevision] = revision
	return l
}

// Args are the server's command-line flags for spec: one for every setting the
// spec carries. A setting the spec leaves unset (its zero value, as in an object
// that never passed the CRD's defaulting) is left out, so the server's own
// default applies; the CRD defaults to the same values (internal/contract).
// The drain timeout is always written: 0s is a value the CRD allows, and the
// pod's grace period is computed from the same field. The drain delay is not
// written: the server's default applies, and GracePeriod counts it. The API
// key is not among the flags: it is an environment variable.
func Args(spec *ragv1.RAGServiceSpec) []string {
	e := &spec.Embedding
	args := []string{
		arg(contract.FlagAddr, ":"+strconv.Itoa(HTTPPort)),
		arg(contract.FlagAdminAddr, ":"+strconv.Itoa(AdminPort)),
	}
	str := func(name, v string) {
		if v != "" {
			args = append(args, arg(name, v))
		}
	}
	num := func(name string, v int32) {
		if v != 0 {
			args = append(args, arg(name, strconv.Itoa(int(v))))
		}
	}
	dur := func(name string, d metav1.Duration) {
		if d.Duration != 0 {
			args = append(args, arg(name, d.Duration.String()))
		}
	}
	str(contract.FlagProvider, string(e.Provider))
	str(contract.FlagModel, e.Model)
	str(contract.FlagSpace, e.Space)
	if e.Dimensions != nil {
		num(contract.FlagDimensions, *e.Dimensions)
	}
	if e.Provider == ragv1.ProviderOpenAI {
		args = append(args, arg(contract.FlagUpstreamURL, e.Endpoint))
		// Bearer is the server's default and is left out, so the templates (and
		// revisions) of services that never set auth stay as they were.
		if e.Auth == ragv1.UpstreamAuthAzureAPIKey {
			args = append(args, arg(contract.FlagUpstreamAuth, contract.UpstreamAuthAzureAPIKey))
		}
		str(contract.FlagUpstreamAPIVer, e.APIVersion)
	}
	num(contract.FlagMaxBatchSize, e.MaxBatchSize)
	num(contract.FlagMaxInputsPerCall, e.Upstream.MaxInputsPerCall)
	num(contract.FlagMaxTokensPerCall, e.Upstream.MaxTokensPerCall)
	num(contract.FlagMaxInFlight, spec.Concurrency.MaxInFlight)
	if q := spec.Concurrency.MaxQueue; q != nil {
		args = append(args, arg(contract.FlagMaxQueue, strconv.Itoa(int(*q)))) // 0 is a value: no queue
	}
	dur(contract.FlagRequestTimeout, spec.Timeouts.Request)
	dur(contract.FlagQueueTimeout, spec.Timeouts.Queue)
	dur(contract.FlagUpstreamTimeout, spec.Timeouts.Upstream)
	num(contract.FlagMaxAttempts, spec.Retry.MaxAttempts)
	dur(contract.FlagInitialBackoff, spec.Retry.InitialBackoff)
	args = append(args, arg(contract.FlagDrainTimeout, spec.Timeouts.Drain.Duration.String()))
	return args
}

func arg(name, value string) string { return "--" + name + "=" + value }

// Revision is the hash that names a pod template: equal templates, equal
// revisions. It is computed before the track and revision labels are added.
func Revision(tpl *corev1ac.PodTemplateSpecApplyConfiguration) (string, error) {
	// encoding/json sorts map keys, so the encoding is deterministic.
	b, err := json.Marshal(tpl)
	if err != nil {
		return "", fmt.Errorf("hashing pod template: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:10], nil
}

// WithRevision returns a copy of tpl labelled with its revision.
func WithRevision(tpl *corev1ac.PodTemplateSpecApplyConfiguration, revision string) (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	out, err := convert[corev1ac.PodTemplateSpecApplyConfiguration](tpl)
	if err != nil {
		return nil, err
	}
	out.WithLabels(map[string]string{ragv1.LabelRevision: revision})
	return out, nil
}

// Encode and Decode store a template, for example in a ControllerRevision.
func Encode(tpl *corev1ac.PodTemplateSpecApplyConfiguration) ([]byte, error) {
	return json.Marshal(tpl)
}

// Decode is the inverse of Encode.
func Decode(b []byte) (*corev1ac.PodTemplateSpecApplyConfiguration, error) {
	out := &corev1ac.PodTemplateSpecApplyConfiguration{}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("decoding pod template: %w", err)
	}
	return out, nil
}

// convert moves a value between types of the same JSON shape: the API's typed
// pass-through fields into apply configurations.
func convert[T any](in any) (*T, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	out := new(T)
	if err := json.Unmarshal(b, out); err != nil {
		return nil, err
	}
	return out, nil
}

func intstrName(name string) intstr.IntOrString { return intstr.FromString(name) }
