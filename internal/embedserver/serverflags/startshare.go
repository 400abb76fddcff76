package serverflags

import (
	"fmt"
	"strconv"

	"github.com/ragops/rag-operator/internal/contract"
)

// ApplyStartShare fills the upstream budget share the flags leave at 0 from
// the start-share environment (EMBEDSERVER_BUDGET_START_*), which the
// operator sets from the service's budget Secret: the safe share a pod runs
// on until the operator tells it its share over the admin port. A flag given
// on the command line wins. An empty variable means none; a malformed or
// negative one is an error (exit 2), never a silent unlimited pod.
func ApplyStartShare(o *Options, getenv func(string) string) error {
	for _, v := range []struct {
		env string
		dst *int
	}{
		{contract.BudgetStartRequestsEnv, &o.UpstreamRPM},
		{contract.BudgetStartTokensEnv, &o.UpstreamTPM},
	} {
		s := getenv(v.env)
		if s == "" || *v.dst != 0 {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("%s=%q: want a share per minute, 0 or more", v.env, s)
		}
		*v.dst = n
	}
	return nil
}
