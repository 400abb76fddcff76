package podtemplate

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/embedserver/serverflags"
)

const crdPath = "../../config/crd/bases/rag.ragops.io_ragservices.yaml"

// crdSchema is the generated CRD's structural schema, as kube-apiserver builds
// it to default and prune stored objects.
func crdSchema(t *testing.T) *structuralschema.Structural {
	t.Helper()
	data, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", crdPath, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != ragv1.GroupVersion.Version {
			continue
		}
		var internal apiextensions.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			t.Fatal(err)
		}
		s, err := structuralschema.NewStructural(&internal)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("%s has no version %s", crdPath, ragv1.GroupVersion.Version)
	return nil
}

// crdDefaulted returns the RAGService of manifest (JSON) with the CRD's defaults
// applied by the API server's own defaulting algorithm: what the controller
// reads back after a kubectl apply.
func crdDefaulted(t *testing.T, manifest string) *ragv1.RAGService {
	t.Helper()
	var obj map[string]any
	if err := json.Unmarshal([]byte(manifest), &obj); err != nil {
		t.Fatal(err)
	}
	defaulting.Default(obj, crdSchema(t))
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	svc := &ragv1.RAGService{}
	if err := json.Unmarshal(b, svc); err != nil {
		t.Fatal(err)
	}
	return svc
}

// serverOptions parses args with the embedding server's own flag set and checks.
func serverOptions(t *testing.T, args []string) serverflags.Options {
	t.Helper()
	o, err := serverflags.Parse(args, io.Discard)
	if err != nil {
		t.Fatalf("the server refuses %q: %v", args, err)
	}
	return o
}

// The arguments the operator writes parse with the server's real flag set, and
// mean what the spec says: for a spec as the API server stores it (CRD defaults
// applied) and for one that never passed the CRD's defaulting (zero values).
func TestArgsParseAsTheServerParsesThem(t *testing.T) {
	defaults := serverOptions(t, nil) // the server's defaults: internal/contract
	noDrain := defaults
	noDrain.DrainTimeout = 0

	openaiOpts := defaults
	openaiOpts.Provider, openaiOpts.Model, openaiOpts.UpstreamURL = contract.ProviderOpenAI, "text-embedding-3-small", "https://api.example.test/v1"
	openaiOpts.Dimensions, openaiOpts.MaxBatchSize = 256, 16

	azure := openaiOpts
	azure.Model, azure.UpstreamURL, azure.Dimensions, azure.MaxBatchSize = "text-embedding-3-large", "https://docs.openai.azure.com/openai/deployments/emb", 0, contract.DefaultMaxBatchSize
	azure.UpstreamAuth, azure.UpstreamAPIVer = contract.UpstreamAuthAzureAPIKey, "2024-10-21"

	noQueue := defaults
	noQueue.MaxQueue = 0

	spaced := defaults
	spaced.Space = "docs-v2"

	tuned := defaults
	tuned.MaxInFlight, tuned.RequestTimeout, tuned.QueueTimeout, tuned.MaxAttempts = 100, 90*time.Second, 250*time.Millisecond, 1

	cases := []struct {
		name string
		spec *ragv1.RAGService
		want serverflags.Options
	}{
		{"empty manifest, CRD-defaulted", crdDefaulted(t, `{"spec":{}}`), defaults},
		// The CRD has no default for spec itself, so an object without one is
		// stored as it came: every field zero, drain included.
		{"no spec at all, CRD-defaulted", crdDefaulted(t, `{}`), noDrain},
		{"undefaulted zero spec: the server's defaults, and drain 0 as written", &ragv1.RAGService{}, noDrain},
		{"undefaulted spec with only a model", &ragv1.RAGService{Spec: ragv1.RAGServiceSpec{Embedding: ragv1.EmbeddingSpec{Model: "hash-384"}}}, noDrain},
		{"hand-written defaulted spec of the other tests", defaulted(), defaults},
		{"openai, CRD-defaulted", crdDefaulted(t, `{"spec":{"embedding":{"provider":"openai","model":"text-embedding-3-small",
			"endpoint":"https://api.example.test/v1","dimensions":256,"maxBatchSize":16}}}`), openaiOpts},
		{"azure, CRD-defaulted", crdDefaulted(t, `{"spec":{"embedding":{"provider":"openai","model":"text-embedding-3-large",
			"endpoint":"https://docs.openai.azure.com/openai/deployments/emb","auth":"AzureAPIKey","apiVersion":"2024-10-21"}}}`), azure},
		{"maxQueue 0 is no queue, not unset", crdDefaulted(t, `{"spec":{"concurrency":{"maxQueue":0}}}`), noQueue},
		{"drain 0s, as the CRD allows", crdDefaulted(t, `{"spec":{"timeouts":{"drain":"0s"}}}`), noDrain},
		{"the declared embedding space", crdDefaulted(t, `{"spec":{"embedding":{"space":"docs-v2"}}}`), spaced},
		{"tuned", crdDefaulted(t, `{"spec":{"concurrency":{"maxInFlight":100},"timeouts":{"request":"1m30s","queue":"250ms"},
			"retry":{"maxAttempts":1}}}`), tuned},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := Args(&tc.spec.Spec)
			if diff := cmp.Diff(tc.want, serverOptions(t, args)); diff != "" {
				t.Errorf("args %q parse to other options (-want +got):\n%s", args, diff)
			}
		})
	}
}

