package platform

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	yamlv3 "go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/podtemplate"
)

const (
	podMonitorFile    = root + "/config/prometheus/embedserver-podmonitor.yaml"
	prometheusExample = root + "/config/prometheus/prometheus.example.yaml"
	chartDashboard    = chartDir + "/files/dashboards/ragops-dashboard.json"
)

func renderChart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out := helm(t, append([]string{"template", "rag", chartDir, "--namespace", "rag-system"}, args...)...)
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("decoding helm output: %v", err)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs
}

func findKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// Nothing of the integrations is installed unless asked for.
func TestChartIntegrationsOffByDefault(t *testing.T) {
	objs := renderChart(t)
	for _, kind := range []string{"PrometheusRule", "PodMonitor"} {
		if len(findKind(objs, kind)) > 0 {
			t.Errorf("a %s is rendered with the default values", kind)
		}
	}
	for _, cm := range findKind(objs, "ConfigMap") {
		if cm.GetLabels()["grafana_dashboard"] != "" {
			t.Errorf("dashboard ConfigMap %s rendered with the default values", cm.GetName())
		}
	}
}

// dashboards.enabled gives Grafana's sidecar the dashboard itself, where it
// looks for it.
func TestChartDashboardConfigMap(t *testing.T) {
	if got, want := string(readFile(t, chartDashboard)), string(readFile(t, dashboardFile)); got != want {
		t.Fatalf("%s differs from %s: run `make helm-sync`", chartDashboard, dashboardFile)
	}
	for _, tc := range []struct {
		args      []string
		namespace string
	}{
		{[]string{"--set", "dashboards.enabled=true"}, "rag-system"},
		{[]string{"--set", "dashboards.enabled=true", "--set", "dashboards.namespace=monitoring", "--set", "dashboards.annotations.grafana_folder=RAG"}, "monitoring"},
	} {
		cms := findKind(renderChart(t, tc.args...), "ConfigMap")
		if len(cms) != 1 {
			t.Fatalf("%v: %d ConfigMaps", tc.args, len(cms))
		}
		cm := cms[0]
		if cm.GetLabels()["grafana_dashboard"] != "1" || cm.GetNamespace() != tc.namespace {
			t.Errorf("%v: labels %v, namespace %q", tc.args, cm.GetLabels(), cm.GetNamespace())
		}
		data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
		if data["ragops-dashboard.json"] != strings.TrimSuffix(string(readFile(t, dashboardFile)), "\n") {
			t.Errorf("%v: the ConfigMap does not carry %s", tc.args, dashboardFile)
		}
		if !json.Valid([]byte(data["ragops-dashboard.json"])) {
			t.Errorf("%v: the ConfigMap's dashboard is not JSON", tc.args)
		}
	}
}

// The PrometheusRule carries the rules and the labels Prometheus selects it by.
func TestChartPrometheusRule(t *testing.T) {
	prs := findKind(renderChart(t, "-f", customValues), "PrometheusRule")
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules", len(prs))
	}
	if prs[0].GetLabels()["release"] != "prometheus" {
		t.Errorf("labels %v lack alerts.labels", prs[0].GetLabels())
	}
}

// podMonitorSpec is the part of a PodMonitor that decides what is scraped
// and how its series are labelled.
type podMonitorSpec struct {
	NamespaceSelector struct {
		Any bool `json:"any"`
	} `json:"namespaceSelector"`
	Selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	} `json:"selector"`
	PodTargetLabels     []string `json:"podTargetLabels"`
	PodMetricsEndpoints []struct {
		Port     string `json:"port"`
		Path     string `json:"path"`
		Interval string `json:"interval"`
	} `json:"podMetricsEndpoints"`
}

