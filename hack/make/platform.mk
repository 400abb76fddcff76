##@ Platform tools

# What ragops ships for the tools platform teams run: the Argo CD health check,
# the Grafana dashboard, the Prometheus alert rules, the krew manifest and
# `ragload --service` (test/platform). See docs/install.md#integrations.

PROMTOOL := $(BIN)/promtool

.PHONY: test-platform
test-platform: $(HELM) $(PROMTOOL) ## Argo CD health script, dashboard and alert queries, promtool rule tests, krew manifest, ragload --service on envtest.
	K8S_BINS_DIR=$(K8S_BINS) hack/k8s-bins.sh etcd kube-apiserver  # envtest needs only these two
	HELM=$(HELM) PROMTOOL=$(PROMTOOL) go test -race -count=1 -timeout 10m ./test/platform/...

# promtool from Debian's prometheus package (2.42), unpacked into bin/ rather
# than installed: installing the package would also start a Prometheus server
# on :9090 wherever systemd runs, the embedding server's admin port. A promtool
# already on PATH is used as it is.
$(PROMTOOL):
	@mkdir -p $(BIN)
	@if command -v promtool >/dev/null 2>&1; then ln -sf "$$(command -v promtool)" $@; exit 0; fi; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; cd "$$tmp"; \
	if ! timeout 300 apt-get download prometheus >/dev/null 2>&1; then \
		if [ "$$(id -u)" != 0 ]; then echo "promtool: not on PATH and Debian's prometheus package cannot be fetched; run 'apt-get update' as root, or put promtool on PATH"; exit 1; fi; \
		timeout 300 apt-get update -qq && timeout 300 apt-get download prometheus; \
	fi; \
	dpkg-deb -x prometheus_*.deb pkg && install -m 0755 pkg/usr/bin/promtool $@
	$@ --version | head -1

.PHONY: argocd-statuses
argocd-statuses: ## Record, on envtest, the RAGService statuses the Argo CD health check is tested on (config/argocd/.../testdata).
	K8S_BINS_DIR=$(K8S_BINS) hack/k8s-bins.sh etcd kube-apiserver
	go test -count=1 -run '^TestArgoCDHealthStatuses$$' ./controllers/ -args -update

.PHONY: prometheus-rules
prometheus-rules: $(HELM) ## Render the chart's alert rules with default values into config/prometheus/ragops-alerts.rules.yaml.
	HELM=$(HELM) go test -count=1 -run '^TestAlertRulesFileIsTheChartsRules$$' ./test/platform/ -args -update
