package embedserver

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ragops/rag-operator/internal/builtinmodel"
)

func BenchmarkShedPath(b *testing.B) {
	s := New(Config{Model: "hash-16", MaxInFlight: 1, MaxQueue: 0}, builtinmodel.Provider{Model: builtinmodel.Model{Dims: 16}})
	rel, _ := s.limiter.Acquire(context.Background())
	defer rel()
	h := s.Handler()
	body := `{"input":"How do I roll back a canary of the embedding service?","model":"hash-16"}`
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/v1/embeddings", strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 429 {
			b.Fatal(rec.Code)
		}
	}
}
