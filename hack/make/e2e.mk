##@ Demo and end-to-end

# make demo: the README's first command. Builds, brings the local cluster up,
# runs the operator and ships a good and a bad change under load (hack/demo.sh).
.PHONY: demo
demo: ## Local cluster + operator + a promoted and a rolled-back canary under load (leaves it running).
	hack/demo.sh

.PHONY: demo-down
demo-down: ## Stop the demo's operator and the local cluster (CLEAN=1 also wipes the state).
	hack/demo.sh down

# The end-to-end suite on a throw-away cluster of its own (own ports, state dir and
# pod network), torn down on exit. Needs root (the pod network namespace).
.PHONY: test-e2e-run
test-e2e-run: k8s-bins nodeagent ## End-to-end suite: throw-away cluster, operator, go test ./test/e2e.
	K8S_BINS=$(K8S_BINS) test/e2e/run.sh
