package embeddingspace

import (
	"fmt"
	"testing"

	"github.com/ragops/rag-operator/internal/openaiapi"
)

// BenchmarkCompare measures a comparison at the probe set's usual and largest
// sizes, next to its baseline of the same run: decoding the two float answers
// the comparison reads (openaiapi.DecodeResponse), which the operator does
// anyway. Compare is O(probes² · dims) for the neighbours, decoding
// O(probes · dims).
func BenchmarkCompare(b *testing.B) {
	for _, size := range []struct{ probes, dims int }{{64, 384}, {81, 1536}, {256, 1536}, {MaxProbes, 1536}} {
		stable := clustered(1, size.probes, size.dims)
		canary := with(stable, noise(2, 1e-6))
		name := fmt.Sprintf("probes=%d/dims=%d", size.probes, size.dims)
		b.Run(name+"/compare", func(b *testing.B) {
			for b.Loop() {
				if _, err := Compare(stable, canary, 5); err != nil {
					b.Fatal(err)
				}
			}
		})
		answers := [][]byte{openaiapi.AppendResponse(nil, "m", stable, 1, false), openaiapi.AppendResponse(nil, "m", canary, 1, false)}
		b.Run(name+"/baseline-decode-both-answers", func(b *testing.B) {
			for b.Loop() {
				for _, a := range answers {
					if _, _, err := openaiapi.DecodeResponse(a, size.probes); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
