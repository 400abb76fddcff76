package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	ragv1 "github.com/ragops/rag-operator/api/v1alpha1"
	"github.com/ragops/rag-operator/internal/builtinmodel"
	"github.com/ragops/rag-operator/internal/testsupport/kubetest"
)

// The CRD admits a builtin model exactly when the embedding server serves it: a
// model the server refuses would crash-loop the pods of an admitted spec.
func TestCRDAdmitsTheBuiltinModelsTheServerServes(t *testing.T) {
	ns := kubetest.Namespace(t, k8sClient)
	for i, model := range []string{"hash-0", "hash-1", "hash-01", "hash-2", "hash-0002", "hash-384", "hash-8192", "hash-8193", "hash-9999", "hash--1", "hash-"} {
		_, parseErr := builtinmodel.Parse(model)
		svc := newService(ns, fmt.Sprintf("model-%d", i), 0, func(s *ragv1.RAGService) { s.Spec.Embedding.Model = model })
		err := k8sClient.Create(context.Background(), svc)
		if (err == nil) != (parseErr == nil) {
			t.Errorf("model %q: the API server says %v, the embedding server says %v", model, err, parseErr)
		}
	}
}

// Every validation rule of the CRD refuses a bad manifest at the API server,
// with a message that names the field. No operator runs here: this is the CRD.
func TestValidationRefusesBadManifests(t *testing.T) {
	ns := kubetest.Namespace(t, k8sClient)
	cases := []struct {
		name string
		spec map[string]any
		want []string // substrings of the API server's error
	}{
		{"replicas negative", map[string]any{"replicas": -1}, []string{"spec.replicas"}},
		{"replicas too many", map[string]any{"replicas": 5000}, []string{"spec.replicas"}},
		{"unknown provider", map[string]any{"embedding": map[string]any{"provider": "cohere"}}, []string{"spec.embedding.provider", "Unsupported value"}},
		{"openai without endpoint", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "text-embedding-3-small"}},
			[]string{"spec.embedding.endpoint", "required when provider is openai"}},
		{"endpoint not a URL", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "m", "endpoint": "ftp://x"}},
			[]string{"spec.embedding.endpoint must be an http:// or https:// URL"}},
		{"azure key without api version", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "m", "endpoint": "https://x.openai.azure.com/openai/deployments/m",
			"auth": "AzureAPIKey"}}, []string{"spec.embedding.apiVersion is required when spec.embedding.auth is AzureAPIKey"}},
		{"unknown auth", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "m", "endpoint": "https://x/v1", "auth": "Basic"}},
			[]string{"spec.embedding.auth", "Unsupported value"}},
		{"api version not a version", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "m", "endpoint": "https://x/v1", "apiVersion": "2024-10-21&x=1"}},
			[]string{"spec.embedding.apiVersion must be a version"}},
		{"auth on builtin", map[string]any{"embedding": map[string]any{"auth": "AzureAPIKey", "apiVersion": "2024-10-21"}},
			[]string{"spec.embedding.auth and spec.embedding.apiVersion are only used by the openai provider"}},
		{"api version on builtin", map[string]any{"embedding": map[string]any{"apiVersion": "2024-10-21"}},
			[]string{"spec.embedding.auth and spec.embedding.apiVersion are only used by the openai provider"}},
		{"builtin model not hash", map[string]any{"embedding": map[string]any{"model": "bert"}}, []string{"spec.embedding.model", "hash-<dimensions>"}},
		{"builtin model too wide", map[string]any{"embedding": map[string]any{"model": "hash-9000"}}, []string{"spec.embedding.model"}},
		{"dimensions above model", map[string]any{"embedding": map[string]any{"model": "hash-64", "dimensions": 128}}, []string{"spec.embedding.dimensions"}},
		{"api key on builtin", map[string]any{"embedding": map[string]any{"apiKeySecretRef": map[string]any{"name": "s", "key": "k"}}},
			[]string{"spec.embedding.apiKeySecretRef"}},
		{"batch size zero", map[string]any{"embedding": map[string]any{"maxBatchSize": 0}}, []string{"spec.embedding.maxBatchSize"}},
		{"budget negative", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "m", "endpoint": "https://x/v1", "upstream": map[string]any{"requestsPerMinute": -1}}},
			[]string{"spec.embedding.upstream.requestsPerMinute"}},
		{"token budget negative", map[string]any{"embedding": map[string]any{"provider": "openai", "model": "m", "endpoint": "https://x/v1", "upstream": map[string]any{"tokensPerMinute": -5}}},
			[]string{"spec.embedding.upstream.tokensPerMinute"}},
		{"budget on builtin", map[string]any{"embedding": map[string]any{"upstream": map[string]any{"requestsPerMinute": 6000}}},
			[]string{"spec.embedding.upstream.requestsPerMinute is only used by the openai provider"}},
		{"token budget on builtin", map[string]any{"embedding": map[string]any{"upstream": map[string]any{"tokensPerMinute": 1000}}},
			[]string{"spec.embedding.upstream.tokensPerMinute is only used by the openai provider"}},
		{"inputs per call zero", map[string]any{"embedding": map[string]any{"upstream": map[string]any{"maxInputsPerCall": 0}}}, []string{"spec.embedding.upstream.maxInputsPerCall"}},
		{"tokens per call negative", map[string]any{"embedding": map[string]any{"upstream": map[string]any{"maxTokensPerCall": -5}}}, []string{"spec.embedding.upstream.maxTokensPerCall"}},
		{"unknown upstream field", map[string]any{"embedding": map[string]any{"upstream": map[string]any{"rpm": 5}}}, []string{"spec.embedding.upstream.rpm"}},
		{"maxInFlight zero", map[string]any{"concurrency": map[string]any{"maxInFlight": 0}}, []string{"spec.concurrency.maxInFlight"}},
		{"maxQueue negative", map[string]any{"concurrency": map[string]any{"maxQueue": -1}}, []string{"spec.concurrency.maxQueue"}},
		{"request timeout too long", map[string]any{"timeouts": map[string]any{"request": "2h"}}, []string{"spec.timeouts.request"}},
		{"request timeout not a duration", map[string]any{"timeouts": map[string]any{"request": "soon"}}, []string{"spec.timeouts.request"}},
		{"queue longer than request", map[string]any{"timeouts": map[string]any{"request": "1s", "queue": "5s", "upstream": "1s"}},
			[]string{"spec.timeouts.queue must not be longer than spec.timeouts.request"}},
		{"upstream longer than request", map[string]any{"timeouts": map[string]any{"request": "5s", "queue": "1s", "upstream": "10s"}},
			[]string{"spec.timeouts.upstream must not be longer than spec.timeouts.request"}},
		{"drain too long", map[string]any{"timeouts": map[string]any{"drain": "3h"}}, []string{"spec.timeouts.drain"}},
		{"attempts zero", map[string]any{"retry": map[string]any{"maxAttempts": 0}}, []string{"spec.retry.maxAttempts"}},
		{"backoff too long", map[string]any{"retry": map[string]any{"initialBackoff": "5m"}}, []string{"spec.retry.initialBackoff"}},
		{"unknown strategy", map[string]any{"rollout": map[string]any{"strategy": "BlueGreen"}}, []string{"spec.rollout.strategy"}},
		{"step with both", map[string]any{"rollout": map[string]any{"steps": []any{map[string]any{"setWeight": 20, "pause": map[string]any{}}}}},
			[]string{"spec.rollout.steps[0]", "exactly one of setWeight or pause"}},
		{"empty step", map[string]any{"rollout": map[string]any{"steps": []any{map[string]any{}}}}, []string{"spec.rollout.steps[0]", "exactly one of setWeight or pause"}},
		{"weight zero", map[string]any{"rollout": map[string]any{"steps": []any{map[string]any{"setWeight": 0}}}}, []string{"spec.rollout.steps[0].setWeight"}},
		{"weight above 100", map[string]any{"rollout": map[string]any{"steps": []any{map[string]any{"setWeight": 101}}}}, []string{"spec.rollout.steps[0].setWeight"}},
		{"pause too long", map[string]any{"rollout": map[string]any{"steps": []any{map[string]any{"pause": map[string]any{"duration": "200h"}}}}},
			[]string{"spec.rollout.steps[0].pause.duration"}},
		{"deadline too short", map[string]any{"rollout": map[string]any{"progressDeadline": "100ms"}}, []string{"spec.rollout.progressDeadline"}},
		{"error rate not decimal", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxErrorRate": "1%"}}},
			[]string{"spec.rollout.analysis.maxErrorRate", "decimal between 0 and 1"}},
		{"error rate above one", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxErrorRate": "1.5"}}},
			[]string{"spec.rollout.analysis.maxErrorRate"}},
		{"shed rate negative", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxShedRate": "-0.1"}}},
			[]string{"spec.rollout.analysis.maxShedRate"}},
		{"unknown onNoData", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"onNoData": "Ignore"}}},
			[]string{"spec.rollout.analysis.onNoData"}},
		{"prometheus without address", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"provider": "Prometheus"}}},
			[]string{"spec.rollout.analysis.prometheus", "address is required"}},
		{"interval too short", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"interval": "10ms"}}},
			[]string{"spec.rollout.analysis.interval"}},
		{"failure limit negative", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"failureLimit": -1}}},
			[]string{"spec.rollout.analysis.failureLimit"}},
		{"latency zero", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxLatencyP99": "0s"}}},
			[]string{"spec.rollout.analysis.maxLatencyP99"}},
		{"space not a DNS label", map[string]any{"embedding": map[string]any{"space": "V2_docs"}}, []string{"spec.embedding.space must be a DNS label"}},
		{"space too long", map[string]any{"embedding": map[string]any{"space": strings.Repeat("a", 64)}}, []string{"spec.embedding.space"}},
		{"min cosine above one", map[string]any{"rollout": map[string]any{"spaceCheck": map[string]any{"minCosine": "1.5"}}},
			[]string{"spec.rollout.spaceCheck.minCosine must be a decimal between 0 and 1"}},
		{"neighbour overlap not decimal", map[string]any{"rollout": map[string]any{"spaceCheck": map[string]any{"minNeighborOverlap": "90%"}}},
			[]string{"spec.rollout.spaceCheck.minNeighborOverlap must be a decimal between 0 and 1"}},
		{"k zero", map[string]any{"rollout": map[string]any{"spaceCheck": map[string]any{"k": 0}}}, []string{"spec.rollout.spaceCheck.k"}},
		{"k above 32", map[string]any{"rollout": map[string]any{"spaceCheck": map[string]any{"k": 33}}}, []string{"spec.rollout.spaceCheck.k"}},
		{"probe ConfigMap without a name", map[string]any{"rollout": map[string]any{"spaceCheck": map[string]any{"probes": map[string]any{"configMapRef": map[string]any{"key": "probes.txt"}}}}},
			[]string{"spec.rollout.spaceCheck.probes.configMapRef"}},
		{"unknown baseline", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"baseline": "Canary"}}}, []string{"spec.rollout.analysis.baseline"}},
		{"failure rate increase above one", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxFailureRateIncrease": "2"}}},
			[]string{"spec.rollout.analysis.maxFailureRateIncrease must be a decimal between 0 and 1"}},
		{"latency ratio below one", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxLatencyRatio": "0.5"}}},
			[]string{"spec.rollout.analysis.maxLatencyRatio must be a decimal of at least 1"}},
		{"latency ratio not a number", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"maxLatencyRatio": "2x"}}},
			[]string{"spec.rollout.analysis.maxLatencyRatio must be a decimal of at least 1"}},
		{"probe requests negative", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"probeRequests": -1}}}, []string{"spec.rollout.analysis.probeRequests"}},
		{"probe requests too many", map[string]any{"rollout": map[string]any{"analysis": map[string]any{"probeRequests": 5000}}}, []string{"spec.rollout.analysis.probeRequests"}},
		{"unknown field", map[string]any{"replicaz": 3}, []string{"replicaz"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			spec := map[string]any{"embedding": map[string]any{"provider": "builtin", "model": "hash-384"}}
			for k, v := range tc.spec {
				if m, ok := v.(map[string]any); ok {
					if base, ok := spec[k].(map[string]any); ok {
						for bk, bv := range base {
							if _, set := m[bk]; !set {
								m[bk] = bv
							}
						}
					}
				}
				spec[k] = v
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": ragv1.GroupVersion.String(), "kind": "RAGService",
				"metadata": map[string]any{"generateName": "bad-", "namespace": ns},
				"spec":     spec,
			}}
			err := k8sClient.Create(context.Background(), obj, client.FieldValidation("Strict"))
			g.Expect(err).To(HaveOccurred(), "the API server accepted %v", spec)
			for _, w := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}

	// And the good one, with every default filled in by the CRD.
	g := NewWithT(t)
	ok := newService(ns, "good", 1)
	g.Expect(k8sClient.Create(context.Background(), ok)).To(Succeed())
	g.Expect(ok.Spec.Concurrency.MaxInFlight).To(Equal(int32(8)))
	g.Expect(*ok.Spec.Concurrency.MaxQueue).To(Equal(int32(32)))
	g.Expect(ok.Spec.Timeouts.Request.Duration.String()).To(Equal("30s"))
	g.Expect(ok.Spec.Rollout.Strategy).To(Equal(ragv1.StrategyCanary))
	g.Expect(*ok.Spec.Rollout.AutoRollback).To(BeTrue())
	g.Expect(ok.Spec.Embedding.MaxBatchSize).To(Equal(int32(64)))
	sc := ok.Spec.Rollout.SpaceCheck
	g.Expect(sc.Enabled).To(Equal(ptr.To(true)))
	g.Expect([]any{sc.MinCosine, sc.MinNeighborOverlap, sc.K}).To(Equal([]any{"0.999", "0.9", int32(5)}))

	g.Expect(ok.Spec.Embedding.Auth).To(Equal(ragv1.UpstreamAuthBearer))

	azure := newService(ns, "good-azure", 1, func(s *ragv1.RAGService) {
		s.Spec.Embedding = ragv1.EmbeddingSpec{Provider: ragv1.ProviderOpenAI, Model: "text-embedding-3-small",
			Endpoint: "https://docs.openai.azure.com/openai/deployments/emb", Auth: ragv1.UpstreamAuthAzureAPIKey, APIVersion: "2025-01-01-preview"}
	})
	g.Expect(k8sClient.Create(context.Background(), azure)).To(Succeed())
	// An upstream section gets OpenAI's per-call limits by default.
	withUpstream := newService(ns, "good-upstream", 1, func(s *ragv1.RAGService) {
		s.Spec.Embedding.Upstream = ragv1.UpstreamSpec{MaxInputsPerCall: 100}
	})
	g.Expect(k8sClient.Create(context.Background(), withUpstream)).To(Succeed())
	g.Expect(withUpstream.Spec.Embedding.Upstream).To(Equal(ragv1.UpstreamSpec{MaxInputsPerCall: 100, MaxTokensPerCall: 300000}))

	withAnalysis := newService(ns, "good-analysis", 1, func(s *ragv1.RAGService) { s.Spec.Rollout.Analysis = &ragv1.AnalysisSpec{} })
	g.Expect(k8sClient.Create(context.Background(), withAnalysis)).To(Succeed())
	a := withAnalysis.Spec.Rollout.Analysis
	g.Expect([]any{a.Baseline, a.MaxFailureRateIncrease, a.MaxLatencyRatio, *a.ProbeRequests}).To(Equal([]any{ragv1.BaselineStable, "0.01", "2", int32(10)}))
}
