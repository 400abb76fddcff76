// Package chart_test checks the two install paths of the operator: the Helm chart
// (lint, template, schema, sync with the generated CRD and RBAC) and the kustomize
// overlay, both applied server-side (dry run) to a real kube-apiserver.
package chart_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
)

const (
	root      = "../.."
	chartDir  = root + "/charts/rag-operator"
	crdFile   = "rag.ragops.io_ragservices.yaml"
	namespace = "rag-system"
)

var (
	k8s        client.Client
	kubeconfig string // an admin's, for kubectl
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	// Helm keeps its caches out of the user's home.
	tmp, err := os.MkdirTemp("", "chart-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	for _, v := range []string{"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} {
		os.Setenv(v, filepath.Join(tmp, v))
	}
	// The chart's own CRD, plus stand-ins for the Prometheus Operator's and
	// for the GitOps tools' that docs/examples uses.
	env, cfg, err := kubetest.Start(filepath.Join(chartDir, "crds"), "testdata/servicemonitor-crd.yaml", "testdata/gitops-crds")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	// kubectl, as a reader of the docs runs it, gets an admin's kubeconfig.
	if kubeconfig, err = writeKubeconfig(env, tmp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// helmBin is the helm built from its Go module by make ($(HELM)).
func helmBin(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("HELM is not set in CI: the chart tests run through `make test-chart`")
		}
		t.Fatal("HELM is not set: run `make test-chart`, which builds helm into ./bin and sets HELM")
	}
	return h
}

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String() + stderr.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func render(t *testing.T, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", "rag", chartDir, "--namespace", namespace, "--include-crds"}, extra...)
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, out)
}

func decode(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decode manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}

// A digest wins over the tag for both images: what make release pins.
func TestChartPinsImagesByDigest(t *testing.T) {
	const m, e = "sha256:1111111111111111111111111111111111111111111111111111111111111111", "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	objs := render(t, "--set", "image.repository=registry.example.com/ragops/manager", "--set", "image.digest="+m,
		"--set", "image.tag=ignored", "--set", "embedserverImage.repository=registry.example.com/ragops/embedserver", "--set", "embedserverImage.digest="+e)
	var d appsv1.Deployment
	fromUnstructured(t, find(objs, "Deployment", "rag-operator"), &d)
	c := d.Spec.Template.Spec.Containers[0]
	if want := "registry.example.com/ragops/manager@" + m; c.Image != want {
		t.Errorf("image %q, want %q", c.Image, want)
	}
	if want := "--embedserver-image=registry.example.com/ragops/embedserver@" + e; !contains(c.Args, want) {
		t.Errorf("args %v lack %s", c.Args, want)
	}
}

