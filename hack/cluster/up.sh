#!/usr/bin/env bash
# Starts the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler), the local node agent and kwok on loopback, and writes the
# admin kubeconfig to .local/kubeconfig. Idempotent: a component already running
# is left alone. Everything it starts is its own session (it outlives `make`)
# with a pid file and a log under .local/cluster; hack/cluster/down.sh stops it.
set -euo pipefail
source "$(dirname "$0")/config.sh"

say() { echo "cluster-up: $*"; }
die() { echo "cluster-up: $*" >&2; exit 1; }

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
	[[ -x $K8S_BINS/$b ]] || die "$K8S_BINS/$b is missing: run 'make k8s-bins'"
done
[[ -x $NODEAGENT_BINARY ]] || die "$NODEAGENT_BINARY is missing: run 'make nodeagent'"
command -v kubectl >/dev/null || die "kubectl not found"
mkdir -p "$PIDS" "$LOGS" "$CLUSTER_DIR/etcd" "$CLUSTER_DIR/kubeconfigs"

running() { # name: is its recorded process alive and still that program?
	local f=$PIDS/$1.pid pid
	[[ -f $f ]] || return 1
	pid=$(cat "$f")
	kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1"
}

start() { # name, command...
	local name=$1; shift
	if running "$name"; then
		say "$name already running (pid $(cat "$PIDS/$name.pid"))"
		return
	fi
	echo "=== $(date -u +%FT%TZ) starting: $*" >>"$LOGS/$name.log"
	setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
	echo $! >"$PIDS/$name.pid"
	say "started $name (pid $!, log $LOGS/$name.log)"
}

wait_for() { # what, seconds, command...
	local what=$1 secs=$2; shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		# A component that exited will not become ready: say so now, with its
		# log, which a test's cleanup may delete right after.
		if [[ -f $PIDS/$what.pid ]] && ! running "$what"; then
			tail -n 20 "$LOGS/$what.log" >&2 2>/dev/null || true
			die "$what exited before it was ready; log above and in $LOGS/$what.log"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 20 "$LOGS/$what.log" >&2 2>/dev/null || true
			die "$what not ready after ${secs}s; see $LOGS"
		fi
		sleep 0.3
	done
}

# Pod IPs must be addresses the API accepts in EndpointSlices (not
# 127.0.0.0/8). They live in the project's own network namespace, reached from
# the host through a veth pair (see config.sh). Needs root: the agent joins the
# namespace to start each pod.
pod_netns() {
	[[ $(id -u) == 0 ]] || die "the local cluster's pod network needs root (a network namespace and a veth pair): run as root"
	if [[ -e /run/netns/$POD_NETNS ]] && ip link show "$VETH_HOST" >/dev/null 2>&1; then
		return
	fi
	ip netns del "$POD_NETNS" 2>/dev/null || true
	ip netns add "$POD_NETNS"
	ip link add "$VETH_HOST" type veth peer name "$VETH_NS" netns "$POD_NETNS"
	ip addr add "$LINK_HOST_IP/30" dev "$VETH_HOST"
	ip link set "$VETH_HOST" up
	ip -n "$POD_NETNS" link set lo up
	ip -n "$POD_NETNS" addr add "$LINK_NS_IP/30" dev "$VETH_NS"
	ip -n "$POD_NETNS" link set "$VETH_NS" up
	ip -n "$POD_NETNS" route add local "$POD_CIDR" dev lo
	ip route add "$NET_PREFIX.0.0/16" via "$LINK_NS_IP" dev "$VETH_HOST"
	say "pod network: namespace $POD_NETNS, pods $POD_CIDR via $VETH_HOST"
}

kubeconfig() { # file, user, token
	cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: ragops-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: ragops-local
  context: {cluster: ragops-local, user: $2}
current-context: ragops-local
KC
	chmod 600 "$1"
}

t0=$SECONDS
"$(dirname "$0")/certs.sh" >/dev/null
token() { awk -F, -v u="$1" '$2 == u {print $1}' "$PKI/tokens.csv"; }
KCS=$CLUSTER_DIR/kubeconfigs
kubeconfig "$KUBECONFIG_OUT" admin "$(token admin)"
kubeconfig "$KCS/kube-controller-manager" system:kube-controller-manager "$(token system:kube-controller-manager)"
kubeconfig "$KCS/kube-scheduler" system:kube-scheduler "$(token system:kube-scheduler)"
kubeconfig "$KCS/nodeagent" "system:node:$NODE_NAME" "$(token "system:node:$NODE_NAME")"
kubeconfig "$KCS/kwok" kwok "$(token kwok)"
export KUBECONFIG=$KUBECONFIG_OUT
pod_netns

