package openai

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ragops/rag-operator/internal/contract"
	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/provider"
)

// Azure OpenAI authenticates a key in the api-key header, wants an api-version
// on every call and refuses a Bearer header: the client reaches it only with
// --upstream-auth=azure-api-key and the version, and says what went wrong
// otherwise (the upstream's own status and message, not retried).
func TestAzureAPIKeyAuth(t *testing.T) {
	const key, version = "azure-secret", "2024-10-21"
	up := fakeupstream.New(fakeupstream.Config{Azure: fakeupstream.Azure{Key: key, APIVersion: version}})
	ts := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); ts.Close() })
	base := ts.URL + "/openai/deployments/text-embedding-3-small"

	tests := []struct {
		name            string
		auth, version   string
		key             string
		wantErr         string // "" : the vectors come back
		wantStatusCount int    // the status the upstream counted for the call
	}{
		{"api-key header and api-version", contract.UpstreamAuthAzureAPIKey, version, key, "", http.StatusOK},
		{"bearer is refused", contract.UpstreamAuthBearer, version, key, "Access denied", http.StatusUnauthorized},
		{"default auth is bearer, refused", "", version, key, "upstream answered 401", http.StatusUnauthorized},
		{"wrong key", contract.UpstreamAuthAzureAPIKey, version, "other", "upstream answered 401", http.StatusUnauthorized},
		{"no api-version", contract.UpstreamAuthAzureAPIKey, "", key, "Resource not found", http.StatusNotFound},
		{"unknown api-version", contract.UpstreamAuthAzureAPIKey, "1999-01-01", key, "API version not supported", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up.ResetStats()
			c, err := New(Config{BaseURL: base, APIKey: tt.key, Auth: tt.auth, APIVersion: tt.version, Model: "text-embedding-3-small", MaxAttempts: 3, InitialBackoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			in := texts("azure", 3)
			resp, err := c.Embed(ctx, provider.Request{Inputs: in})
			st := up.Stats()
			if st.Calls != 1 || st.ByStatus[tt.wantStatusCount] != 1 {
				t.Fatalf("upstream saw %d calls, by status %v; want one answered %d (a refusal is not retried)", st.Calls, st.ByStatus, tt.wantStatusCount)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Embed: %v", err)
				}
				checkVectors(t, in, resp.Embeddings)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			pe, ok := provider.AsError(err)
			if !ok {
				t.Fatalf("error %v is not an answer for the client", err)
			}
			// A refusal is final: the client gets the upstream's own status.
			if pe.Status != tt.wantStatusCount || !pe.Final {
				t.Errorf("client answer %d (final %v), want the upstream's %d, final", pe.Status, pe.Final, tt.wantStatusCount)
			}
		})
	}
}

// The call goes to <base>/embeddings (a trailing slash in the base URL
// tolerated) with the api-version query, and the key in api-key only.
func TestAzureRequestShape(t *testing.T) {
	var got *http.Request
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[{"object":"embedding","index":0,"embedding":[1,0]}],"model":"m","usage":{"prompt_tokens":1,"total_tokens":1}}`))
	}))
	defer ts.Close()
	c, err := New(Config{BaseURL: ts.URL + "/openai/deployments/d/", APIKey: "k", Auth: contract.UpstreamAuthAzureAPIKey, APIVersion: "2024-10-21", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Embed(context.Background(), provider.Request{Inputs: texts("x", 1)}); err != nil {
		t.Fatal(err)
	}
	if got.URL.Path != "/openai/deployments/d/embeddings" || got.URL.RawQuery != "api-version=2024-10-21" {
		t.Errorf("called %s?%s", got.URL.Path, got.URL.RawQuery)
	}
	if got.Header.Get("api-key") != "k" || got.Header.Get("Authorization") != "" {
		t.Errorf("headers api-key=%q Authorization=%q", got.Header.Get("api-key"), got.Header.Get("Authorization"))
	}
}

func TestNewRefusesUnknownAuth(t *testing.T) {
	if _, err := New(Config{BaseURL: "http://127.0.0.1:1/v1", Auth: "basic"}); err == nil || !strings.Contains(err.Error(), `upstream auth "basic" must be bearer or azure-api-key`) {
		t.Fatalf("error %v", err)
	}
}
