{{/* Name of the chart, overridable. */}}
{{- define "rag-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release already names the chart. */}}
{{- define "rag-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rag-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rag-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "rag-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "rag-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rag-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rag-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rag-operator.image" -}}
{{- include "rag-operator.imageRef" (list .Values.image .Chart.AppVersion) }}
{{- end }}

{{- define "rag-operator.embedserverImage" -}}
{{- include "rag-operator.imageRef" (list .Values.embedserverImage .Chart.AppVersion) }}
{{- end }}

{{- /* repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */ -}}
{{- define "rag-operator.imageRef" -}}
{{- $img := index . 0 }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default (index . 1) $img.tag) }}
{{- end }}
{{- end }}
