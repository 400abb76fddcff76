#!/usr/bin/env bash
# Generates what the local control plane authenticates with, once: a CA, the API
# server's serving certificate (valid for 127.0.0.1 and the in-cluster names), a
# service-account signing key and one token per client (token auth file). Kept
# under .local/cluster/pki; delete it (make cluster-down CLEAN=1) to start over.
set -euo pipefail
source "$(dirname "$0")/config.sh"

mkdir -p "$PKI"
cd "$PKI"
umask 077

if [[ ! -f ca.crt ]]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ragops-local-ca" \
		-keyout ca.key -out ca.crt 2>/dev/null
fi
if [[ ! -f apiserver.crt ]]; then
	svc_ip=$(python3 -c "import ipaddress,sys; print(ipaddress.ip_network(sys.argv[1])[1])" "$SERVICE_CIDR" 2>/dev/null || echo 10.96.0.1)
	cat >apiserver.ext <<EXT
subjectAltName=IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
keyUsage=digitalSignature,keyEncipherment
EXT
	openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
	openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
		-extfile apiserver.ext -out apiserver.crt 2>/dev/null
	rm -f apiserver.csr
fi
if [[ ! -f sa.key ]]; then
	openssl genrsa -out sa.key 2048 2>/dev/null
	openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi
if [[ ! -f tokens.csv ]]; then
	tok() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
	# token,user,uid,"groups": the admin is a cluster admin; the controller manager
	# and scheduler get their built-in RBAC roles; the node agent is a node
	# (system:node role, bound by up.sh); kwok fakes nodes and pods cluster-wide.
	{
		echo "$(tok),admin,admin,\"system:masters\""
		echo "$(tok),system:kube-controller-manager,kcm,\"\""
		echo "$(tok),system:kube-scheduler,scheduler,\"\""
		echo "$(tok),system:node:$NODE_NAME,node-$NODE_NAME,\"system:nodes\""
		echo "$(tok),kwok,kwok,\"system:masters\""
	} >tokens.csv
fi
echo "certs: $PKI"
