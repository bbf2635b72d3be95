{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "governance-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name, with the chart name added
unless the release name already contains it.
*/}}
{{- define "governance-exporter.fullname" -}}
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

{{- define "governance-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the release's pods; never change them after an install. */}}
{{- define "governance-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "governance-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "governance-exporter.labels" -}}
helm.sh/chart: {{ include "governance-exporter.chart" . }}
{{ include "governance-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: exporter
app.kubernetes.io/part-of: governance
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "governance-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "governance-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "governance-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap holding the repo-spec: the operator's, or the one this chart makes. */}}
{{- define "governance-exporter.repoSpecConfigMap" -}}
{{- if .Values.repoSpec.existingConfigMap }}
{{- .Values.repoSpec.existingConfigMap }}
{{- else }}
{{- printf "%s-repo-spec" (include "governance-exporter.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "governance-exporter.hasRepoSpec" -}}
{{- if or .Values.repoSpec.existingConfigMap .Values.repoSpec.content }}true{{ end }}
{{- end }}

{{/*
The exporter's options as GOVERNANCE_EXPORTER_<NAME> variables: config's camelCase
keys in SNAKE_CASE, lists joined by commas, unset (null) options left out.
*/}}
{{- define "governance-exporter.configEnv" -}}
{{- range $key, $value := .Values.config }}
{{- if not (kindIs "invalid" $value) }}
{{- $text := toString $value }}
{{- if kindIs "slice" $value }}
{{- $text = join "," $value }}
{{- else if and (kindIs "float64" $value) (eq $value (floor $value)) }}
{{- /* Helm reads numbers as floats: 7776000 would print as 7.776e+06. */}}
{{- $text = int64 $value | toString }}
{{- end }}
- name: GOVERNANCE_EXPORTER_{{ $key | snakecase | upper }}
  value: {{ $text | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* A probe as given, its httpGet on the web config's scheme unless it names one. */}}
{{- define "governance-exporter.probe" -}}
{{- $probe := deepCopy .probe }}
{{- with $probe.httpGet }}
{{- $_ := set . "scheme" (default $.scheme .scheme) }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
