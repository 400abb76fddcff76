#!/usr/bin/env bash
# make demo: from a fresh clone, build what is needed, bring the local cluster up,
# run the operator, and ship three changes to a RAGService under load: a good one
# (promoted through the canary), a bad one (rolled back by the analysis) and an
# undeclared model change (refused by the embedding-space guard before any client
# sees it). Prints a timeline of `kubectl get ragsvc` and what the clients got,
# vector sizes included, and leaves the cluster and the operator running for
# exploring. `hack/demo.sh down` (make demo-down) stops both.
#
# Bounded: every wait has a timeout, and the script fails (non-zero) when the
# promotion or the rollback does not happen in time.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DEMO_DIR=$ROOT/.local/demo
export KUBECONFIG=$ROOT/.local/kubeconfig
NS=demo
NAME=docs
SAMPLES=config/samples/demo
MANAGER_METRICS=${DEMO_MANAGER_METRICS:-127.0.0.1:61080}
MANAGER_PROBE=${DEMO_MANAGER_PROBE:-127.0.0.1:61081}
READY_TIMEOUT=${DEMO_READY_TIMEOUT:-120}
PROMOTE_TIMEOUT=${DEMO_PROMOTE_TIMEOUT:-180}
ROLLBACK_TIMEOUT=${DEMO_ROLLBACK_TIMEOUT:-120}
GUARD_TIMEOUT=${DEMO_GUARD_TIMEOUT:-60}
# The bad change's upstream: on the host end of the pod network's veth pair
# (hack/cluster/config.sh), where the pods reach it.
UPSTREAM_ADDR=${DEMO_UPSTREAM_ADDR:-198.18.255.253:61090}
MANAGER_PID=$DEMO_DIR/manager.pid
TIMELINE=$DEMO_DIR/timeline.txt

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
	printf '\n\033[1;31mdemo FAILED: %s\033[0m\n' "$*" >&2
	{
		echo "--- kubectl get ragsvc,deploy,pods -n $NS"
		kubectl get ragsvc,deploy,pods -n "$NS" -o wide 2>&1 || true
		echo "--- last lines of $DEMO_DIR/manager.log"
		tail -n 20 "$DEMO_DIR/manager.log" 2>/dev/null || true
	} >&2
	exit 1
}

manager_running() {
	[[ -f $MANAGER_PID ]] && kill -0 "$(cat "$MANAGER_PID")" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$(cat "$MANAGER_PID")/cmdline" 2>/dev/null | grep -q 'bin/manager'
}

stop_manager() {
	manager_running || { rm -f "$MANAGER_PID"; return 0; }
	local pid
	pid=$(cat "$MANAGER_PID")
	kill -TERM "$pid"
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
	rm -f "$MANAGER_PID"
	echo "demo: stopped the manager (pid $pid)"
}

if [[ ${1:-} == down ]]; then
	stop_manager
	exec make --no-print-directory cluster-down
fi

mkdir -p "$DEMO_DIR"
t0=$SECONDS

step "Building the Kubernetes binaries into bin/k8s (cached after the first run; the first takes several minutes)"
make --no-print-directory k8s-bins
step "Building the operator, the kubectl plugin and the demo's load generator"
CGO_ENABLED=0 go build -o bin/manager ./cmd/manager
CGO_ENABLED=0 go build -o bin/kubectl-rag ./cmd/kubectl-rag
CGO_ENABLED=0 go build -o "$DEMO_DIR/podload" ./test/e2e/cmd/podload
CGO_ENABLED=0 go build -o "$DEMO_DIR/fakeupstream" ./hack/fakeupstream
export PATH=$ROOT/bin:$PATH # kubectl finds the plugin as `kubectl rag`

step "Starting the local cluster (builds the node agent and the embedding server)"
make --no-print-directory cluster-up
builds=$((SECONDS - t0))
t1=$SECONDS

