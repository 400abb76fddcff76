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
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64

# Where make push puts the release, and so what make release pins in the chart
# and the install manifest: <REGISTRY>/manager and <REGISTRY>/embedserver.
REGISTRY ?=
RELEASE_REPO := $(if $(REGISTRY),$(REGISTRY),$(IMAGE_REPO))
# The images' platforms: one OCI image index per binary.
RELEASE_IMAGE_PLATFORMS := linux/amd64,linux/arm64
GO_LICENSES_VERSION ?= v1.6.0
GO_LICENSES := $(BIN)/go-licenses-$(GO_LICENSES_VERSION)

.PHONY: release
release: $(HELM) $(GO_LICENSES) ## The release into dist/ (VERSION=x.y.z, REGISTRY=where make push will put it): multi-arch images, chart and install.yaml pinned by digest, kubectl-rag archives, krew manifest, licences, checksums.
	rm -rf $(DIST) && mkdir -p $(DIST)
	$(GO_LICENSES) save ./cmd/... --save_path=$(DIST)/third_party_licenses --ignore github.com/ragops/rag-operator 2>/dev/null
	go run ./hack/dist images --version $(VERSION) --platforms $(RELEASE_IMAGE_PLATFORMS) --ldflags '$(LDFLAGS)' \
		--third-party-licenses $(DIST)/third_party_licenses --out $(DIST)/images
	go run ./hack/dist chart --version $(VERSION) --repo $(RELEASE_REPO) --images $(DIST)/images --helm $(HELM) --out $(DIST)
	go run ./hack/dist install --repo $(RELEASE_REPO) --images $(DIST)/images --out $(DIST)/install.yaml
	$(MAKE) release-kubectl-rag
	cp LICENSE $(DIST)/LICENSE
	go run ./hack/dist checksums --dir $(DIST)
	@cat $(DIST)/images/digests.txt

.PHONY: push
push: ## Push the release in dist/ (make release REGISTRY=... first) to REGISTRY: both image indexes and the chart as an OCI artifact (docker config and credential helpers for auth).
	@if [ -z "$(REGISTRY)" ]; then echo "push: set REGISTRY, e.g. make push REGISTRY=registry.example.com/ragops VERSION=$(VERSION)"; exit 1; fi
	go run ./hack/dist push --version $(VERSION) --registry $(REGISTRY) --dist $(DIST)

.PHONY: test-release
test-release: $(HELM) ## Release round trip: both images for linux/amd64 and linux/arm64, pushed to an in-process registry, pulled back and run; reproducible digests and chart.
	HELM=$(HELM) go test -count=1 -timeout 20m ./test/release/...

$(GO_LICENSES):
	GOBIN=$(BIN) go install github.com/google/go-licenses@$(GO_LICENSES_VERSION)
	mv $(BIN)/go-licenses $@

.PHONY: release-kubectl-rag
release-kubectl-rag: ## kubectl-rag tarballs for RELEASE_PLATFORMS, sha256 sums and the krew manifest (dist/release/rag.yaml).
	go run ./hack/release --version v$(VERSION) --platforms "$(RELEASE_PLATFORMS)" --template plugins/rag.yaml \
		--out $(DIST)/release --ldflags '$(LDFLAGS)'

.PHONY: kubectl-rag
kubectl-rag: ## Build the kubectl plugin into bin/kubectl-rag.
	CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-rag ./cmd/kubectl-rag
