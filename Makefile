# ragops Makefile. Every tool is pinned and built from Go modules into ./bin:
# nothing is downloaded but modules, so it works where only the module proxy is reachable.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

ROOT := $(CURDIR)
BIN := $(ROOT)/bin
K8S_BINS := $(BIN)/k8s
export PATH := $(BIN):$(PATH)

CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
CRD_REF_DOCS_VERSION ?= v0.3.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# helm built as its own release builds are: its default Kubernetes version for
# `helm template` and lint is that of its client-go (1.37), not 1.20.
HELM_K8S_MINOR ?= 37
HELM := $(BIN)/helm-$(HELM_VERSION)-k8s1.$(HELM_K8S_MINOR)
CRD_REF_DOCS := $(BIN)/crd-ref-docs-$(CRD_REF_DOCS_VERSION)

# envtest and the local cluster run the binaries built by `make k8s-bins`, unless
# the user points KUBEBUILDER_ASSETS at their own.
KUBEBUILDER_ASSETS ?= $(K8S_BINS)
export KUBEBUILDER_ASSETS

VERSION ?= 0.1.0
EMBEDSERVER_IMAGE ?= ragops/embedserver:$(VERSION)
LDFLAGS := -X github.com/ragops/rag-operator/internal/version.Version=$(VERSION)

.PHONY: all
all: build

# Each area of the project keeps its own targets in hack/make/*.mk.
include $(wildcard hack/make/*.mk)

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-22s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC under config/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:maxDescLen=400 paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: reference-docs
reference-docs: $(CRD_REF_DOCS) ## Generate the API reference docs/reference.md from api/.
	$(CRD_REF_DOCS) --log-level=ERROR --source-path=./api --config=hack/crd-ref-docs/config.yaml \
		--renderer=markdown --output-path=docs/reference.md

# What controller-gen, helm-sync and reference-docs write.
GENERATED := config/crd/bases config/rbac/role.yaml api charts/rag-operator/crds charts/rag-operator/files docs/reference.md

.PHONY: verify-generated
verify-generated: manifests generate helm-sync reference-docs ## Fail when generated files (CRD, RBAC, deepcopy, chart copies, API reference) are stale.
	@if ! git diff --quiet -- $(GENERATED); then \
		echo "generated files are stale: run 'make manifests generate helm-sync reference-docs' and commit"; git --no-pager diff --stat -- $(GENERATED); exit 1; fi
	@if [ -n "$$(git ls-files --others --exclude-standard -- $(GENERATED))" ]; then \
		echo "generated files are not committed:"; git ls-files --others --exclude-standard -- $(GENERATED); exit 1; fi

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint.
	$(GOLANGCI_LINT) run ./...

##@ Test

# Packages that need no API server, no helm and no npm.
UNIT_PKGS = $(shell go list ./... | grep -v -e /controllers -e /test/ -e /internal/kubectlrag -e /cmd/manager)
# Packages that run against envtest's real kube-apiserver and etcd.
INTEGRATION_PKGS = ./controllers/... ./internal/kubectlrag/... ./cmd/manager/...

.PHONY: test
test: verify-generated mod-check fmt-check vet lint test-unit test-embedserver test-integration test-chart test-platform test-release test-e2e ## Everything: generated files, tidy go.mod, gofmt, vet, golangci-lint, unit, server extras, envtest, chart, platform tools, release round trip, end-to-end.

.PHONY: mod-check
mod-check: ## Fail when go.mod or go.sum (root or hack/k8s) is not what `go mod tidy` writes.
	@go mod tidy -diff || { echo "go.mod is not tidy: run 'go mod tidy' and commit"; exit 1; }
	@cd hack/k8s && go mod tidy -diff || { echo "hack/k8s/go.mod is not tidy: run 'go mod tidy' there and commit"; exit 1; }

.PHONY: fmt-check
fmt-check: ## Fail when gofmt would change a file.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: test-unit
test-unit: ## Unit tests with -race (no API server).
	go test -race -count=1 $(UNIT_PKGS)

.PHONY: test-integration
test-integration: k8s-bins ## envtest integration tests against a real kube-apiserver and etcd.
	go test -race -count=1 -timeout 20m $(INTEGRATION_PKGS)

.PHONY: test-e2e
test-e2e: cluster-test test-install test-e2e-run ## End-to-end on real local clusters (one after another): the cluster itself, both install paths, the operator suite.

.PHONY: test-install
test-install: k8s-bins nodeagent $(HELM) ## Install with Helm, then kustomize, on a throw-away cluster; run the manager as the installed ServiceAccount.
	HELM=$(HELM) hack/install-test.sh

.PHONY: bench
bench: ## Benchmarks; prints numbers.
	go test -run '^$$' -bench . -benchmem -count=1 ./internal/...

##@ Build

.PHONY: build
build: ## Build the binaries into bin/.
	CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

.PHONY: run
run: manifests ## Run the manager against the cluster in $$KUBECONFIG (plain HTTP metrics on :8080).
	go run ./cmd/manager --embedserver-image=$(EMBEDSERVER_IMAGE) --metrics-secure=false --metrics-bind-address=:8080

.PHONY: install
install: manifests ## Install the CRD into the cluster in $$KUBECONFIG.
	kubectl apply --server-side -f config/crd/bases

.PHONY: k8s-bins
k8s-bins: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok into bin/k8s (cached).
	K8S_BINS_DIR=$(K8S_BINS) hack/k8s-bins.sh

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(BIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(BIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(BIN)/golangci-lint $@

HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$(HELM_K8S_MINOR) \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$(HELM_K8S_MINOR)

$(HELM):
	GOBIN=$(BIN) go install -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/helm $@

$(CRD_REF_DOCS):
	GOBIN=$(BIN) go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)
	mv $(BIN)/crd-ref-docs $@
