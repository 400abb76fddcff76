package podtemplate

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
)

// defaulted is a spec as the API server stores it after the CRD's defaults.
func defaulted(mutate ...func(*ragv1.RAGService)) *ragv1.RAGService {
	q := int32(32)
	svc := &ragv1.RAGService{
		ObjectMeta: metav1.ObjectMeta{Name: "docs", Namespace: "search"},
		Spec: ragv1.RAGServiceSpec{
			Embedding:   ragv1.EmbeddingSpec{Provider: ragv1.ProviderBuiltin, Model: "hash-384", MaxBatchSize: 64},
			Concurrency: ragv1.ConcurrencySpec{MaxInFlight: 8, MaxQueue: &q},
			Timeouts: ragv1.TimeoutsSpec{
				Request: metav1.Duration{Duration: 30 * time.Second}, Queue: metav1.Duration{Duration: 5 * time.Second},
				Upstream: metav1.Duration{Duration: 10 * time.Second}, Drain: metav1.Duration{Duration: 30 * time.Second},
			},
			Retry: ragv1.RetrySpec{MaxAttempts: 3, InitialBackoff: metav1.Duration{Duration: 100 * time.Millisecond}},
		},
	}
	for _, m := range mutate {
		m(svc)
	}
	return svc
}

// typed reads a built template back as the core type, to assert on it.
func typed(t *testing.T, svc *ragv1.RAGService, image string) *corev1.PodTemplateSpec {
	t.Helper()
	tpl, err := Build(svc, image)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	b, err := json.Marshal(tpl)
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.PodTemplateSpec{}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestArgs(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*ragv1.RAGService)
		want   []string
		absent []string
	}{
		{"builtin defaults", nil,
			[]string{"--addr=:8080", "--admin-addr=:9090", "--provider=builtin", "--model=hash-384", "--max-batch-size=64",
				"--max-in-flight=8", "--max-queue=32", "--request-timeout=30s", "--queue-timeout=5s",
				"--upstream-timeout=10s", "--max-attempts=3", "--initial-backoff=100ms", "--drain-timeout=30s"},
			[]string{"--upstream-url", "--dimensions", "--max-inputs-per-call", "--max-tokens-per-call"}},
		{"upstream per-call limits", func(s *ragv1.RAGService) {
			s.Spec.Embedding.Upstream = ragv1.UpstreamSpec{MaxInputsPerCall: 1000, MaxTokensPerCall: 8191}
		}, []string{"--max-inputs-per-call=1000", "--max-tokens-per-call=8191"}, nil},
		{"openai with endpoint and dimensions", func(s *ragv1.RAGService) {
			s.Spec.Embedding = ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Model: "text-embedding-3-large",
				Endpoint: "https://api.example.test/v1", Dimensions: ptr.To(int32(1024)), MaxBatchSize: 16}
		}, []string{"--provider=openai", "--model=text-embedding-3-large", "--upstream-url=https://api.example.test/v1",
			"--dimensions=1024", "--max-batch-size=16"}, nil},
		{"zero queue", func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxQueue = ptr.To(int32(0)) }, []string{"--max-queue=0"}, nil},
		{"minute timeouts print as Go durations", func(s *ragv1.RAGService) {
			s.Spec.Timeouts.Request = metav1.Duration{Duration: 90 * time.Second}
		}, []string{"--request-timeout=1m30s"}, nil},
		{"no retries", func(s *ragv1.RAGService) { s.Spec.Retry.MaxAttempts = 1 }, []string{"--max-attempts=1"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := defaulted()
			if tc.mutate != nil {
				tc.mutate(svc)
			}
			args := strings.Join(Args(&svc.Spec), " ")
			for _, w := range tc.want {
				if !strings.Contains(" "+args+" ", " "+w+" ") {
					t.Errorf("args %q lack %q", args, w)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(args, a) {
					t.Errorf("args %q carry %q", args, a)
				}
			}
		})
	}
}

