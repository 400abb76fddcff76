# Settings of the local control plane; sourced by up.sh, down.sh and test.sh.
# Every value can be overridden from the environment. Ports are fixed (not
# random, unlike envtest) so the kubeconfig stays valid across restarts. They sit
# above Linux's ephemeral range (32768-60999): a port in it can be held by any
# outgoing connection at the moment a component starts, and the component then
# cannot listen. The throw-away clusters of the tests use 62xxx (e2e), 63xxx
# (cluster-test) and 64xxx (install-test).
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
K8S_BINS=${K8S_BINS:-$ROOT/bin/k8s}
LOCAL_DIR=${LOCAL_DIR:-$ROOT/.local}
CLUSTER_DIR=${CLUSTER_DIR:-$LOCAL_DIR/cluster}
KUBECONFIG_OUT=${KUBECONFIG_OUT:-$LOCAL_DIR/kubeconfig}

ETCD_PORT=${ETCD_PORT:-61379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-61380}
APISERVER_PORT=${APISERVER_PORT:-61443}
KCM_PORT=${KCM_PORT:-61257}
SCHEDULER_PORT=${SCHEDULER_PORT:-61259}
KWOK_PORT=${KWOK_PORT:-61247}

SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/16}
# The node agent's pods run in a network namespace of the project's own
# (POD_NETNS), joined to the host by a veth pair: pod IPs are addresses of that
# test host, reached only through the pair, never through a real network. Not
# 127.0.0.0/8: the API server refuses loopback addresses in EndpointSlices, so
# Services would have no endpoints. NET_PREFIX is a /16 of 198.18.0.0/15, the
# range RFC 2544 reserves for benchmarking:
#   NET_PREFIX.0.0/17     pod IPs, local inside the namespace
#   NET_PREFIX.128.0/18   kwok pods' IPs (they only exist; nothing answers)
#   NET_PREFIX.255.252/30 the veth pair (host .253, namespace .254)
# The host routes the whole /16 into the namespace, so no address of it ever
# leaves this machine.
NET_PREFIX=${NET_PREFIX:-198.18}
POD_NETNS=${POD_NETNS:-ragops-pods}
VETH_HOST=${VETH_HOST:-ragops0}
VETH_NS=${VETH_NS:-ragops1}
POD_CIDR=$NET_PREFIX.0.0/17
KWOK_POD_CIDR=$NET_PREFIX.128.0/18
LINK_HOST_IP=$NET_PREFIX.255.253
LINK_NS_IP=$NET_PREFIX.255.254

# More kube-apiserver flags, split on spaces (make bench-scale turns on an audit log).
APISERVER_EXTRA_ARGS=${APISERVER_EXTRA_ARGS:-}
# And kube-controller-manager flags (make bench-scale's BENCH_KCM_ARGS).
KCM_EXTRA_ARGS=${KCM_EXTRA_ARGS:-}

NODE_NAME=${NODE_NAME:-local-1}
KWOK_NODES=${KWOK_NODES:-2}
EMBEDSERVER_BINARY=${EMBEDSERVER_BINARY:-$ROOT/bin/embedserver}
NODEAGENT_BINARY=${NODEAGENT_BINARY:-$ROOT/bin/nodeagent}

# The components, in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler nodeagent kwok)

PKI=$CLUSTER_DIR/pki
PIDS=$CLUSTER_DIR/pids
LOGS=$CLUSTER_DIR/logs
