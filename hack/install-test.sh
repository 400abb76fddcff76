#!/usr/bin/env bash
# Installs the operator on a throw-away local cluster the two ways users do —
# Helm (charts/rag-operator), then kustomize (config/default) — and proves each
# install works: the manager runs with the installed ServiceAccount's own token
# (so the installed least-privilege RBAC is what it gets), a RAGService becomes
# Ready, `kubectl rag status` exits 0, a change is promoted through a canary, and
# the secure metrics endpoint refuses an anonymous scrape and the manager's own
# token, and serves a ServiceAccount bound to the installed metrics-reader role.
# The manager runs as a local process: the local node agent runs only
# embedding-server pods, so the installed manager Deployment is scaled to 0.
# Everything stops on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/ragops-install-test.XXXXXX)
export ROOT LOCAL_DIR=$work/.local
export ETCD_PORT=64379 ETCD_PEER_PORT=64380 APISERVER_PORT=64443 KCM_PORT=64257 SCHEDULER_PORT=64259 KWOK_PORT=64247
export NET_PREFIX=198.19 POD_NETNS=ragops-install VETH_HOST=ragopsi0 VETH_NS=ragopsi1 KWOK_NODES=0
export EMBEDSERVER_BINARY=$work/bin/embedserver
source "$ROOT/hack/cluster/config.sh"
export KUBECONFIG=$KUBECONFIG_OUT
HELM=${HELM:-$ROOT/bin/helm-v3.22.0-k8s1.37}
NS=rag-operator-system
METRICS_ADDR=127.0.0.1:64080
mgr_pid=

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }
stop_manager() {
	if [[ -n $mgr_pid ]]; then
		kill "$mgr_pid" 2>/dev/null || true
		wait "$mgr_pid" 2>/dev/null || true
		mgr_pid=
	fi
}
cleanup() {
	local rc=$?
	stop_manager
	if ((rc != 0)); then
		echo "--- install test failed; manager log:" >&2
		tail -n 30 "$work"/manager-*.log 2>/dev/null >&2 || true
		kubectl get ragsvc,deploy,pods -A 2>/dev/null >&2 || true
	fi
	CLEAN=1 "$ROOT/hack/cluster/down.sh" >/dev/null 2>&1 || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/bin"
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$work/bin/" ./cmd/manager ./cmd/embedserver ./cmd/kubectl-rag)
"$ROOT/hack/cluster/up.sh" >/dev/null

# run_manager SA: the manager with nothing but the ServiceAccount's token.
run_manager() {
	local sa=$1 cfg=$work/$1.kubeconfig token
	token=$(kubectl -n "$NS" create token "$sa" --duration=1h)
	cp "$KUBECONFIG_OUT" "$cfg"
	kubectl --kubeconfig "$cfg" config set-credentials "$sa" --token="$token" >/dev/null
	kubectl --kubeconfig "$cfg" config set-context --current --user="$sa" >/dev/null
	"$work/bin/manager" --kubeconfig "$cfg" --leader-elect --leader-election-namespace "$NS" \
		--metrics-bind-address="$METRICS_ADDR" --metrics-secure=true --health-probe-bind-address=0 \
		--embedserver-image=ragops/embedserver:install-test >"$work/manager-$sa.log" 2>&1 &
	mgr_pid=$!
}

# check_metrics HOW MANAGER_SA READER_SA: HTTPS only for a token allowed by the
# installed metrics-reader role; the manager reviews tokens with its installed RBAC.
check_metrics() {
	local how=$1 url=https://$METRICS_ADDR/metrics code i
	for i in $(seq 1 100); do
		curl -sk -o /dev/null "$url" && break
		((i < 100)) || fail "$how: the metrics endpoint $url is not serving"
		sleep 0.2
	done
	code=$(curl -sk -o /dev/null -w '%{http_code}' "$url")
	[[ $code == 401 ]] || fail "$how: an anonymous metrics scrape got $code, want 401"
	code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(kubectl -n "$NS" create token "$2")" "$url")
	[[ $code == 403 ]] || fail "$how: the manager's own token (no metrics-reader role) got $code, want 403"
	curl -sk -H "Authorization: Bearer $(kubectl -n "$NS" create token "$3")" "$url" >"$work/metrics-$how.txt" ||
		fail "$how: the metrics-reader token was refused: $(head -c 200 "$work/metrics-$how.txt")"
	grep -q '^controller_runtime_reconcile_total{controller="ragservice"' "$work/metrics-$how.txt" ||
		fail "$how: the scrape has no reconcile metrics: $(head -c 200 "$work/metrics-$how.txt")"
	pass "$how: metrics over HTTPS: anonymous 401, the manager's token 403, metrics-reader 200"
}

# check_rollout HOW: a service becomes Ready, then a change is promoted.
check_rollout() {
	local how=$1 app=app-$1 before after
	kubectl create namespace "$app" >/dev/null
	kubectl apply -n "$app" -f - >/dev/null <<YAML
apiVersion: rag.ragops.io/v1alpha1
kind: RAGService
metadata: {name: docs}
spec:
  replicas: 2
  embedding: {provider: builtin, model: hash-64}
  rollout:
    steps: [{setWeight: 50}, {pause: {duration: 2s}}]
    analysis: {interval: 2s, minRequests: 0, onNoData: Continue}
YAML
	kubectl -n "$app" wait --for=condition=Ready ragsvc/docs --timeout=120s >/dev/null || fail "$how: RAGService not Ready"
	"$work/bin/kubectl-rag" -n "$app" status docs >/dev/null || fail "$how: kubectl rag status did not exit 0 on a Ready service"
	before=$(kubectl -n "$app" get ragsvc docs -o jsonpath='{.status.stableRevision}')
	kubectl -n "$app" patch ragsvc docs --type merge -p '{"spec":{"concurrency":{"maxInFlight":16}}}' >/dev/null
	sleep 1
	"$work/bin/kubectl-rag" -n "$app" status docs --watch --timeout 120s >"$work/watch-$how.txt" || fail "$how: rollout did not end Healthy: $(tail -5 "$work/watch-$how.txt")"
	after=$(kubectl -n "$app" get ragsvc docs -o jsonpath='{.status.stableRevision}')
	[[ $after != "$before" ]] || fail "$how: stable revision did not change ($before)"
	# An RBAC denial reads 'User "system:serviceaccount:..." cannot <verb> resource'.
	if grep -q 'cannot [a-z]* resource' "$work"/manager-*.log; then
		fail "$how: the installed RBAC refused the manager: $(grep -o -m3 'User [^ ]* cannot [a-z]* resource [^ ]*' "$work"/manager-*.log)"
	fi
	pass "$how: installed; the manager ran as its ServiceAccount; Ready, then promoted $before -> $after"
	kubectl delete namespace "$app" --wait=false >/dev/null
}

# Helm.
"$HELM" install rag-operator "$ROOT/charts/rag-operator" -n "$NS" --create-namespace --set replicaCount=0 \
	--set 'metrics.readers[0].name=scraper' --set "metrics.readers[0].namespace=$NS" --wait --timeout 60s >/dev/null
kubectl -n "$NS" create serviceaccount scraper >/dev/null
run_manager rag-operator
check_rollout helm
check_metrics helm rag-operator scraper
stop_manager
"$HELM" uninstall rag-operator -n "$NS" >/dev/null
kubectl delete namespace "$NS" --timeout=60s >/dev/null

# kustomize (what `make deploy` applies), with the in-cluster manager scaled to 0.
kubectl apply --server-side --force-conflicts -k "$ROOT/config/default" >/dev/null
kubectl -n "$NS" scale deployment rag-operator-controller-manager --replicas=0 >/dev/null
kubectl -n "$NS" create serviceaccount scraper >/dev/null
kubectl create clusterrolebinding install-test-scraper --clusterrole=rag-operator-metrics-reader \
	--serviceaccount="$NS:scraper" >/dev/null
run_manager rag-operator-controller-manager
check_rollout kustomize
check_metrics kustomize rag-operator-controller-manager scraper
echo "ALL PASS"
