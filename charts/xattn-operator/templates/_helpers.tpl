{{/* Chart name, shortened to the 63 characters of a label value. */}}
{{- define "xattn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: the release name plus the chart name, unless one holds the other
  (release "xattn" gives "xattn-operator", release "team-xattn-operator" keeps its name). */}}
{{- define "xattn.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if hasPrefix (printf "%s-" .Release.Name) $name }}
{{- $name | trunc 63 | trimSuffix "-" }}
{{- else if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "xattn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator pods (stable across upgrades: a Deployment selector is immutable). */}}
{{- define "xattn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xattn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels on every object of the release (plus name and instance: xattn.labels). */}}
{{- define "xattn.commonLabels" -}}
helm.sh/chart: {{ include "xattn.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: xattn
{{- end }}

{{- define "xattn.labels" -}}
app.kubernetes.io/name: {{ include "xattn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "xattn.commonLabels" . }}
{{- end }}

{{- define "xattn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "xattn.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's leader-election Lease: a fixed name (operator/run.ts), so one release per namespace. */}}
{{- define "xattn.leaseName" -}}
xattnjob-operator
{{- end }}

{{- define "xattn.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* True when the cluster serves the Prometheus Operator's API (or helm template was told so with --api-versions). */}}
{{- define "xattn.hasMonitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* Labels of the worker pods the operator creates (operator/names.ts). */}}
{{- define "xattn.workerSelector" -}}
app.kubernetes.io/managed-by: xattn-operator
app.kubernetes.io/component: worker
{{- end }}
