{{/*
The Prometheus rule groups of ragops: recording rules per RAGService and revision,
and the alerts. The PrometheusRule (prometheusrule.yaml) carries them, and
config/prometheus/ragops-alerts.rules.yaml is this rendered with the default
values, for a Prometheus without the Prometheus Operator (`make
prometheus-rules` writes it; make test-integrations checks it is current and
runs promtool on both).

Series of the embedding servers are labelled as the pod relabelling of
config/prometheus and the analysis' Prometheus provider assume: namespace,
app_kubernetes_io_instance (the RAGService), rag_ragops_io_revision (pods carry
no track: which revision is stable lives in the RAGService's status). Series of the
manager carry the RAGService's namespace and name (scraped with honorLabels).
*/}}
{{- define "rag-operator.alertGroups" -}}
{{- $a := .Values.alerts -}}
{{- $svc := "namespace, app_kubernetes_io_instance" -}}
{{- $rev := printf "%s, rag_ragops_io_revision" $svc -}}
- name: ragops-embedserver.rules
  rules:
  - record: ragops:embedserver_requests:rate5m
    expr: sum by ({{ $rev }}) (rate(embedserver_requests_total[5m]))
  - record: ragops:embedserver_shed:rate5m
    expr: sum by ({{ $rev }}) (rate(embedserver_shed_total[5m]))
  - record: ragops:embedserver_request_duration_seconds:p99_5m
    expr: histogram_quantile(0.99, sum by ({{ $rev }}, le) (rate(embedserver_request_duration_seconds_bucket[5m])))
  - record: ragops:embedserver_upstream_requests:rate5m
    expr: sum by ({{ $rev }}) (rate(embedserver_upstream_requests_total[5m]))
  - record: ragops:embedserver_upstream_failures:rate5m
    expr: sum by ({{ $rev }}) (rate(embedserver_upstream_requests_total{code!~"2.."}[5m]))
  {{- range $a.latencyP99.limits }}
  # The p99 limit of {{ .namespace }}/{{ .name }}: its spec.rollout.analysis.maxLatencyP99.
  - record: ragops:latency_p99_limit_seconds
    expr: vector({{ .seconds }})
    labels:
      namespace: {{ .namespace | quote }}
      app_kubernetes_io_instance: {{ .name | quote }}
  {{- end }}
- name: ragops-embedserver.alerts
  rules:
  - alert: RAGServiceShedRateHigh
    expr: |-
      ragops:embedserver_shed:rate5m / ragops:embedserver_requests:rate5m > {{ $a.shedRatio }}
        and ragops:embedserver_requests:rate5m > {{ $a.minRequestRate }}
    for: {{ $a.shedFor }}
    labels:
      severity: warning
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ `RAGService {{ $labels.namespace }}/{{ $labels.app_kubernetes_io_instance }} (revision {{ $labels.rag_ragops_io_revision }}) sheds {{ $value | humanizePercentage }} of its requests` | quote }}
      description: {{ printf "More than {{ %v | humanizePercentage }} of the requests to the pods of revision %s were refused with 429 or 503 over 5 minutes: its pods are at their concurrency limits (spec.concurrency.maxInFlight and maxQueue) or draining. Add replicas (kubectl scale ragsvc), raise the limits, or look at the upstream's latency." $a.shedRatio "{{ $labels.rag_ragops_io_revision }}" | quote }}
  - alert: RAGServiceLatencyP99High
    expr: |-
      ragops:embedserver_request_duration_seconds:p99_5m
        > on ({{ $svc }}) group_left ()
      (
        ragops:latency_p99_limit_seconds
          or on ({{ $svc }})
        0 * count by ({{ $svc }}) (ragops:embedserver_request_duration_seconds:p99_5m) + {{ $a.latencyP99.defaultSeconds }}
      )
        and ragops:embedserver_requests:rate5m > {{ $a.minRequestRate }}
    for: {{ $a.latencyP99.for }}
    labels:
      severity: warning
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ `RAGService {{ $labels.namespace }}/{{ $labels.app_kubernetes_io_instance }} (revision {{ $labels.rag_ragops_io_revision }}) answers with a p99 of {{ $value | humanizeDuration }}` | quote }}
      description: {{ printf "The 99th percentile of request latency (queue wait included) is above the service's limit (ragops:latency_p99_limit_seconds, else %vs, the default of spec.rollout.analysis.maxLatencyP99): a canary with this latency would fail analysis." $a.latencyP99.defaultSeconds | quote }}
  - alert: RAGServiceUpstreamFailing
    expr: |-
      ragops:embedserver_upstream_failures:rate5m / ragops:embedserver_upstream_requests:rate5m > {{ $a.upstreamFailureRatio }}
        and ragops:embedserver_upstream_requests:rate5m > {{ $a.minRequestRate }}
    for: {{ $a.upstreamFor }}
    labels:
      severity: warning
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ `RAGService {{ $labels.namespace }}/{{ $labels.app_kubernetes_io_instance }} (revision {{ $labels.rag_ragops_io_revision }}): {{ $value | humanizePercentage }} of upstream calls fail` | quote }}
      description: {{ printf "More than {{ %v | humanizePercentage }} of the calls to the embedding provider (spec.embedding.endpoint) answered other than 2xx, timed out or failed to connect over 5 minutes; retried calls count once per attempt. Clients get 502 once retries run out: check the provider's status, the API key Secret and spec.timeouts.upstream." $a.upstreamFailureRatio | quote }}