func TestBuild(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*ragv1.RAGService)
		image  string
		check  func(t *testing.T, p *corev1.PodTemplateSpec)
	}{
		{"manager image when spec names none", nil, "ragops/embedserver:1.0", func(t *testing.T, p *corev1.PodTemplateSpec) {
			if got := p.Spec.Containers[0].Image; got != "ragops/embedserver:1.0" {
				t.Errorf("image %q", got)
			}
		}},
		{"spec image wins", func(s *ragv1.RAGService) { s.Spec.Image = "mirror.example/embedserver:2" }, "ragops/embedserver:1.0",
			func(t *testing.T, p *corev1.PodTemplateSpec) {
				if got := p.Spec.Containers[0].Image; got != "mirror.example/embedserver:2" {
					t.Errorf("image %q", got)
				}
			}},
		{"default resources: Burstable, memory limited, no CPU limit", nil, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			r := p.Spec.Containers[0].Resources
			if r.Requests.Cpu().String() != "100m" || r.Requests.Memory().String() != "128Mi" || r.Limits.Memory().String() != "256Mi" || len(r.Limits) != 1 {
				t.Errorf("resources %+v", r)
			}
			if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
				t.Errorf("memory limit below the request: %+v", r)
			}
		}},
		{"a memory limit alone replaces the defaults", func(s *ragv1.RAGService) {
			s.Spec.Pod.Resources = corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}
		}, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			// Mixing in the default 128Mi request would make the pod invalid (request above limit).
			if r := p.Spec.Containers[0].Resources; len(r.Requests) != 0 || r.Limits.Memory().String() != "64Mi" {
				t.Errorf("resources %+v", r)
			}
		}},
		{"restricted security context", nil, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			c := p.Spec.Containers[0].SecurityContext
			if !*c.RunAsNonRoot || !*c.ReadOnlyRootFilesystem || *c.AllowPrivilegeEscalation ||
				len(c.Capabilities.Drop) != 1 || c.Capabilities.Drop[0] != "ALL" || c.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("container security context %+v", c)
			}
			ps := p.Spec.SecurityContext
			if !*ps.RunAsNonRoot || *ps.RunAsUser != 65532 || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v", ps)
			}
		}},
		{"probes on the admin port", nil, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			c := p.Spec.Containers[0]
			if c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.ReadinessProbe.HTTPGet.Port.StrVal != "admin" ||
				c.LivenessProbe.HTTPGet.Path != "/healthz" || c.LivenessProbe.HTTPGet.Port.StrVal != "admin" {
				t.Errorf("probes %+v %+v", c.ReadinessProbe, c.LivenessProbe)
			}
			if len(c.Ports) != 2 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 || c.Ports[1].ContainerPort != 9090 {
				t.Errorf("ports %+v", c.Ports)
			}
		}},
		{"grace period covers the drain delay, timeouts.drain, the cut-off answers and the exit", func(s *ragv1.RAGService) {
			s.Spec.Timeouts.Drain = metav1.Duration{Duration: 2500 * time.Millisecond}
		}, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			if got := *p.Spec.TerminationGracePeriodSeconds; got != 8 {
				t.Errorf("terminationGracePeriodSeconds %d, want ceil(3s delay + 2.5s drain + 1s cut-off + 1s exit)=8", got)
			}
		}},
		{"API key from the Secret, never in args", func(s *ragv1.RAGService) {
			s.Spec.Embedding = ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Model: "m", Endpoint: "http://x/v1", MaxBatchSize: 8,
				APIKeySecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "openai"}, Key: "api-key"}}
		}, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			env := p.Spec.Containers[0].Env
			// The API key, then the budget Secret's three optional keys
			// (every openai pod has them; see "budget Secret" below).
			if len(env) != 4 || env[0].Name != APIKeyEnv || env[0].ValueFrom.SecretKeyRef.Name != "openai" || env[0].ValueFrom.SecretKeyRef.Key != "api-key" || env[0].Value != "" {
				t.Errorf("env %+v", env)
			}
			for _, a := range p.Spec.Containers[0].Args {
				if strings.Contains(a, "api-key") || strings.Contains(a, "openai\"") {
					t.Errorf("arg %q mentions the key", a)
				}
			}
		}},
		{"budget Secret named for every openai pod, the token required, never a value", func(s *ragv1.RAGService) {
			s.Spec.Embedding = ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Model: "m", Endpoint: "http://x/v1",
				Upstream: ragv1.UpstreamSpec{RequestsPerMinute: 6000, TokensPerMinute: 1000000}}
		}, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			want := map[string]string{
				contract.BudgetTokenEnv:         contract.BudgetSecretTokenKey,
				contract.BudgetStartRequestsEnv: contract.BudgetSecretRequestsKey,
				contract.BudgetStartTokensEnv:   contract.BudgetSecretTokensKey,
			}
			env := p.Spec.Containers[0].Env
			if len(env) != len(want) {
				t.Fatalf("env %+v", env)
			}
			for _, e := range env {
				ref := e.ValueFrom.SecretKeyRef
				// The token is required (no pod without it), the start share optional.
				optional := ref.Optional != nil && *ref.Optional
				if e.Value != "" || ref.Name != "docs-budget" || ref.Key != want[e.Name] || optional != (e.Name != contract.BudgetTokenEnv) {
					t.Errorf("env %s = %+v", e.Name, e)
				}
			}
			for _, a := range p.Spec.Containers[0].Args {
				if strings.Contains(a, "6000") || strings.Contains(a, "per-minute") {
					t.Errorf("arg %q: the service's budget is handed out, never an argument", a)
				}
			}
		}},
		{"pod pass-through", func(s *ragv1.RAGService) {
			s.Spec.Pod = ragv1.PodOverrides{
				Resources:          corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
				NodeSelector:       map[string]string{"pool": "embed"},
				Tolerations:        []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
				Annotations:        map[string]string{"prometheus.io/scrape": "true"},
				Labels:             map[string]string{"team": "search", "app.kubernetes.io/instance": "evil"},
				ServiceAccountName: "embed",
				PriorityClassName:  "high",
				ImagePullSecrets:   []corev1.LocalObjectReference{{Name: "registry-creds"}},
				TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone",
					WhenUnsatisfiable: corev1.ScheduleAnyway}},
				Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{}},
			}
		}, "img", func(t *testing.T, p *corev1.PodTemplateSpec) {
			// The user's resources replace the defaults whole: no default memory
			// request or limit is mixed in.
			if r := p.Spec.Containers[0].Resources; len(r.Requests) != 1 || len(r.Limits) != 0 || r.Requests.Cpu().String() != "250m" {
				t.Errorf("resources %+v, want only the 250m CPU request of the spec", r)
			}
			if p.Spec.NodeSelector["pool"] != "embed" || len(p.Spec.Tolerations) != 1 || p.Spec.ServiceAccountName != "embed" ||
				p.Spec.PriorityClassName != "high" || len(p.Spec.TopologySpreadConstraints) != 1 || p.Spec.Affinity == nil ||
				len(p.Spec.ImagePullSecrets) != 1 || p.Spec.ImagePullSecrets[0].Name != "registry-creds" {
				t.Errorf("pod spec %+v", p.Spec)
			}
			if p.Annotations["prometheus.io/scrape"] != "true" || p.Labels["team"] != "search" {
				t.Errorf("meta %+v %+v", p.Labels, p.Annotations)
			}
			if p.Labels["app.kubernetes.io/instance"] != "docs" {
				t.Errorf("spec.pod.labels overrode the selector label: %q", p.Labels["app.kubernetes.io/instance"])
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			svc := defaulted()
			if tc.mutate != nil {
				tc.mutate(svc)
			}
			tc.check(t, typed(t, svc, tc.image))
		})
	}
}