start etcd "$K8S_BINS/etcd" \
	--name=ragops-local --data-dir="$CLUSTER_DIR/etcd" \
	--listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster="ragops-local=http://127.0.0.1:$ETCD_PEER_PORT" \
	--unsafe-no-fsync --quota-backend-bytes=4294967296
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$K8S_BINS/kube-apiserver" \
	--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
	--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
	--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
	--client-ca-file="$PKI/ca.crt" --token-auth-file="$PKI/tokens.csv" \
	--authorization-mode=RBAC \
	--service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
	--service-account-issuer=https://kubernetes.default.svc.cluster.local \
	--service-cluster-ip-range="$SERVICE_CIDR" \
	--endpoint-reconciler-type=none --allow-privileged=true ${APISERVER_EXTRA_ARGS:-}
wait_for kube-apiserver 90 curl -sf --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token admin)" \
	"https://127.0.0.1:$APISERVER_PORT/readyz"

start kube-controller-manager "$K8S_BINS/kube-controller-manager" \
	--kubeconfig="$KCS/kube-controller-manager" \
	--authentication-kubeconfig="$KCS/kube-controller-manager" --authorization-kubeconfig="$KCS/kube-controller-manager" \
	--bind-address=127.0.0.1 --secure-port="$KCM_PORT" --leader-elect=false \
	--controllers='*,-nodeipam,-nodelifecycle' --use-service-account-credentials=true \
	--service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
	--cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
	--service-cluster-ip-range="$SERVICE_CIDR" ${KCM_EXTRA_ARGS:-}
start kube-scheduler "$K8S_BINS/kube-scheduler" \
	--kubeconfig="$KCS/kube-scheduler" \
	--authentication-kubeconfig="$KCS/kube-scheduler" --authorization-kubeconfig="$KCS/kube-scheduler" \
	--bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --leader-elect=false

# The node agent is a node: give it kubelet's role.
kubectl apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "ragops-local:node:$NODE_NAME"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:node"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:node:$NODE_NAME"}]
YAML

start nodeagent "$NODEAGENT_BINARY" --kubeconfig="$KCS/nodeagent" --node-name="$NODE_NAME" \
	--embedserver-binary="$EMBEDSERVER_BINARY" --pod-cidr="$POD_CIDR" --pod-netns="$POD_NETNS" --state-dir="$CLUSTER_DIR/nodeagent"

# kwok nodes hold pods that only need to exist (scale tests). Their taint keeps
# every other pod off them: the agent's node is the only untainted one, so the
# operator's pods (which carry no custom tolerations) land there.
for i in $(seq 1 "$KWOK_NODES"); do
	kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: kwok-$i
  labels: {type: kwok, kubernetes.io/hostname: kwok-$i, kubernetes.io/os: linux}
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
spec:
  taints: [{key: kwok.x-k8s.io/node, value: fake, effect: NoSchedule}]
YAML
	# The API server adds the not-ready taint to a new node; the node lifecycle
	# controller that would remove it is off here.
	kubectl patch node "kwok-$i" --type=merge \
		-p '{"spec":{"taints":[{"key":"kwok.x-k8s.io/node","value":"fake","effect":"NoSchedule"}]}}' >/dev/null
done
start kwok "$K8S_BINS/kwok" --kubeconfig="$KCS/kwok" \
	--config="$ROOT/hack/cluster/kwok-stages.yaml" \
	--manage-nodes-with-label-selector=type=kwok --cidr="$KWOK_POD_CIDR" \
	--server-address="127.0.0.1:$KWOK_PORT"

wait_for "node $NODE_NAME" 60 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
wait_for "default service account" 60 kubectl get serviceaccount default -n default
if ((KWOK_NODES > 0)); then
	wait_for "kwok nodes" 60 kubectl wait --for=condition=Ready node -l type=kwok --timeout=2s
fi
say "ready in $((SECONDS - t0))s"
say "export KUBECONFIG=$KUBECONFIG_OUT"
