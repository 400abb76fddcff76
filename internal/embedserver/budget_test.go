package embedserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ragops/rag-operator/internal/fakeupstream"
	"github.com/ragops/rag-operator/internal/provider/openai"
)

// Anyone who reaches the admin port reads the share; only the operator's
// token changes it, and a change takes effect at once (no restart), visible
// in the share gauge.
func TestBudgetShareHandOut(t *testing.T) {
	put := func(t *testing.T, url, auth, body string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, url+"/budget", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	h := startUpstream(t, Config{BudgetToken: "operator-secret"}, fakeupstream.Config{}, openai.Config{RequestsPerMinute: 100})
	if a := get(t, h.admin+"/budget"); a.status != 200 || !strings.Contains(string(a.body), `"requestsPerMinute":100`) {
		t.Fatalf("GET /budget: %d %s", a.status, a.body)
	}
	for _, tt := range []struct {
		name, auth, body string
		want             int
	}{
		{"no token", "", `{"requestsPerMinute":999999}`, 401},
		{"wrong token", "Bearer operator-secreT", `{"requestsPerMinute":999999}`, 401},
		{"token as basic auth", "Basic operator-secret", `{"requestsPerMinute":999999}`, 401},
		{"negative share", "Bearer operator-secret", `{"requestsPerMinute":-1}`, 400},
		{"unknown field", "Bearer operator-secret", `{"rpm":5}`, 400},
		{"the operator", "Bearer operator-secret", `{"requestsPerMinute":3000,"tokensPerMinute":50000}`, 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := put(t, h.admin, tt.auth, tt.body); got != tt.want {
				t.Fatalf("PUT /budget: %d, want %d", got, tt.want)
			}
		})
	}
	if got := h.metric(t, `embedserver_budget_share_per_minute{kind="requests"}`); got != 3000 {
		t.Fatalf("share gauge %v, want 3000", got)
	}
	if got := h.metric(t, `embedserver_budget_share_per_minute{kind="tokens"}`); got != 50000 {
		t.Fatalf("tokens share gauge %v, want 50000", got)
	}

	// A server without a token refuses every change, whatever is sent.
	open := startUpstream(t, Config{}, fakeupstream.Config{}, openai.Config{RequestsPerMinute: 100})
	if got := put(t, open.admin, "Bearer ", `{"requestsPerMinute":5}`); got != 401 {
		t.Fatalf("PUT /budget without a configured token: %d", got)
	}
	// The builtin provider has no budget.
	if a := get(t, startBuiltin(t, Config{}).admin+"/budget"); a.status != 404 {
		t.Fatalf("builtin GET /budget: %d", a.status)
	}
}
