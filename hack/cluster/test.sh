#!/usr/bin/env bash
# End-to-end check of the local cluster on a throw-away instance (own state dir,
# ports and pod range, so a cluster you keep running is not touched):
# cold and warm cluster-up, a Deployment of the embedserver image (served by a
# small stand-in server) reaching 2/2 ready, its EndpointSlice holding the pods'
# local IPs, traffic to each pod, a killed process restarted and counted, a
# deleted pod replaced, an unknown image refused with a clear status, pods on kwok
# nodes, and nothing left running after cluster-down. Stops everything on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/ragops-cluster-test.XXXXXX)
export ROOT LOCAL_DIR=$work/.local
export ETCD_PORT=63379 ETCD_PEER_PORT=63380 APISERVER_PORT=63443 KCM_PORT=63257 SCHEDULER_PORT=63259 KWOK_PORT=63247
export NET_PREFIX=198.19 POD_NETNS=ragops-test VETH_HOST=ragopst0 VETH_NS=ragopst1 KWOK_NODES=1
export EMBEDSERVER_BINARY=$work/bin/embedserver
source "$ROOT/hack/cluster/config.sh"
export KUBECONFIG=$KUBECONFIG_OUT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "PASS: $*"; }
cleanup() {
	local rc=$?
	if ((rc != 0)); then
		echo "--- test failed; last log lines:" >&2
		tail -n 15 "$LOGS"/nodeagent.log "$LOGS"/kube-controller-manager.log 2>/dev/null >&2 || true
		kubectl get pods -A -o wide 2>/dev/null >&2 || true
	fi
	CLEAN=1 "$ROOT/hack/cluster/down.sh" >/dev/null 2>&1 || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/bin"
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$EMBEDSERVER_BINARY" ./hack/nodeagent/testserver)

t=$SECONDS; "$ROOT/hack/cluster/up.sh"; cold=$((SECONDS - t))
t=$SECONDS; out=$("$ROOT/hack/cluster/up.sh"); again=$((SECONDS - t))
grep -q "kube-apiserver already running" <<<"$out" || fail "second cluster-up was not a no-op: $out"
pass "cluster-up is idempotent"
"$ROOT/hack/cluster/down.sh" >/dev/null
t=$SECONDS; "$ROOT/hack/cluster/up.sh" >/dev/null; warm=$((SECONDS - t))
echo "TIMING: cluster-up cold ${cold}s, already-up ${again}s, warm restart ${warm}s"

kubectl create namespace e2e >/dev/null
kubectl -n e2e create secret generic upstream --from-literal=api-key=s3cr3t-value >/dev/null
kubectl -n e2e apply -f - >/dev/null <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: embed}
spec:
  replicas: 2
  selector: {matchLabels: {app: embed}}
  template:
    metadata: {labels: {app: embed}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: embedserver
        image: ragops/embedserver:test
        args: ["--addr=:8080", "--admin-addr", ":9090"]
        ports: [{name: http, containerPort: 8080}, {name: admin, containerPort: 9090}]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: EMBEDSERVER_API_KEY, valueFrom: {secretKeyRef: {name: upstream, key: api-key}}}
        readinessProbe: {httpGet: {path: /readyz, port: admin}, periodSeconds: 1}
        livenessProbe: {httpGet: {path: /healthz, port: 9090}, periodSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: embed}
spec:
  selector: {app: embed}
  ports: [{name: http, port: 80, targetPort: http}]
YAML
kubectl -n e2e rollout status deploy/embed --timeout=90s >/dev/null || fail "deployment did not become ready"
ready=$(kubectl -n e2e get deploy embed -o jsonpath='{.status.readyReplicas}')
[[ $ready == 2 ]] || fail "readyReplicas=$ready, want 2"
pass "Deployment of ragops/embedserver:test is 2/2 ready"

pod_ips() { kubectl -n e2e get pods -l app=embed --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | sort; }
slice_ips() { kubectl -n e2e get endpointslices -l kubernetes.io/service-name=embed -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]}{"\n"}{end}' | sort; }
ips=$(pod_ips)
[[ $(wc -l <<<"$ips") == 2 ]] || fail "want 2 pod IPs, got: $ips"
for ip in $ips; do [[ $ip == 198.19.* ]] || fail "pod IP $ip is not from $POD_CIDR"; done
deadline=$((SECONDS + 30))
until [[ "$(slice_ips)" == "$ips" ]]; do
	((SECONDS < deadline)) || fail "EndpointSlice ready addresses [$(slice_ips | xargs)] != pod IPs [$(xargs <<<"$ips")]"
	sleep 0.5