func TestBuildWithoutImage(t *testing.T) {
	_, err := Build(defaulted(), "")
	if err == nil || !strings.Contains(err.Error(), "spec.image") {
		t.Fatalf("want an error naming spec.image, got %v", err)
	}
}

// The revision names the template: every template field changes it, replicas
// and the rollout settings do not.
// The service's budget is handed out to running pods, never rendered into
// the template: declaring, changing or removing it is no revision.
func TestBudgetIsNotARevision(t *testing.T) {
	openai := func(rpm, tpm int64) func(*ragv1.RAGService) {
		return func(s *ragv1.RAGService) {
			s.Spec.Embedding = ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Model: "m", Endpoint: "http://x/v1", MaxBatchSize: 64,
				Upstream: ragv1.UpstreamSpec{RequestsPerMinute: rpm, TokensPerMinute: tpm}}
		}
	}
	base := revisionOf(t, defaulted(openai(0, 0)))
	for _, b := range [][2]int64{{6000, 0}, {6000, 1000000}, {3000, 1000000}, {0, 5}} {
		if rev := revisionOf(t, defaulted(openai(b[0], b[1]))); rev != base {
			t.Errorf("budget %d/%d changed the revision: %s -> %s", b[0], b[1], base, rev)
		}
	}
}

func TestRevision(t *testing.T) {
	base := revisionOf(t, defaulted())
	if len(base) != 10 {
		t.Fatalf("revision %q is not 10 hex characters", base)
	}
	if again := revisionOf(t, defaulted()); again != base {
		t.Fatalf("same spec, different revisions: %s %s", base, again)
	}
	changes := map[string]func(*ragv1.RAGService){
		"image":          func(s *ragv1.RAGService) { s.Spec.Image = "other:1" },
		"model":          func(s *ragv1.RAGService) { s.Spec.Embedding.Model = "hash-256" },
		"maxInFlight":    func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxInFlight = 9 },
		"maxQueue":       func(s *ragv1.RAGService) { s.Spec.Concurrency.MaxQueue = ptr.To(int32(1)) },
		"request":        func(s *ragv1.RAGService) { s.Spec.Timeouts.Request = metav1.Duration{Duration: time.Minute} },
		"drain":          func(s *ragv1.RAGService) { s.Spec.Timeouts.Drain = metav1.Duration{Duration: time.Second} },
		"retry":          func(s *ragv1.RAGService) { s.Spec.Retry.MaxAttempts = 5 },
		"pod label":      func(s *ragv1.RAGService) { s.Spec.Pod.Labels = map[string]string{"a": "b"} },
		"pod annotation": func(s *ragv1.RAGService) { s.Spec.Pod.Annotations = map[string]string{"a": "b"} },
		"node selector":  func(s *ragv1.RAGService) { s.Spec.Pod.NodeSelector = map[string]string{"a": "b"} },
	}
	seen := map[string]string{base: "base"}
	for name, m := range changes {
		rev := revisionOf(t, defaulted(m))
		if prev, dup := seen[rev]; dup {
			t.Errorf("%s: revision %s equals that of %s", name, rev, prev)
		}
		seen[rev] = name
	}
	same := map[string]func(*ragv1.RAGService){
		"replicas": func(s *ragv1.RAGService) { s.Spec.Replicas = ptr.To(int32(9)) },
		"steps":    func(s *ragv1.RAGService) { s.Spec.Rollout.Steps = []ragv1.RolloutStep{{SetWeight: ptr.To(int32(5))}} },
		"paused":   func(s *ragv1.RAGService) { s.Spec.Rollout.Paused = true },
		"analysis": func(s *ragv1.RAGService) { s.Spec.Rollout.Analysis = &ragv1.AnalysisSpec{MaxErrorRate: "0.5"} },
	}
	for name, m := range same {
		if rev := revisionOf(t, defaulted(m)); rev != base {
			t.Errorf("%s changed the revision: %s -> %s", name, base, rev)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tpl, err := Build(defaulted(), "img")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encode(tpl)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := Revision(tpl)
	r2, _ := Revision(back)
	if r1 != r2 {
		t.Fatalf("a stored template hashes differently: %s vs %s", r1, r2)
	}
	if _, err := Decode([]byte("{not json")); err == nil {
		t.Fatal("Decode accepted garbage")
	}
}

func TestWithRevisionDoesNotChangeTheInput(t *testing.T) {
	tpl, _ := Build(defaulted(), "img")
	before, _ := Revision(tpl)
	labelled, err := WithRevision(tpl, before)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := Revision(tpl); after != before {
		t.Fatal("WithRevision modified its input")
	}
	if _, tracked := labelled.Labels[ragv1.LabelTrack]; tracked || labelled.Labels[ragv1.LabelRevision] != before {
		t.Fatalf("labels %v", labelled.Labels)
	}
}

func revisionOf(t *testing.T, svc *ragv1.RAGService) string {
	t.Helper()
	tpl, err := Build(svc, "ragops/embedserver:1")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := Revision(tpl)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}