- name: ragops-rollouts.alerts
  rules:
  - alert: RAGServiceRolledBack
    # A counter's first rollback creates its series at 1, which increase()
    # cannot see: a series that did not exist a window ago counts as well.
    expr: |-
      sum by (namespace, name) (increase(ragops_rollouts_total{result="rolled_back"}[{{ $a.rolledBackWindow }}])) > 0
        or
      sum by (namespace, name) (ragops_rollouts_total{result="rolled_back"} unless ragops_rollouts_total{result="rolled_back"} offset {{ $a.rolledBackWindow }})
    labels:
      severity: warning
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ `RAGService {{ $labels.namespace }}/{{ $labels.name }} rolled a canary back` | quote }}
      description: {{ `The operator rolled back a canary of {{ $labels.namespace }}/{{ $labels.name }} (analysis failed, progress deadline exceeded or aborted); stable serves on. kubectl rag -n {{ $labels.namespace }} status {{ $labels.name }} says why. The revision is not tried again until the spec changes or kubectl rag retry asks for it.` | quote }}
  - alert: RAGServiceRolloutStuck
    # The step a window ago is today's, and no series changed since: a
    # restarted manager's new series has no history of its own to show a change.
    # The metric counts steps from 0 (-1: no canary); + 1 makes $value the step
    # as messages and kubectl rag number it.
    expr: |-
      max by (namespace, name) (ragops_rollout_step) + 1 >= 1
        and
      max by (namespace, name) (changes(ragops_rollout_step[{{ $a.rolloutStuckAfter }}])) == 0
        and
      max by (namespace, name) (ragops_rollout_step) == max by (namespace, name) (ragops_rollout_step offset {{ $a.rolloutStuckAfter }})
    labels:
      severity: warning
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ printf "RAGService {{ $labels.namespace }}/{{ $labels.name }} has been at canary step {{ $value }} for %s" $a.rolloutStuckAfter | quote }}
      description: {{ `A canary of {{ $labels.namespace }}/{{ $labels.name }} has not moved: it waits for kubectl rag promote, is held by spec.rollout.paused, or its analysis stays inconclusive (onNoData: Pause). kubectl rag -n {{ $labels.namespace }} status {{ $labels.name }} says which.` | quote }}
  - alert: RAGServiceSpaceDrifted
    # The space watch found stable answering in another vector space than the
    # one recorded when it became stable, with no change of spec: every
    # vector written to the index from now on is in another space.
    expr: max by (namespace, name) (ragops_space_drifted) == 1
    labels:
      severity: critical
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ `RAGService {{ $labels.namespace }}/{{ $labels.name }} answers in another vector space than the one recorded` | quote }}
      description: {{ `The space watch of {{ $labels.namespace }}/{{ $labels.name }} found its stable pods embedding the probe texts into another vector space than the fingerprint recorded when the revision became stable, with no change of spec: the upstream behind spec.embedding.endpoint probably serves another model, normalisation, tokenizer or input window. Queries and newly indexed chunks no longer match the index. Restore the upstream (the next watch clears this), or keep the new space with kubectl rag -n {{ $labels.namespace }} accept-space {{ $labels.name }} and re-index; kubectl rag -n {{ $labels.namespace }} status {{ $labels.name }} shows the numbers.` | quote }}
  - alert: RAGFleetRolloutStopped
    # The manager's own gauge: 1 once --fleet-failure-limit services rolled
    # back the canary of the current default image that the operator caused.
    # max: only the leader counts; the other replicas report 0.
    expr: max(ragops_fleet_rollout_stopped) == 1
    labels:
      severity: warning
      {{- with $a.ruleLabels }}{{ toYaml . | nindent 6 }}{{- end }}
    annotations:
      summary: {{ `The fleet rollout of the operator's default embedding-server image stopped` | quote }}
      description: {{ `{{ with query "max(ragops_fleet_rollbacks)" }}{{ . | first | value }}{{ end }} RAGServices rolled back the canary of the manager's new default embedding-server image (--fleet-failure-limit reached): no further service starts one, and the services still waiting stay on their image (reason FleetRolloutStopped). kubectl get ragservices -A shows them; kubectl rag status tells why the rolled-back ones failed. Fix the image and deploy the manager with another default image, or kubectl rag retry the rolled-back services (each one that promotes no longer counts).` | quote }}
{{- end }}
