#!/usr/bin/env bash
# make bench-scale: the operator at scale on throw-away local clusters (ports
# 65xxx, state in .local/bench-scale, pods on kwok nodes that only need to
# exist). For each N in BENCH_N (default "100 500 1000"):
#   1. a fresh cluster: the kubectl baseline (hack/benchscale baseline): the
#      operator's Deployment, Services and PDB of one service copied N times,
#      applied by kubectl and waited for; then one template change to all;
#   2. a fresh cluster: the operator (hack/benchscale operator): N RAGServices
#      created to Ready, a minute at idle, one template change shipped to all
#      (a one-step canary), and at the first N also BENCH_UNRELATED_PODS pods
#      of another app against the manager's RSS and live heap (heap profiles
#      before and after, each after a forced collection, kept with the results).
# API writes are counted from the kube-apiserver's audit log, by user. Results
# (JSON per side and N, report.md, the managers' logs and the audit logs, with
# the body of every status write of the manager) are kept in
# .local/bench-scale-results.
# Each phase waits at most BENCH_PHASE_TIMEOUT; no new N starts after
# BENCH_TIMEOUT_MIN minutes; BENCH_SIDES="operator" skips the baseline (while
# developing); BENCH_KCM_ARGS adds kube-controller-manager flags on both
# sides. Everything stops on exit. Needs root (the pod
# network namespace); run it under flock /tmp/ragops-cluster.lock.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BENCH_N=${BENCH_N:-"100 500 1000"}
BENCH_UNRELATED_PODS=${BENCH_UNRELATED_PODS:-5000}
BENCH_PHASE_TIMEOUT=${BENCH_PHASE_TIMEOUT:-30m}
BENCH_TIMEOUT_MIN=${BENCH_TIMEOUT_MIN:-180}
BENCH_IDLE=${BENCH_IDLE:-1m}
BENCH_MANAGER_ARGS=${BENCH_MANAGER_ARGS:-}
BENCH_KCM_ARGS=${BENCH_KCM_ARGS:-}
BENCH_SIDES=${BENCH_SIDES:-"baseline operator"}
RESULTS=${BENCH_RESULTS:-$ROOT/.local/bench-scale-results}

export ROOT LOCAL_DIR=$ROOT/.local/bench-scale
export ETCD_PORT=65379 ETCD_PEER_PORT=65380 APISERVER_PORT=65443 KCM_PORT=65257 SCHEDULER_PORT=65259 KWOK_PORT=65247
export NET_PREFIX=198.19 POD_NETNS=ragops-bench VETH_HOST=ragopsb0 VETH_NS=ragopsb1 KWOK_NODES=2
export EMBEDSERVER_BINARY=$LOCAL_DIR/bin/embedserver
# Only writes are logged: the manager's ServiceAccount's (its status writes
# with their bodies), the admin's (the benchmark's kubectl), and those of the
# controllers that roll Deployments (the policy below).
AUDIT_POLICY=$LOCAL_DIR/audit-policy.yaml
source "$ROOT/hack/cluster/config.sh"
AUDIT_LOG=$CLUSTER_DIR/audit.log
# The cluster's kube-controller-manager keeps its defaults (its controllers'
# clients at 20 requests a second), unless BENCH_KCM_ARGS says otherwise
# (for example --kube-api-qps=200 --kube-api-burst=300, to see past that floor).
export KCM_EXTRA_ARGS=$BENCH_KCM_ARGS
export APISERVER_EXTRA_ARGS="--audit-policy-file=$AUDIT_POLICY --audit-log-path=$AUDIT_LOG --audit-log-format=json --audit-log-maxsize=0 --audit-log-maxbackup=0"

