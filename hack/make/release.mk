# Install and release: Helm chart, kustomize deploy, images, the kubectl plugin.
# Included by the top Makefile, which defines BIN, HELM, VERSION, LDFLAGS, KUBEBUILDER_ASSETS.

CHART_DIR := charts/rag-operator
DIST := $(ROOT)/dist
KUBECTL ?= kubectl
IMAGE_REPO ?= ragops
IMAGE_SOURCE ?= https://github.com/ragops/rag-operator

##@ Release

.PHONY: helm-sync
helm-sync: manifests ## Copy the generated CRD, the manager role and the Grafana dashboard into the Helm chart.
	cp config/crd/bases/rag.ragops.io_ragservices.yaml $(CHART_DIR)/crds/rag.ragops.io_ragservices.yaml
	cp config/rbac/role.yaml $(CHART_DIR)/files/manager-role.yaml
	mkdir -p $(CHART_DIR)/files/dashboards
	cp config/grafana/ragops-dashboard.json $(CHART_DIR)/files/dashboards/ragops-dashboard.json

.PHONY: helm-lint
helm-lint: $(HELM) ## helm lint the chart (default and strict).
	$(HELM) lint --strict $(CHART_DIR)

.PHONY: helm
helm: $(HELM) helm-lint ## Package the chart into dist/.
	mkdir -p $(DIST)
	$(HELM) package $(CHART_DIR) --version $(VERSION) --app-version $(VERSION) --destination $(DIST)

.PHONY: test-chart
test-chart: $(HELM) ## Chart and kustomize tests: lint, template, schema, CRD/RBAC sync, server-side dry-run on envtest.
	K8S_BINS_DIR=$(K8S_BINS) hack/k8s-bins.sh etcd kube-apiserver  # envtest needs only these two
	HELM=$(HELM) go test -count=1 -timeout 5m ./test/chart/...

.PHONY: test-images
test-images: ## Image builder tests (OCI tarball built, config inspected).
	go test -race -count=1 ./internal/ociimage/... ./hack/buildimage/...

.PHONY: images
images: ## Build the manager and embedserver OCI image tarballs into dist/ (no Docker engine needed).
	mkdir -p $(DIST)/bin
	for b in manager embedserver; do \
		CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/bin/$$b ./cmd/$$b; \
		go run ./hack/buildimage --binary $(DIST)/bin/$$b --name $$b \
			--tag $(IMAGE_REPO)/$$b:$(VERSION) --version $(VERSION) --source $(IMAGE_SOURCE) \
			--ca-certs /etc/ssl/certs/ca-certificates.crt \
			--out $(DIST)/$$b-$(VERSION).tar; \
	done

.PHONY: docker-build
docker-build: ## Build the images with Docker (for users with a Docker engine).
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE_REPO)/manager:$(VERSION) -f Dockerfile .
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE_REPO)/embedserver:$(VERSION) -f Dockerfile.embedserver .

.PHONY: deploy
deploy: manifests ## Install the operator with kustomize into the cluster in $$KUBECONFIG.
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the operator installed by deploy (RAGServices go with the CRD).
	$(KUBECTL) delete --ignore-not-found -k config/default

# The platforms of the kubectl-rag release, each a tarball listed in the krew
# manifest (plugins/rag.yaml).
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: release
release: helm images release-kubectl-rag ## The release into dist/: chart, images, kubectl-rag tarballs with sha256 and the krew manifest.

.PHONY: release-kubectl-rag
release-kubectl-rag: ## kubectl-rag tarballs for RELEASE_PLATFORMS, sha256 sums and the krew manifest (dist/release/rag.yaml).
	go run ./hack/release --version v$(VERSION) --platforms "$(RELEASE_PLATFORMS)" --template plugins/rag.yaml \
		--out $(DIST)/release --ldflags '$(LDFLAGS)'

.PHONY: kubectl-rag
kubectl-rag: ## Build the kubectl plugin into bin/kubectl-rag.
	CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-rag ./cmd/kubectl-rag
