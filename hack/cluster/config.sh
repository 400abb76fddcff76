# Settings of the local control plane; sourced by up.sh, down.sh and test.sh.
# Every value can be overridden from the environment. Ports are fixed (not
# random, unlike envtest) so the kubeconfig stays valid across restarts; they sit
# in a range unlikely to collide with other services on a laptop.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
K8S_BINS=${K8S_BINS:-$ROOT/bin/k8s}
LOCAL_DIR=${LOCAL_DIR:-$ROOT/.local}
CLUSTER_DIR=${CLUSTER_DIR:-$LOCAL_DIR/cluster}
KUBECONFIG_OUT=${KUBECONFIG_OUT:-$LOCAL_DIR/kubeconfig}

ETCD_PORT=${ETCD_PORT:-32379}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-32380}
APISERVER_PORT=${APISERVER_PORT:-36443}
KCM_PORT=${KCM_PORT:-30257}
SCHEDULER_PORT=${SCHEDULER_PORT:-30259}
KWOK_PORT=${KWOK_PORT:-30247}

SERVICE_CIDR=${SERVICE_CIDR:-10.96.0.0/16}
# Pod IPs of the node agent's pods. Not 127.0.0.0/8: the API server refuses
# loopback addresses in EndpointSlices, so Services would have no endpoints.
# 198.18.0.0/15 is reserved for benchmarking (RFC 2544), never routed on the
# internet; up.sh makes this /16 local on lo (one route, root once).
POD_CIDR=${POD_CIDR:-198.18.0.0/16}
KWOK_POD_CIDR=${KWOK_POD_CIDR:-10.244.0.0/16}

NODE_NAME=${NODE_NAME:-local-1}
KWOK_NODES=${KWOK_NODES:-2}
EMBEDSERVER_BINARY=${EMBEDSERVER_BINARY:-$ROOT/bin/embedserver}
NODEAGENT_BINARY=${NODEAGENT_BINARY:-$ROOT/bin/nodeagent}

# The components, in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler nodeagent kwok)

PKI=$CLUSTER_DIR/pki
PIDS=$CLUSTER_DIR/pids
LOGS=$CLUSTER_DIR/logs