done
pass "EndpointSlice of Service embed holds the pod IPs: $(xargs <<<"$ips")"

for ip in $ips; do
	name=$(kubectl -n e2e get pods -l app=embed -o jsonpath="{.items[?(@.status.podIP=='$ip')].metadata.name}")
	body=$(curl -sf "http://$ip:8080/v1/models") || fail "GET http://$ip:8080 failed"
	[[ $body == "testserver pod=$name addr=$ip:8080 secret=12" ]] || fail "pod $name answered: $body"
done
pass "each pod answers on its own IP with its name, bound address and the Secret's value"

# A process that dies is restarted, counted, and ready again.
victim=$(kubectl -n e2e get pods -l app=embed -o jsonpath='{.items[0].metadata.name}')
vip=$(kubectl -n e2e get pod "$victim" -o jsonpath='{.status.podIP}')
pid=$(cat "$CLUSTER_DIR"/nodeagent/pods/e2e_"$victim"_*/embedserver.pid)
kill -KILL "$pid"
deadline=$((SECONDS + 30))
until [[ $(kubectl -n e2e get pod "$victim" -o jsonpath='{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].ready}') == 1/true ]]; do
	((SECONDS < deadline)) || fail "killed container not restarted: $(kubectl -n e2e get pod "$victim" -o jsonpath='{.status.containerStatuses[0]}')"
	sleep 0.5
done
reason=$(kubectl -n e2e get pod "$victim" -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}')
[[ $reason == 137 ]] || fail "lastState exit code $reason, want 137"
curl -sf "http://$vip:8080/" >/dev/null || fail "restarted pod does not answer"
pass "a killed process is restarted (restartCount 1, lastState exit 137) and serves again"

# Deleting a pod: SIGTERM, grace, object gone, replaced by a new ready pod.
kubectl -n e2e delete pod "$victim" --wait=true --timeout=30s >/dev/null || fail "pod $victim not deleted"
curl -s -m 1 "http://$vip:8080/" >/dev/null && fail "deleted pod's process still answers on $vip"
grep -q "testserver draining" "$CLUSTER_DIR"/nodeagent/pods/e2e_"$victim"_*/embedserver.log || fail "deleted pod did not get SIGTERM"
kubectl -n e2e rollout status deploy/embed --timeout=60s >/dev/null || fail "deployment not ready after pod deletion"
names=$(kubectl -n e2e get pods -l app=embed -o jsonpath='{.items[*].metadata.name}')
[[ $(wc -w <<<"$names") == 2 && $names != *"$victim"* ]] || fail "pods after deletion: $names"
pass "a deleted pod got SIGTERM, disappeared and was replaced ($names)"

# An image the agent cannot run gets a clear status, not a silent Pending.
kubectl -n e2e run web --image=nginx:1.27 --restart=Never >/dev/null
deadline=$((SECONDS + 30))
until [[ $(kubectl -n e2e get pod web -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}') == ErrImageNeverPull ]]; do
	((SECONDS < deadline)) || fail "unknown image pod status: $(kubectl -n e2e get pod web -o jsonpath='{.status}')"
	sleep 0.5
done
msg=$(kubectl -n e2e get pod web -o jsonpath='{.status.containerStatuses[0].state.waiting.message}')
[[ $msg == *'runs only images named *embedserver'* ]] || fail "message: $msg"
kubectl -n e2e get pod web --no-headers | grep -q ErrImageNeverPull || fail "kubectl get pod does not show ErrImageNeverPull"
pass "unknown image: $msg"

# Pods that only need to exist go to kwok nodes (they tolerate the kwok taint).
kubectl -n e2e create deployment fake --image=registry.invalid/anything:1 --replicas=3 >/dev/null
kubectl -n e2e patch deployment fake --type=merge -p '{"spec":{"template":{"spec":{"nodeSelector":{"type":"kwok"},"tolerations":[{"key":"kwok.x-k8s.io/node","operator":"Exists","effect":"NoSchedule"}]}}}}' >/dev/null
kubectl -n e2e rollout status deploy/fake --timeout=60s >/dev/null || fail "kwok deployment not ready"
pass "3 pods ready on kwok nodes"

pids=$(cat "$PIDS"/*.pid "$CLUSTER_DIR"/nodeagent/pods/*/*.pid 2>/dev/null | xargs)
"$ROOT/hack/cluster/down.sh" >/dev/null
for p in $pids; do # a zombie (state Z) has exited and only waits for init to reap it
	kill -0 "$p" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$p/stat" 2>/dev/null) != Z ]] && fail "pid $p still running after cluster-down"
done
pass "cluster-down stopped every process ($(wc -w <<<"$pids") pids)"
echo "ALL PASS"
