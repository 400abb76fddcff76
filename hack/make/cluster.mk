##@ Local cluster

# The local control plane: real etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler on loopback, the local node agent running embedserver pods as
# processes, and kwok nodes for scale tests. See docs/local-cluster.md.

NODEAGENT := $(BIN)/nodeagent

.PHONY: nodeagent
nodeagent: ## Build the local node agent into bin/nodeagent.
	CGO_ENABLED=0 go build -o $(NODEAGENT) ./hack/nodeagent

.PHONY: cluster-up
cluster-up: k8s-bins nodeagent ## Start the local cluster (idempotent); kubeconfig in .local/kubeconfig.
	@if [ -d cmd/embedserver ]; then CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o $(BIN)/embedserver ./cmd/embedserver \
		|| echo "cluster-up: WARNING: cmd/embedserver does not build; pods keep the last bin/embedserver (or report it missing)"; \
	else echo "cluster-up: cmd/embedserver not there yet; embedserver pods will report the missing binary"; fi
	K8S_BINS=$(K8S_BINS) hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and its pods' processes; CLEAN=1 also wipes its state.
	hack/cluster/down.sh

.PHONY: cluster-test
cluster-test: k8s-bins nodeagent ## Bring a throw-away cluster up, check pods really run and serve, bring it down.
	K8S_BINS=$(K8S_BINS) hack/cluster/test.sh