say() { echo "bench-scale: $*"; }
down() { CLEAN=1 "$ROOT/hack/cluster/down.sh" >/dev/null 2>&1 || true; }
child=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $child ]]; then # benchscale stops its manager and keeps its result so far
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	down
	if ((rc != 0)) && [[ -d $LOCAL_DIR/state ]]; then
		mkdir -p "$RESULTS" && cp "$LOCAL_DIR"/state/*.log "$RESULTS/" 2>/dev/null || true
		say "failed; manager logs kept in $RESULTS"
	fi
	rm -rf "$LOCAL_DIR"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "bench-scale: needs root (the local cluster's pod network namespace)" >&2; exit 1; }
if ip route show | grep -q "^$NET_PREFIX.0.0/16"; then
	echo "bench-scale: $NET_PREFIX.0.0/16 is routed already: is another local cluster test running? Run under flock /tmp/ragops-cluster.lock" >&2
	exit 1
fi
rm -rf "$LOCAL_DIR" "$RESULTS" && mkdir -p "$LOCAL_DIR/bin" "$LOCAL_DIR/state" "$RESULTS"
say "building manager, embedserver, benchscale"
for b in manager embedserver; do CGO_ENABLED=0 go build -o "$LOCAL_DIR/bin/$b" "./cmd/$b"; done
go build -o "$LOCAL_DIR/bin/benchscale" ./hack/benchscale
cat >"$AUDIT_POLICY" <<YAML
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Request
  users: ["system:serviceaccount:rag-bench:manager"]
  verbs: [update, patch]
  resources: [{group: rag.ragops.io, resources: [ragservices/status]}]
- level: Metadata
  users: [admin, "system:serviceaccount:rag-bench:manager"]
  verbs: [create, update, patch, delete, deletecollection]
# The cluster's own controllers that roll Deployments (benchscale's
# clusterControllers): what they write per service is the cluster's floor.
- level: Metadata
  users: ["system:serviceaccount:kube-system:deployment-controller", "system:serviceaccount:kube-system:replicaset-controller", "system:serviceaccount:kube-system:generic-garbage-collector"]
  verbs: [create, update, patch, delete, deletecollection]
- level: None
YAML

cluster_up() {
	local t=$SECONDS
	"$ROOT/hack/cluster/up.sh" >"$LOCAL_DIR/state/cluster-up.log" 2>&1 || { cat "$LOCAL_DIR/state/cluster-up.log" >&2; return 1; }
	kubectl --kubeconfig "$KUBECONFIG_OUT" apply --server-side -f config/crd/bases >/dev/null
	# kubectl wait fails at once while the CRD has no conditions yet: ask again.
	local i
	for i in $(seq 1 30); do
		kubectl --kubeconfig "$KUBECONFIG_OUT" wait --for=condition=Established crd/ragservices.rag.ragops.io --timeout=10s >/dev/null 2>&1 && break
		((i < 30)) || { echo "bench-scale: the RAGService CRD is not Established" >&2; return 1; }
		sleep 1
	done
	say "cluster up in $((SECONDS - t))s"
}

side() { # side N [extra flags]
	local side=$1 n=$2; shift 2
	cluster_up
	# In the background, so that a signal's trap runs at once (and stops it).
	"$LOCAL_DIR/bin/benchscale" "$side" -n "$n" -out "$RESULTS/$side-$n.json" \
		-kubeconfig "$KUBECONFIG_OUT" -audit-log "$AUDIT_LOG" -manager "$LOCAL_DIR/bin/manager" \
		-manager-args "$BENCH_MANAGER_ARGS" -state-dir "$LOCAL_DIR/state" -phase-timeout "$BENCH_PHASE_TIMEOUT" \
		-idle "$BENCH_IDLE" "$@" &
	child=$!
	wait "$child" || { say "$side N=$n did not finish (see above); its result so far is kept"; failed=1; }
	child=
	mv "$LOCAL_DIR/state/manager.log" "$RESULTS/manager-$side-$n.log" 2>/dev/null || true
	gzip -c "$AUDIT_LOG" >"$RESULTS/audit-$side-$n.log.gz" 2>/dev/null || true
	down
}

first=1 failed=0
for n in $BENCH_N; do
	if ((SECONDS / 60 >= BENCH_TIMEOUT_MIN)); then
		say "BENCH_TIMEOUT_MIN=$BENCH_TIMEOUT_MIN reached: N=$n and beyond not run"
		break
	fi
	if [[ " $BENCH_SIDES " == *" baseline "* ]]; then
		say "N=$n: baseline"
		side baseline "$n"
	fi
	if [[ " $BENCH_SIDES " == *" operator "* ]]; then
		say "N=$n: operator"
		if ((first)) && ((BENCH_UNRELATED_PODS > 0)); then
			side operator "$n" -unrelated-pods "$BENCH_UNRELATED_PODS"
		else
			side operator "$n"
		fi
	fi
	first=0
done
{
	"$LOCAL_DIR/bin/benchscale" report "$RESULTS"/*.json
	[[ -z $BENCH_KCM_ARGS ]] || printf '\nkube-controller-manager run with %s (BENCH_KCM_ARGS), on both sides.\n' "$BENCH_KCM_ARGS"
} | tee "$RESULTS/report.md"
say "done in $((SECONDS / 60))m; results in $RESULTS"
exit "$failed"
