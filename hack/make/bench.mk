##@ Scale

# The operator at scale: not part of `make test` (about an hour for
# the default N). Run it under flock /tmp/ragops-cluster.lock; see docs/scale.md.
.PHONY: bench-scale
bench-scale: k8s-bins nodeagent ## Operator at scale on kwok nodes vs a kubectl baseline (BENCH_N="100 500 1000"); writes .local/bench-scale-results.
	K8S_BINS=$(K8S_BINS) hack/bench-scale.sh