step "Installing the RAGService CRD"
kubectl apply --server-side -f config/crd/bases
# kubectl wait errors out (instead of waiting) while the new CRD has no status
# conditions at all yet: retry it until they exist.
for i in $(seq 1 30); do
	kubectl wait --for=condition=Established crd/ragservices.rag.ragops.io --timeout=30s 2>/dev/null && break
	((i < 30)) || die "the RAGService CRD was not Established within 30s"
	sleep 1
done

step "Starting the operator in the background (log $DEMO_DIR/manager.log)"
stop_manager # a new binary may have been built
echo "=== $(date -u +%FT%TZ) demo starts the manager" >>"$DEMO_DIR/manager.log"
# Plain HTTP metrics on loopback: a local run has no scraper with a token.
setsid bin/manager --kubeconfig "$KUBECONFIG" --metrics-bind-address "$MANAGER_METRICS" --metrics-secure=false \
	--health-probe-bind-address "$MANAGER_PROBE" >>"$DEMO_DIR/manager.log" 2>&1 </dev/null &
echo $! >"$MANAGER_PID"
for i in $(seq 1 100); do
	curl -sf "http://$MANAGER_PROBE/readyz" >/dev/null && break
	manager_running || die "the manager exited at start"
	((i < 100)) || die "the manager is not ready after 20s"
	sleep 0.2
done
echo "demo: manager running (pid $(cat "$MANAGER_PID"), metrics http://$MANAGER_METRICS/metrics)"

# Background helpers stop with the script, whatever happens; the cluster and the
# manager stay up on purpose.
watch_pid="" load_pid="" upstream_pid=""
cleanup() {
	[[ -n $load_pid ]] && kill -INT "$load_pid" 2>/dev/null || true
	[[ -n $watch_pid ]] && kill "$watch_pid" 2>/dev/null || true
	[[ -n $upstream_pid ]] && kill "$upstream_pid" 2>/dev/null || true
	# Only the helpers: the manager this run started is a child too (setsid
	# execs it in place), and a bare wait would wait for it forever.
	local p
	for p in $load_pid $watch_pid $upstream_pid; do
		wait "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Creating RAGService $NS/$NAME: builtin model, 3 replicas, canary 33% -> pause 10s -> 66% -> pause 10s, analysis every 5s"
if kubectl get ragsvc "$NAME" -n "$NS" >/dev/null 2>&1; then
	echo "demo: deleting the $NAME left by an earlier run"
	kubectl delete ragsvc "$NAME" -n "$NS" --cascade=foreground --wait --timeout=90s
fi
kubectl apply -f "$SAMPLES/0-namespace.yaml" -f "$SAMPLES/1-ragservice.yaml"

# The timeline: one line each time the service's row changes, with the time.
# The columns of `kubectl get ragsvc` (Weight is the effective canary share),
# plus the revision retiring after a handover (it keeps its pods for
# spec.rollout.scaleDownDelay), the step, the ready pods of every revision and
# the last analysis verdict.
jp='{.status.conditions[?(@.type=="Ready")].status}|{.status.phase}|{.status.stableRevision}|{.status.canaryRevision}|{.status.retiring.revision}|{.status.effectiveWeight}|{.status.currentStep}|{.status.readyReplicas}|{.status.analysis.verdict}'
fmt='%-8s  %-5s  %-11s  %-10s  %-10s  %-10s  %6s  %4s  %4s  %s\n'
(
	last=""
	printf "$fmt" TIME READY PHASE STABLE CANARY RETIRING WEIGHT STEP PODS VERDICT | tee "$TIMELINE"
	for _ in $(seq 1 1200); do # 0.5 s apart: at most 10 minutes
		row=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath="$jp" 2>/dev/null) || row=""
		if [[ -n $row && $row != "$last" ]]; then
			IFS='|' read -r ready phase stable canary retiring weight stepno pods verdict <<<"$row"
			printf "$fmt" "$(date +%T)" "${ready:--}" "${phase:--}" "${stable:--}" "${canary:--}" "${retiring:--}" "${weight:-0}%" "${stepno:-0}" "${pods:-0}" "${verdict:--}" | tee -a "$TIMELINE"
			last=$row
		fi
		sleep 0.5
	done
) &
watch_pid=$!

