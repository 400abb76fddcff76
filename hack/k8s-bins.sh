#!/usr/bin/env bash
# Builds the Kubernetes binaries that envtest and the local control plane run
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) from Go
# modules into bin/k8s. Nothing is downloaded but modules: setup-envtest cannot
# reach its bucket here. A binary is rebuilt only when its pin changes: each has a
# stamp holding the hash of hack/k8s/go.{mod,sum}, the kwok version and the Go version.
#
#   hack/k8s-bins.sh [name ...]    # default: all
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${K8S_BINS_DIR:-$root/bin/k8s}
kwok_version=${KWOK_VERSION:-v0.8.0}
mkdir -p "$out"

# The control plane reports the version it was built from (GET /version), as a
# release build does: Helm checks a chart's kubeVersion against it, and
# v0.0.0-master satisfies no constraint. Stamping it only relinks.
k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$root/hack/k8s/go.mod")
k8s_minor=$(echo "$k8s_version" | cut -d. -f2)
version_ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor -X k8s.io/component-base/version.gitTreeState=clean"

pin=$( { cat "$root/hack/k8s/go.mod" "$root/hack/k8s/go.sum"; echo "kwok $kwok_version"; echo "ldflags $version_ldflags"; go env GOVERSION; } | sha256sum | cut -c1-16)

build() { # name, command...
	local name=$1; shift
	local stamp="$out/.$name.stamp"
	if [[ -x "$out/$name" && -f "$stamp" && "$(cat "$stamp")" == "$pin" ]]; then
		echo "k8s-bins: $name is current"
		return
	fi
	echo "k8s-bins: building $name ..."
	local start=$SECONDS
	"$@"
	echo "$pin" >"$stamp"
	echo "k8s-bins: built $name in $((SECONDS - start))s"
}

want=("$@")
[[ ${#want[@]} -gt 0 ]] || want=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

export CGO_ENABLED=0
for name in "${want[@]}"; do
	case $name in
	etcd) build etcd bash -c "cd '$root/hack/k8s' && go build -trimpath -o '$out/etcd' ./etcd" ;;
	kube-apiserver | kube-controller-manager | kube-scheduler)
		build "$name" bash -c "cd '$root/hack/k8s' && go build -trimpath -ldflags '$version_ldflags' -o '$out/$name' k8s.io/kubernetes/cmd/$name" ;;
	kwok) build kwok env GOBIN="$out" go install "sigs.k8s.io/kwok/cmd/kwok@$kwok_version" ;;
	*) echo "k8s-bins: unknown binary $name" >&2; exit 2 ;;
	esac
done
