package serverflags

import (
	"testing"

	"github.com/ragops/rag-operator/internal/contract"
)

func TestApplyStartShare(t *testing.T) {
	cases := []struct {
		name             string
		rpmFlag, tpmFlag int
		env              map[string]string
		wantRPM, wantTPM int
		wantErr          bool
	}{
		{name: "nothing set", wantRPM: 0, wantTPM: 0},
		{name: "both from the Secret", env: map[string]string{contract.BudgetStartRequestsEnv: "1500", contract.BudgetStartTokensEnv: "250000"}, wantRPM: 1500, wantTPM: 250000},
		{name: "a flag wins", rpmFlag: 10, env: map[string]string{contract.BudgetStartRequestsEnv: "1500"}, wantRPM: 10},
		{name: "zero is undeclared", env: map[string]string{contract.BudgetStartRequestsEnv: "0"}, wantRPM: 0},
		{name: "negative refused", env: map[string]string{contract.BudgetStartRequestsEnv: "-1"}, wantErr: true},
		{name: "garbage refused", env: map[string]string{contract.BudgetStartTokensEnv: "lots"}, wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Options{UpstreamRPM: c.rpmFlag, UpstreamTPM: c.tpmFlag}
			err := ApplyStartShare(&o, func(k string) string { return c.env[k] })
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err == nil && (o.UpstreamRPM != c.wantRPM || o.UpstreamTPM != c.wantTPM) {
				t.Fatalf("share = %d/%d, want %d/%d", o.UpstreamRPM, o.UpstreamTPM, c.wantRPM, c.wantTPM)
			}
		})
	}
}