kubectl wait --for=condition=Ready "ragsvc/$NAME" -n "$NS" --timeout="${READY_TIMEOUT}s" >/dev/null ||
	die "$NAME did not become Ready within ${READY_TIMEOUT}s"
stable1=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.stableRevision}')
echo "# $(date +%T) $NAME is Ready: 3 pods of revision $stable1" | tee -a "$TIMELINE"

step "Putting load on the pods (resolved from the Service's EndpointSlices, 40 req/s)"
"$DEMO_DIR/podload" --namespace "$NS" --service "$NAME" --rate 40 --concurrency 4 --duration 8m >"$DEMO_DIR/load.txt" 2>&1 &
load_pid=$!
sleep 3

step "A good change: concurrency.maxInFlight 8 -> 16 (kubectl apply -f $SAMPLES/2-good-change.yaml)"
echo "# $(date +%T) kubectl apply: maxInFlight 8 -> 16" | tee -a "$TIMELINE"
kubectl apply -f "$SAMPLES/2-good-change.yaml"
# The canary's pods, as they run before the handover: the same pods serve as
# stable after it (a promotion hands them over, none is recreated).
canary_pods=""
for _ in $(seq 1 $((PROMOTE_TIMEOUT * 2))); do
	canary2=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.canaryRevision}')
	if [[ -n $canary2 ]]; then
		canary_pods=$(kubectl get pods -n "$NS" -l "app.kubernetes.io/instance=$NAME,rag.ragops.io/revision=$canary2" \
			--field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}')
		[[ -n $canary_pods ]] && break
	fi
	sleep 0.5
done
[[ -n $canary_pods ]] || die "no canary pod ran within ${PROMOTE_TIMEOUT}s of the good change"
if ! kubectl rag status "$NAME" -n "$NS" --watch --timeout "${PROMOTE_TIMEOUT}s" >"$DEMO_DIR/status-good.txt" 2>&1; then
	tail -n 25 "$DEMO_DIR/status-good.txt" >&2
	die "the good change was not promoted within ${PROMOTE_TIMEOUT}s"
fi
stable2=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.stableRevision}')
[[ $stable2 != "$stable1" ]] || die "status --watch passed but the stable revision is still $stable1"
echo "# $(date +%T) promoted: stable is now $stable2, handed over from the canary; $stable1 retires" | tee -a "$TIMELINE"
stable_pods=$(kubectl get pods -n "$NS" -l "app.kubernetes.io/instance=$NAME,rag.ragops.io/revision=$stable2" \
	-o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}')
kept=0
for uid in $canary_pods; do
	grep -qx "$uid" <<<"$stable_pods" && kept=$((kept + 1))
done
(( kept == $(wc -w <<<"$canary_pods") )) ||
	die "only $kept of the canary's $(wc -w <<<"$canary_pods") pods serve as stable after the promotion: a pod was recreated"
echo "# $(date +%T) the canary's first pod(s), $kept of $kept, serve as stable (same pod UIDs, none recreated); deployments:" | tee -a "$TIMELINE"
kubectl get deploy -n "$NS" -l "app.kubernetes.io/instance=$NAME" | tee -a "$TIMELINE"

step "A bad change: embeddings from an upstream that fails half its calls (kubectl apply -f $SAMPLES/3-bad-change.yaml)"
"$DEMO_DIR/fakeupstream" --addr "$UPSTREAM_ADDR" --error-rate 0.5 --dims 384 --latency 5ms >"$DEMO_DIR/fakeupstream.log" 2>&1 &
upstream_pid=$!
echo "# $(date +%T) kubectl apply: provider openai, endpoint http://$UPSTREAM_ADDR/v1 (fails 50% of calls)" | tee -a "$TIMELINE"
kubectl apply -f "$SAMPLES/3-bad-change.yaml"
rc=0
kubectl rag status "$NAME" -n "$NS" --watch --timeout "${ROLLBACK_TIMEOUT}s" >"$DEMO_DIR/status-bad.txt" 2>&1 || rc=$?
phase=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.phase}')
reason=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.rollback.reason}')
if [[ $rc != 1 || $phase != RolledBack || $reason != AnalysisFailed ]]; then
	tail -n 25 "$DEMO_DIR/status-bad.txt" >&2
	die "the bad change was not rolled back by the analysis within ${ROLLBACK_TIMEOUT}s (status exit $rc, phase $phase, reason '$reason')"
