#!/usr/bin/env bash
# make test-e2e-run: the end-to-end suite on a throw-away cluster of its own
# (ports 62xxx, state in .local/e2e, pod network 198.19.0.0/16 in the network
# namespace ragops-e2e), so a demo cluster on the default ports is not touched.
# The tests start and restart the operator themselves (one of them SIGKILLs it).
# A trap stops everything and wipes the state on exit, failure or Ctrl-C; the
# last run's logs are kept in .local/e2e-logs.
#
# Needs root (the pod network namespace), kubectl, ip and nsenter. It cannot run
# at the same time as `make cluster-test`, or `make test-install`, which use the same 198.19.0.0/16.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export ROOT LOCAL_DIR=$ROOT/.local/e2e
export ETCD_PORT=62379 ETCD_PEER_PORT=62380 APISERVER_PORT=62443 KCM_PORT=62257 SCHEDULER_PORT=62259 KWOK_PORT=62247
export NET_PREFIX=198.19 POD_NETNS=ragops-e2e VETH_HOST=ragopse0 VETH_NS=ragopse1 KWOK_NODES=1
export EMBEDSERVER_BINARY=$LOCAL_DIR/bin/embedserver
source "$ROOT/hack/cluster/config.sh"
LOGS_KEPT=$ROOT/.local/e2e-logs

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -f $LOCAL_DIR/manager.pid ]]; then # normally gone with the test binary
		pid=$(cat "$LOCAL_DIR/manager.pid")
		if { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q "$LOCAL_DIR/bin/manager"; then kill -KILL "$pid" 2>/dev/null || true; fi
	fi
	rm -rf "$LOGS_KEPT" && mkdir -p "$LOGS_KEPT"
	cp -r "$LOGS" "$LOCAL_DIR/manager.log" "$LOGS_KEPT/" 2>/dev/null || true
	CLEAN=1 "$ROOT/hack/cluster/down.sh" >/dev/null 2>&1 || true
	rm -rf "$LOCAL_DIR"
	echo "test-e2e: cluster down, state removed; logs of this run in $LOGS_KEPT"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "test-e2e: needs root (the local cluster's pod network namespace)" >&2; exit 1; }
if ip route show | grep -q "^$NET_PREFIX.0.0/16"; then
	echo "test-e2e: $NET_PREFIX.0.0/16 is routed already: is 'make cluster-test' or another e2e run going on?" >&2
	exit 1
fi
rm -rf "$LOCAL_DIR" && mkdir -p "$LOCAL_DIR/bin"
echo "test-e2e: building embedserver, manager, kubectl-rag"
for b in embedserver manager kubectl-rag; do
	CGO_ENABLED=0 go build -o "$LOCAL_DIR/bin/$b" "./cmd/$b"
done
t=$SECONDS
"$ROOT/hack/cluster/up.sh"
echo "test-e2e: cluster up in $((SECONDS - t))s"
kubectl --kubeconfig "$KUBECONFIG_OUT" apply --server-side -f config/crd/bases
# kubectl wait errors out (instead of waiting) while the new CRD has no status
# conditions at all yet: retry it until they exist.
for i in $(seq 1 30); do
	kubectl --kubeconfig "$KUBECONFIG_OUT" wait --for=condition=Established crd/ragservices.rag.ragops.io --timeout=30s 2>/dev/null && break
	((i < 30)) || { echo "test-e2e: the RAGService CRD was not Established within 30s" >&2; exit 1; }
	sleep 1
done

export PATH=$LOCAL_DIR/bin:$PATH
# E2E_HOST_IP: the host end of the pod network's veth pair, where the tests'
# fake upstreams listen so that pods reach them.
export E2E_KUBECONFIG=$KUBECONFIG_OUT E2E_MANAGER=$LOCAL_DIR/bin/manager E2E_STATE_DIR=$LOCAL_DIR E2E_HOST_IP=$LINK_HOST_IP
go test ./test/e2e/ -count=1 -timeout 20m -v ${E2E_RUN:+-run "$E2E_RUN"}
