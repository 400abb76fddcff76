package embedserver

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/ragops/rag-operator/internal/budget"
	"github.com/ragops/rag-operator/internal/openaiapi"
	"github.com/ragops/rag-operator/internal/provider"
)

// ShareBody is the body of GET and PUT /budget on the admin port: this pod's
// share of its service's upstream budget, per minute (0: not declared).
type ShareBody struct {
	RequestsPerMinute int `json:"requestsPerMinute"`
	TokensPerMinute   int `json:"tokensPerMinute"`
	// PausedUntil is set (GET only) while the upstream asked the pod to pause.
	PausedUntil *time.Time `json:"pausedUntil,omitempty"`
}

// budgetHandler serves /budget: anyone who reaches the admin port may read
// the share; only the holder of the budget token (the operator, through the
// per-service Secret) may change it, compared in constant time. Without a
// token configured nobody may change it.
func (s *Server) budgetHandler(w http.ResponseWriter, r *http.Request) {
	b := s.cfg.Budget
	if b == nil {
		openaiapi.WriteError(w, &provider.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found", Message: "this server has no upstream budget (builtin provider)"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		now := time.Now()
		share := b.Share()
		body := ShareBody{RequestsPerMinute: share.RequestsPerMinute, TokensPerMinute: share.TokensPerMinute}
		if until := b.PausedUntil(now); !until.IsZero() {
			body.PausedUntil = &until
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	case http.MethodPut:
		if !s.budgetAuthorized(r) {
			s.log.Warn("refused a budget change", "remote", r.RemoteAddr)
			openaiapi.WriteError(w, &provider.Error{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_budget_token",
				Message: "changing the budget share needs the operator's token"})
			return
		}
		var body ShareBody
		dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			openaiapi.WriteError(w, provider.BadRequest("", "could not parse the share: %v", err))
			return
		}
		if body.RequestsPerMinute < 0 || body.TokensPerMinute < 0 {
			openaiapi.WriteError(w, provider.BadRequest("requestsPerMinute", "a share must not be negative"))
			return
		}
		b.SetShare(budget.Share{RequestsPerMinute: body.RequestsPerMinute, TokensPerMinute: body.TokensPerMinute}, time.Now())
		s.log.Info("budget share set", "requests_per_minute", body.RequestsPerMinute, "tokens_per_minute", body.TokensPerMinute)
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w, "GET, PUT")
	}
}

func (s *Server) budgetAuthorized(r *http.Request) bool {
	if s.cfg.BudgetToken == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.BudgetToken)) == 1
}
