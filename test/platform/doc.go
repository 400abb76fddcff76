// Package platform checks what ragops ships for the tools platform teams
// already run: the Argo CD health check, the Grafana dashboard, the Prometheus
// alert rules, the krew plugin manifest and `ragload --service`. `make
// test-platform` runs it (it provides promtool, helm and the envtest
// binaries).
package platform