func find(objs []*unstructured.Unstructured, kind, nameSuffix string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && strings.HasSuffix(o.GetName(), nameSuffix) {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func TestLint(t *testing.T) {
	for _, extra := range [][]string{nil, {"-f", "testdata/values-custom.yaml"}} {
		args := append([]string{"lint", "--strict", chartDir}, extra...)
		if out, err := helm(t, args...); err != nil {
			t.Errorf("%v\n%s", err, out)
		}
	}
}

// The chart's CRD and RBAC rules are copies of the generated files (make helm-sync).
func TestGeneratedFilesInSync(t *testing.T) {
	for _, pair := range [][2]string{
		{root + "/config/crd/bases/" + crdFile, chartDir + "/crds/" + crdFile},
		{root + "/config/rbac/role.yaml", chartDir + "/files/manager-role.yaml"},
	} {
		want, err := os.ReadFile(pair[0])
		if err != nil {
			t.Fatalf("read generated file: %v", err)
		}
		got, err := os.ReadFile(pair[1])
		if err != nil {
			t.Fatalf("read chart copy: %v (run make helm-sync)", err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("%s differs from %s: run `make helm-sync` and commit", pair[1], pair[0])
		}
	}
}

func TestTemplateDefaults(t *testing.T) {
	objs := render(t)
	for _, want := range []struct{ kind, name string }{
		{"CustomResourceDefinition", "ragservices.rag.ragops.io"},
		{"ServiceAccount", "rag-rag-operator"},
		{"ClusterRole", "rag-rag-operator-manager"},
		{"ClusterRoleBinding", "rag-rag-operator-manager"},
		{"Role", "rag-rag-operator-leader-election"},
		{"RoleBinding", "rag-rag-operator-leader-election"},
		{"Service", "rag-rag-operator-metrics"},
		{"Deployment", "rag-rag-operator"},
		{"ClusterRole", "rag-rag-operator-metrics-auth"},
		{"ClusterRoleBinding", "rag-rag-operator-metrics-auth"},
		{"ClusterRole", "rag-rag-operator-metrics-reader"},
	} {
		if o := find(objs, want.kind, want.name); o == nil || o.GetName() != want.name {
			t.Errorf("no %s %s in %v", want.kind, want.name, kinds(objs))
		}
	}
	if find(objs, "ServiceMonitor", "") != nil {
		t.Error("ServiceMonitor rendered though disabled by default")
	}

	dep := find(objs, "Deployment", "rag-rag-operator")
	var d appsv1.Deployment
	fromUnstructured(t, dep, &d)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context is not restricted: %+v", psc)
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context is not restricted: %+v", sc)
	}
	if c.Image != "ragops/manager:0.1.0" {
		t.Errorf("image %q, want ragops/manager:0.1.0 (appVersion)", c.Image)
	}
	for _, arg := range []string{"--leader-elect=true", "--metrics-bind-address=:8443", "--metrics-secure=true", "--health-probe-bind-address=:8081",
		"--embedserver-image=ragops/embedserver:0.1.0", "--max-concurrent-reconciles=4", "--kube-api-qps=50", "--kube-api-burst=100",
		"--max-fleet-canaries=5", "--fleet-failure-limit=2"} {
		if !contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	// Above the manager's measured RSS (docs/scale.md: up to 192 MiB for 1,000 services).
	if c.Resources.Requests.Memory().String() != "256Mi" || c.Resources.Limits.Memory().String() != "512Mi" {
		t.Errorf("memory request %v, limit %v; want 256Mi and 512Mi", c.Resources.Requests.Memory(), c.Resources.Limits.Memory())
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes: %+v %+v", c.LivenessProbe, c.ReadinessProbe)
	}

	// The ClusterRole's rules are exactly the generated role's.
	role := readYAML(t, root+"/config/rbac/role.yaml")
	cr := find(objs, "ClusterRole", "-manager")
	if !reflect.DeepEqual(cr.Object["rules"], role["rules"]) {
		t.Errorf("chart ClusterRole rules differ from config/rbac/role.yaml:\n%v\n%v", cr.Object["rules"], role["rules"])
	}
	// The secure metrics endpoint's RBAC is kustomize's, rule for rule.
	for _, name := range []string{"metrics-auth", "metrics-reader"} {
		file := map[string]string{"metrics-auth": "metrics_auth_role.yaml", "metrics-reader": "metrics_reader_role.yaml"}[name]
		want := readYAML(t, root+"/config/rbac/"+file)
		if got := find(objs, "ClusterRole", "-"+name); !reflect.DeepEqual(got.Object["rules"], want["rules"]) {
			t.Errorf("chart ClusterRole %s rules differ from config/rbac/%s:\n%v\n%v", name, file, got.Object["rules"], want["rules"])
		}
	}
	if find(objs, "ClusterRoleBinding", "-metrics-reader") != nil {
		t.Error("metrics-reader bound though metrics.readers is empty")
	}
}

// metrics.secure=false serves plain HTTP: no TokenReview rights, a plain scrape.
func TestTemplatePlainMetrics(t *testing.T) {
	objs := render(t, "--set", "metrics.secure=false", "--set", "metrics.serviceMonitor.enabled=true")
	var d appsv1.Deployment
	fromUnstructured(t, find(objs, "Deployment", "rag-rag-operator"), &d)
	if !contains(d.Spec.Template.Spec.Containers[0].Args, "--metrics-secure=false") {
		t.Errorf("args %v lack --metrics-secure=false", d.Spec.Template.Spec.Containers[0].Args)
	}
	if find(objs, "ClusterRole", "-metrics-auth") != nil {
		t.Error("metrics-auth ClusterRole rendered for plain HTTP metrics")
	}
	sm := find(objs, "ServiceMonitor", "")
	if ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints"); len(ep) != 1 || ep[0].(map[string]any)["scheme"] != nil {
		t.Errorf("plain ServiceMonitor endpoints: %v", ep)
	}
}

func TestTemplateCustomValues(t *testing.T) {
	objs := render(t, "-f", "testdata/values-custom.yaml")
	sm := find(objs, "ServiceMonitor", "ragops")
	if sm == nil {
		t.Fatalf("no ServiceMonitor in %v", kinds(objs))
	}
	if got, _, _ := unstructured.NestedString(sm.Object, "metadata", "labels", "release"); got != "prometheus" {
		t.Errorf("ServiceMonitor label release=%q", got)
	}
	// Scraped over HTTPS with Prometheus's token, trusting the CA it is given.
	ep, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(ep) != 1 {
		t.Fatalf("ServiceMonitor endpoints: %v", ep)
	}
	e := ep[0].(map[string]any)
	if e["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoint does not keep the ragops_* series' namespace label: %v", e)
	}
	if e["scheme"] != "https" || e["bearerTokenFile"] != "/var/run/secrets/kubernetes.io/serviceaccount/token" {
		t.Errorf("ServiceMonitor endpoint does not scrape with a token over HTTPS: %v", e)
	}
	if sn, _, _ := unstructured.NestedString(e, "tlsConfig", "serverName"); sn != "ragops-metrics.rag-system.svc" {
		t.Errorf("ServiceMonitor tlsConfig not passed through: %v", e["tlsConfig"])
	}
	// metrics.readers are bound to the metrics-reader role.
	crb := find(objs, "ClusterRoleBinding", "ragops-metrics-reader")
	if crb == nil {
		t.Fatalf("no metrics-reader ClusterRoleBinding in %v", kinds(objs))
	}
	if subj, _, _ := unstructured.NestedSlice(crb.Object, "subjects"); len(subj) != 1 || subj[0].(map[string]any)["name"] != "prometheus-k8s" {
		t.Errorf("metrics-reader subjects: %v", subj)
	}
	if find(objs, "ClusterRole", "-ragservice-editor") != nil {
		t.Error("aggregated roles rendered though rbac.aggregateToDefaultRoles is false")
	}
	dep := find(objs, "Deployment", "ragops")
	var d appsv1.Deployment
	fromUnstructured(t, dep, &d)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 || c.Image != "registry.example.com/platform/rag-manager:0.2.0-rc.1" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("replicas %v image %s policy %s", d.Spec.Replicas, c.Image, c.ImagePullPolicy)
	}
	for _, arg := range []string{"--metrics-bind-address=:9443", "--health-probe-bind-address=:9440", "--zap-log-level=debug",
		"--embedserver-image=registry.example.com/platform/embedserver:0.2.0-rc.1", "--metrics-cert-dir=/etc/rag-operator/metrics-certs",
		"--max-concurrent-reconciles=16", "--kube-api-qps=200", "--kube-api-burst=400", "--max-fleet-canaries=20", "--fleet-failure-limit=3"} {
		if !contains(c.Args, arg) {
			t.Errorf("args %v lack %s", c.Args, arg)
		}
	}
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "ragops-metrics-tls" ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/etc/rag-operator/metrics-certs" {
		t.Errorf("metrics certificate Secret not mounted: volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	if pod.ServiceAccountName != "ragops-manager" || pod.PriorityClassName != "system-cluster-critical" ||
		len(pod.Tolerations) != 1 || pod.NodeSelector["kubernetes.io/os"] != "linux" || pod.ImagePullSecrets[0].Name != "regcred" {
		t.Errorf("pod settings not passed through: %+v", pod)
	}
}

func TestSchemaRefusesBadValues(t *testing.T) {
	cases := []struct {
		set  []string
		want string
	}{
		{[]string{"replicaCount=-1"}, "replicaCount"},
		{[]string{"replicaCount=two"}, "replicaCount"},
		{[]string{"replicaCount=2", "leaderElection.enabled=false"}, "leaderElection"},
		{[]string{"image.pullPolicy=Sometimes"}, "pullPolicy"},
		{[]string{"image.repository=Not A Repo"}, "repository"},
		{[]string{"logLevel=verbose"}, "logLevel"},
		{[]string{"metrics.port=70000"}, "port"},
		{[]string{"metrics.serviceMonitor.interval=soon"}, "interval"},
		{[]string{"metrics.secure=maybe"}, "secure"},
		{[]string{"metrics.readers[0].name=prometheus"}, "namespace"},
		{[]string{"reconcile.maxConcurrent=0"}, "maxConcurrent"},
		{[]string{"reconcile.statusProgressWindow=soon"}, "statusProgressWindow"},
		{[]string{"fleetRollout.maxCanaries=0"}, "maxCanaries"},
		{[]string{"fleetRollout.failureLimit=0"}, "failureLimit"},
		{[]string{"kubeAPI.qps=0"}, "qps"},
		{[]string{"kubeAPI.burst=-1"}, "burst"},
		{[]string{"resources.limits.memory=lots"}, "memory"},
		{[]string{"replicas=3"}, "replicas"}, // a typo of replicaCount
		{[]string{"image.digest=sha256:abc"}, "digest"},
		{[]string{"embedserverImage.digest=latest"}, "digest"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.set, ","), func(t *testing.T) {
			args := []string{"template", "rag", chartDir}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, err := helm(t, args...)
			if err == nil {
				t.Fatalf("helm template accepted %v", tc.set)
			}
			if !strings.Contains(out, "values don't meet the specifications of the schema") || !strings.Contains(out, tc.want) {
				t.Errorf("error does not name %q:\n%s", tc.want, out)
			}
		})
	}
	// A ServiceMonitor needs the metrics Service it selects.
	if out, err := helm(t, "template", "rag", chartDir, "--set", "metrics.service.enabled=false", "--set", "metrics.serviceMonitor.enabled=true"); err == nil {
		t.Error("ServiceMonitor without a metrics Service accepted")
	} else if !strings.Contains(out, "metrics.serviceMonitor.enabled needs metrics.service.enabled") {
		t.Errorf("unexpected error:\n%s", out)
	}
}