// embedserverPodLabels are the labels of a real stable pod of RAGService docs,
// as internal/podtemplate builds them, and its container ports by name.
func embedserverPodLabels(t *testing.T) (map[string]string, []string) {
	t.Helper()
	replicas := int32(1)
	svc := &ragv1.RAGService{Spec: ragv1.RAGServiceSpec{Replicas: &replicas, Embedding: ragv1.EmbeddingSpec{Provider: ragv1.ProviderBuiltin, Model: "hash-64"}}}
	svc.Name, svc.Namespace = "docs", "search"
	tpl, err := podtemplate.Build(svc, "ragops/embedserver:test")
	if err != nil {
		t.Fatal(err)
	}
	// One Deployment per revision: the pods carry their revision, no track.
	tpl.WithLabels(map[string]string{ragv1.LabelRevision: "0123456789"})
	var ports []string
	for _, p := range tpl.Spec.Containers[0].Ports {
		ports = append(ports, *p.Name)
	}
	return tpl.Labels, ports
}

var unsafeLabelChars = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// The PodMonitor of the chart and of config/prometheus select the operator's
// embedding server pods, scrape their admin port and label the series as the
// dashboard and the alerts read them.
func TestPodMonitorsScrapeEmbedserverPods(t *testing.T) {
	pods, ports := embedserverPodLabels(t)
	chart := findKind(renderChart(t, "--set", "embedserverMonitor.enabled=true"), "PodMonitor")
	if len(chart) != 1 {
		t.Fatalf("%d PodMonitors rendered", len(chart))
	}
	var plain map[string]any
	if err := yaml.Unmarshal(readFile(t, podMonitorFile), &plain); err != nil {
		t.Fatal(err)
	}
	for name, obj := range map[string]map[string]any{"chart": chart[0].Object, podMonitorFile: plain} {
		var spec podMonitorSpec
		data, _ := json.Marshal(obj["spec"])
		if err := json.Unmarshal(data, &spec); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !spec.NamespaceSelector.Any || len(spec.Selector.MatchLabels) == 0 {
			t.Errorf("%s: must select embedding server pods in every namespace: %+v", name, spec)
		}
		for k, v := range spec.Selector.MatchLabels {
			if pods[k] != v {
				t.Errorf("%s: selector %s=%s does not match the pods' labels %v", name, k, v, pods)
			}
		}
		if len(spec.PodMetricsEndpoints) != 1 || !slices.Contains(ports, spec.PodMetricsEndpoints[0].Port) ||
			spec.PodMetricsEndpoints[0].Port != podtemplate.AdminPortName || spec.PodMetricsEndpoints[0].Path != "/metrics" {
			t.Errorf("%s: endpoints %+v, want the admin port's /metrics (ports %v)", name, spec.PodMetricsEndpoints, ports)
		}
		for _, l := range spec.PodTargetLabels {
			if _, ok := pods[l]; !ok {
				t.Errorf("%s: podTargetLabel %s is not a label of the pods", name, l)
			}
			if !slices.Contains(podTargetLabels, unsafeLabelChars.ReplaceAllString(l, "_")) {
				t.Errorf("%s: podTargetLabel %s gives a label the dashboard and alerts do not know", name, l)
			}
		}
		for _, l := range []string{ragv1.LabelInstance, ragv1.LabelRevision} {
			if !slices.Contains(spec.PodTargetLabels, l) {
				t.Errorf("%s: podTargetLabels lack %s", name, l)
			}
		}
	}
}

