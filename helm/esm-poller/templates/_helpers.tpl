{{- define "esm-poller.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esm-poller.fullname" -}}
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

{{- define "esm-poller.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "esm-poller.selectorLabels" -}}
app.kubernetes.io/name: {{ include "esm-poller.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "esm-poller.labels" -}}
helm.sh/chart: {{ include "esm-poller.chart" . }}
{{ include "esm-poller.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "esm-poller.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "esm-poller.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "esm-poller.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The poller config file: the user's config plus the state path and metrics endpoint. */}}
{{- define "esm-poller.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $state := merge (dict "path" (printf "%s/state.db" .Values.persistence.mountPath)) (default (dict) $cfg.state) }}
{{- $_ := set $cfg "state" $state }}
{{- $_ := set $cfg "metrics" (dict "host" "0.0.0.0" "port" (int .Values.metrics.port)) }}
{{- toYaml $cfg }}
{{- end }}

{{- define "esm-poller.drainGraceSeconds" -}}
{{- $tuning := default (dict) .Values.config.tuning }}
{{- if hasKey $tuning "drain_grace_seconds" }}{{ $tuning.drain_grace_seconds }}{{ else }}30{{ end }}
{{- end }}

{{- define "esm-poller.terminationGracePeriodSeconds" -}}
{{- add (ceil (include "esm-poller.drainGraceSeconds" . | float64)) .Values.terminationGraceExtraSeconds }}
{{- end }}

{{- define "esm-poller.pvcName" -}}
{{- default (printf "%s-state" (include "esm-poller.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}

{{/* Label matchers that select this release's series in Prometheus (ServiceMonitor targets). */}}
{{- define "esm-poller.promSelector" -}}
namespace="{{ .Release.Namespace }}", service="{{ include "esm-poller.fullname" . }}"
{{- end }}