// The CRD's kubebuilder defaults are literal markers; they must say what the
// server's contract says.
func TestCRDDefaultsAreTheServerDefaults(t *testing.T) {
	spec := crdSchema(t).Properties["spec"]
	want := map[string]any{
		"embedding.provider":      contract.DefaultProvider,
		"embedding.model":         contract.DefaultBuiltinModel,
		"embedding.auth":          "Bearer", // --upstream-auth=bearer
		"embedding.maxBatchSize":  int64(contract.DefaultMaxBatchSize),
		"concurrency.maxInFlight": int64(contract.DefaultMaxInFlight),
		"concurrency.maxQueue":    int64(contract.DefaultMaxQueue),
		"timeouts.request":        contract.DefaultRequestTimeout.String(),
		"timeouts.queue":          contract.DefaultQueueTimeout.String(),
		"timeouts.upstream":       contract.DefaultUpstreamTimeout.String(),
		"timeouts.drain":          contract.DefaultDrainTimeout.String(),
		"retry.maxAttempts":       int64(contract.DefaultMaxAttempts),
		"retry.initialBackoff":    contract.DefaultInitialBackoff.String(),
	}
	for path, w := range want {
		s := spec
		for _, p := range strings.Split(path, ".") {
			s = s.Properties[p]
		}
		if got := s.Default.Object; got != w {
			t.Errorf("CRD default of spec.%s is %v (%T), the server's is %v (%T)", path, got, got, w, w)
		}
	}
}

// The pods' grace period covers the server's whole drain as the server runs
// it: the drain delay and drain timeout it parses from the operator's
// arguments, then contract.DrainCutoffGrace for the requests cut off, with at
// least a second left to exit. And it is drain + 5s, the value from before the
// drain delay moved ahead of the drain timeout, so no existing service's
// template (and revision) changes.
func TestGracePeriodCoversTheServersDrain(t *testing.T) {
	for _, drain := range []time.Duration{0, 100 * time.Millisecond, 2500 * time.Millisecond, 30 * time.Second, time.Hour - 500*time.Millisecond, time.Hour} {
		t.Run(drain.String(), func(t *testing.T) {
			svc := defaulted(func(s *ragv1.RAGService) { s.Spec.Timeouts.Drain = metav1.Duration{Duration: drain} })
			o := serverOptions(t, Args(&svc.Spec))
			grace := time.Duration(*typed(t, svc, "img").Spec.TerminationGracePeriodSeconds) * time.Second
			serverDrain := o.DrainDelay + o.DrainTimeout + contract.DrainCutoffGrace
			if o.DrainTimeout != drain || grace-serverDrain < time.Second {
				t.Errorf("grace period %v for a drain of %v delay + %v timeout + %v cut-off: less than a second to exit", grace, o.DrainDelay, o.DrainTimeout, contract.DrainCutoffGrace)
			}
			if was := time.Duration(math.Ceil((drain + 5*time.Second).Seconds())) * time.Second; grace != was {
				t.Errorf("grace period %v, was %v: every existing service's template would change", grace, was)
			}
		})
	}
}