func TestChartDryRunApply(t *testing.T) {
	ensureNamespace(t, namespace)
	for name, extra := range map[string][]string{
		"defaults": nil,
		"custom":   {"-f", "testdata/values-custom.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			dryRunApply(t, render(t, extra...), "helm-test")
		})
	}
}

func TestKustomizeDryRunApply(t *testing.T) {
	out, err := exec.Command("kubectl", "kustomize", root+"/config/default").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v\n%s", err, out)
	}
	objs := decode(t, string(out))
	for _, want := range []struct{ kind, name string }{
		{"Namespace", "rag-operator-system"},
		{"CustomResourceDefinition", "ragservices.rag.ragops.io"},
		{"ClusterRole", "rag-operator-manager-role"},
		{"Deployment", "rag-operator-controller-manager"},
		{"Service", "rag-operator-controller-manager-metrics"},
		{"ClusterRole", "rag-operator-metrics-auth-role"},
		{"ClusterRole", "rag-operator-metrics-reader"},
	} {
		if o := find(objs, want.kind, want.name); o == nil {
			t.Errorf("no %s %s in %v", want.kind, want.name, kinds(objs))
		}
	}
	// Same CRD and same rules as the chart installs.
	crd := find(objs, "CustomResourceDefinition", "ragservices.rag.ragops.io")
	gen := readYAML(t, root+"/config/crd/bases/"+crdFile)
	if !reflect.DeepEqual(crd.Object["spec"], gen["spec"]) {
		t.Error("kustomize CRD differs from config/crd/bases")
	}
	// The binding names the ClusterRole kustomize renamed.
	crb := find(objs, "ClusterRoleBinding", "rag-operator-manager-rolebinding")
	if ref, _, _ := unstructured.NestedString(crb.Object, "roleRef", "name"); ref != "rag-operator-manager-role" {
		t.Errorf("ClusterRoleBinding refers to %q", ref)
	}
	auth := find(objs, "ClusterRoleBinding", "rag-operator-metrics-auth-rolebinding")
	if ref, _, _ := unstructured.NestedString(auth.Object, "roleRef", "name"); ref != "rag-operator-metrics-auth-role" {
		t.Errorf("metrics-auth ClusterRoleBinding refers to %q", ref)
	}
	if subj, _, _ := unstructured.NestedSlice(auth.Object, "subjects"); len(subj) != 1 || subj[0].(map[string]any)["namespace"] != "rag-operator-system" {
		t.Errorf("metrics-auth ClusterRoleBinding subjects: %v", subj)
	}
	var d appsv1.Deployment
	fromUnstructured(t, find(objs, "Deployment", "rag-operator-controller-manager"), &d)
	for _, arg := range []string{"--metrics-bind-address=:8443", "--metrics-secure=true", "--max-concurrent-reconciles=4", "--kube-api-qps=50", "--kube-api-burst=100",
		"--max-fleet-canaries=5", "--fleet-failure-limit=2"} {
		if !contains(d.Spec.Template.Spec.Containers[0].Args, arg) {
			t.Errorf("kustomize manager args %v lack %s", d.Spec.Template.Spec.Containers[0].Args, arg)
		}
	}
	// config/default's patch sets the embedding server image by the argument's
	// index: it must have replaced that flag, not another one.
	var images []string
	for _, a := range d.Spec.Template.Spec.Containers[0].Args {
		if strings.HasPrefix(a, "--embedserver-image=") {
			images = append(images, a)
		}
	}
	if len(images) != 1 || images[0] != "--embedserver-image=ragops/embedserver:0.1.0" {
		t.Errorf("kustomize manager args %v: want one --embedserver-image=ragops/embedserver:0.1.0 (config/default's patch points at another argument?)", d.Spec.Template.Spec.Containers[0].Args)
	}
	// The namespace exists for real (a dry-run namespace holds nothing); the rest is a dry run.
	ensureNamespace(t, "rag-operator-system")
	dryRunApply(t, objs, "kustomize-test")
}

func TestSamplesDryRunApply(t *testing.T) {
	out, err := exec.Command("kubectl", "kustomize", root+"/config/samples").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize config/samples: %v\n%s", err, out)
	}
	objs := decode(t, string(out))
	if len(objs) != 2 {
		t.Fatalf("want the builtin and openai samples, got %v", kinds(objs))
	}
	ensureNamespace(t, "samples")
	for _, o := range objs {
		o.SetNamespace("samples")
	}
	dryRunApply(t, objs, "samples-test")
}

// dryRunApply server-side applies every object but the CRDs (installed by envtest)
// with dryRun=All: admission, the schema and CEL rules all run, nothing is stored.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured, owner string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := 0
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" || o.GetKind() == "Namespace" {
			continue
		}
		err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.FieldOwner(owner), client.ForceOwnership)
		if err != nil {
			t.Errorf("server-side dry-run apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("nothing applied")
	}
	t.Logf("dry-run applied %d objects", n)
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return m
}

func fromUnstructured(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if o == nil {
		t.Fatal("object not rendered")
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("convert %s: %v", o.GetKind(), err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