// The plain scrape config's relabelling, run by Prometheus' own relabel code
// on the discovery labels of a real embedding server pod, keeps the admin
// port, drops the API port and other apps' pods, and leaves exactly the labels
// the dashboard and the alerts read.
func TestPlainScrapeConfigRelabels(t *testing.T) {
	var cfg struct {
		ScrapeConfigs []struct {
			JobName        string            `yaml:"job_name"`
			HonorLabels    bool              `yaml:"honor_labels"`
			RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
		RuleFiles []string `yaml:"rule_files"`
	}
	if err := yamlv3.Unmarshal(readFile(t, prometheusExample), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.RuleFiles, "ragops-alerts.rules.yaml") {
		t.Errorf("%s does not load the rules: %v", prometheusExample, cfg.RuleFiles)
	}
	jobs := map[string]int{}
	for i, sc := range cfg.ScrapeConfigs {
		jobs[sc.JobName] = i
		for _, rc := range sc.RelabelConfigs {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				t.Errorf("%s: %v", sc.JobName, err)
			}
		}
	}
	es, ok := jobs["ragops-embedserver"]
	mgr, ok2 := jobs["ragops-manager"]
	if !ok || !ok2 {
		t.Fatalf("jobs %v, want ragops-embedserver and ragops-manager", jobs)
	}
	if !cfg.ScrapeConfigs[mgr].HonorLabels {
		t.Error("ragops-manager must honor the manager's namespace label")
	}

	pods, ports := embedserverPodLabels(t)
	relabels := cfg.ScrapeConfigs[es].RelabelConfigs
	target := func(podLabels map[string]string, port string) *labels.Builder {
		b := labels.NewBuilder(labels.EmptyLabels())
		b.Set(model.AddressLabel, "10.0.0.7:9090")
		b.Set("__meta_kubernetes_namespace", "search")
		b.Set("__meta_kubernetes_pod_name", "docs-0123456789-7d9f-abcde")
		b.Set("__meta_kubernetes_pod_container_port_name", port)
		for k, v := range podLabels {
			b.Set("__meta_kubernetes_pod_label_"+unsafeLabelChars.ReplaceAllString(k, "_"), v)
		}
		return b
	}
	process := func(b *labels.Builder) (labels.Labels, bool) {
		keep := relabel.ProcessBuilder(b, relabels...)
		return b.Labels(), keep
	}
	for _, port := range ports {
		got, keep := process(target(pods, port))
		if port != podtemplate.AdminPortName {
			if keep {
				t.Errorf("port %s is scraped: %v", port, got)
			}
			continue
		}
		if !keep {
			t.Fatalf("the admin port is dropped")
		}
		var names []string
		got.Range(func(l labels.Label) {
			if !strings.HasPrefix(l.Name, "__") {
				names = append(names, fmt.Sprintf("%s=%s", l.Name, l.Value))
			}
		})
		sort.Strings(names)
		want := []string{"app_kubernetes_io_instance=docs", "namespace=search", "pod=docs-0123456789-7d9f-abcde", "rag_ragops_io_revision=0123456789"}
		if !slices.Equal(names, want) {
			t.Errorf("labels %v, want %v", names, want)
		}
		for _, n := range names {
			if !slices.Contains(podTargetLabels, strings.SplitN(n, "=", 2)[0]) {
				t.Errorf("label %s is not one the dashboard's checks know", n)
			}
		}
	}
	other := map[string]string{ragv1.LabelName: "nginx", ragv1.LabelInstance: "docs"}
	if got, keep := process(target(other, podtemplate.AdminPortName)); keep {
		t.Errorf("another app's pod is scraped: %v", got)
	}
}

// The chart lints strictly with every integration on, and its schema refuses
// bad integration values naming them.
func TestChartIntegrationValues(t *testing.T) {
	helm(t, "lint", "--strict", chartDir, "--set", "dashboards.enabled=true", "--set", "embedserverMonitor.enabled=true", "-f", customValues)
	for _, tc := range []struct{ set, want string }{
		{"alerts.shedRatio=2", "shedRatio"},
		{"alerts.rolloutStuckAfter=soon", "rolloutStuckAfter"},
		{"alerts.latencyP99.limits[0].namespace=search", "limits"},
		{"dashboards.namespace=Not_A_Namespace", "namespace"},
		{"embedserverMonitor.interval=often", "interval"},
		{"alerts.thresholds=1", "thresholds"},
	} {
		out, err := helmErr(t, "template", "rag", chartDir, "--set", tc.set)
		if err == nil {
			t.Errorf("helm template accepted %s", tc.set)
			continue
		}
		if !strings.Contains(out, "values don't meet the specifications of the schema") || !strings.Contains(out, tc.want) {
			t.Errorf("%s: the error does not name %s:\n%s", tc.set, tc.want, out)
		}
	}
}