fi
stable3=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.stableRevision}')
[[ $stable3 == "$stable2" ]] || die "the stable revision changed to $stable3 during the rollback"
echo "# $(date +%T) rolled back: stable is still $stable2" | tee -a "$TIMELINE"

step "An undeclared model change: hash-384 -> hash-256, spec.embedding.space unchanged (kubectl apply -f $SAMPLES/4-model-change.yaml)"
echo "# $(date +%T) kubectl apply: model hash-384 -> hash-256 (the space is said to stay)" | tee -a "$TIMELINE"
kubectl apply -f "$SAMPLES/4-model-change.yaml"
guarded=""
for _ in $(seq 1 $((GUARD_TIMEOUT * 2))); do
	reason=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.rollback.reason}')
	canary=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.canaryRevision}')
	if [[ $reason == EmbeddingSpaceChanged && -z $canary ]]; then
		guarded=1
		break
	fi
	sleep 0.5
done
[[ -n $guarded ]] || die "the model change was not refused by the embedding-space guard within ${GUARD_TIMEOUT}s"
stable4=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.stableRevision}')
[[ $stable4 == "$stable2" ]] || die "the stable revision changed to $stable4 during the guard's rollback"
echo "# $(date +%T) refused by the embedding-space guard: $(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.rollback.message}')" | tee -a "$TIMELINE"
sleep 3 # clients keep going on stable after it; let the timeline print the last change

kill -INT "$load_pid" 2>/dev/null || true
wait "$load_pid" 2>/dev/null || true
load_pid=""
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=""

step "What the clients saw (requests by the track of the pod that answered, and the vector sizes they got)"
cat "$DEMO_DIR/load.txt"
# No client got a vector of the wrong space: the guard kept them on stable.
if grep -qE '^256[[:space:]]' "$DEMO_DIR/load.txt"; then
	die "clients received 256-dimension vectors: the guard let the model change through"
fi

step "kubectl get ragsvc -n $NS"
kubectl get ragsvc -n "$NS"

step "kubectl rag status $NAME -n $NS"
rc=0
kubectl rag status "$NAME" -n "$NS" || rc=$?
echo "(exit code $rc: 1 means the last rollout was rolled back)"

step "Why it was rolled back"
kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.status.rollback.reason}: {.status.rollback.message}{"\n"}'
echo "The last embedding-space check:"
kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='  {.status.embeddingSpace.verdict} for {.status.embeddingSpace.revision}: {.status.embeddingSpace.message}{"\n"}'
echo "Warning events of the RAGService:"
uid=$(kubectl get ragsvc "$NAME" -n "$NS" -o jsonpath='{.metadata.uid}')
kubectl get events -n "$NS" --field-selector "involvedObject.uid=$uid,type=Warning" --sort-by=.metadata.creationTimestamp \
	-o custom-columns='REASON:.reason,MESSAGE:.message' 2>/dev/null || true

echo
echo "demo: done in $((SECONDS - t1))s after ${builds}s of builds and cluster start; timeline in $TIMELINE"
cat <<EOF

Explore (the cluster and the operator keep running):
  export KUBECONFIG=$KUBECONFIG PATH=$ROOT/bin:\$PATH
  kubectl get ragsvc -n $NS                  # Ready, Phase, Stable, Canary, Weight
  kubectl rag status $NAME -n $NS            # the rollout in words
  kubectl rag history $NAME -n $NS           # revisions and events
  kubectl get deploy,pods -n $NS -L rag.ragops.io/revision   # one Deployment per revision: $NAME-<revision>
  kubectl apply -f $SAMPLES/2-good-change.yaml  # a GitOps revert to the good spec
  tail -f $DEMO_DIR/manager.log
Tear down:
  make demo-down                             # stops the manager, then make cluster-down (CLEAN=1 also wipes the state)
EOF
