#!/usr/bin/env bash
# Stops what hack/cluster/up.sh started, newest first, by pid: SIGTERM, then
# SIGKILL after a grace period. The node agent stops its pods' processes on
# SIGTERM; any it left behind (pid files under the agent's state dir) are
# stopped too. CLEAN=1 also deletes the cluster's state (etcd data, certs, logs)
# and the pod-address route up.sh added.
set -euo pipefail
source "$(dirname "$0")/config.sh"

say() { echo "cluster-down: $*"; }

# alive: the process exists and is not a zombie waiting for its reaper (what
# up.sh starts is reparented to init, which may reap late).
alive() { kill -0 "$1" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }

stop_pid() { # name, pid, expected word in its command line, grace seconds
	local name=$1 pid=$2 word=$3 grace=$4
	alive "$pid" || return 0
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$word" || return 0 # pid reused by someone else
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$((SECONDS + grace))
	while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
	if alive "$pid"; then
		say "$name (pid $pid) ignored SIGTERM for ${grace}s; SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	say "stopped $name (pid $pid)"
}

stopped=0
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
	name=${COMPONENTS[i]}
	f=$PIDS/$name.pid
	[[ -f $f ]] || continue
	stop_pid "$name" "$(cat "$f")" "$name" 15
	rm -f "$f"
	stopped=$((stopped + 1))
done
# Pod processes the agent could not stop (it was killed, say).
shopt -s nullglob
for f in "$CLUSTER_DIR"/nodeagent/pods/*/*.pid; do
	pid=$(cat "$f")
	stop_pid "pod process $(basename "$(dirname "$f")")" "$pid" "$(basename "$EMBEDSERVER_BINARY")" 5 || true
	rm -f "$f"
done
((stopped > 0)) || say "nothing was running"

if [[ ${CLEAN:-0} == 1 ]]; then
	# Deleting the namespace removes the veth pair and the host's route with it.
	ip netns del "$POD_NETNS" 2>/dev/null || true
	rm -rf "$CLUSTER_DIR" "$KUBECONFIG_OUT"
	say "removed $CLUSTER_DIR and $KUBECONFIG_OUT"
fi
