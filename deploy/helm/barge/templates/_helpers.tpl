{{/* The chart's name (nameOverride wins). */}}
{{- define "barge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: the release name, with the chart's unless the release has it. */}}
{{- define "barge.fullname" -}}
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

{{- define "barge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "barge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "barge.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "barge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "barge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "barge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the API token, and the one holding the PostgreSQL URL. */}}
{{- define "barge.tokenSecretName" -}}
{{- default (printf "%s-token" (include "barge.fullname" .)) .Values.api.token.existingSecret }}
{{- end }}

{{- define "barge.databaseSecretName" -}}
{{- default (printf "%s-database" (include "barge.fullname" .)) .Values.database.postgres.existingSecret }}
{{- end }}

{{/* The ConfigMap of the definitions (an existing one, or the chart's from `files`). */}}
{{- define "barge.definitionsConfigMapName" -}}
{{- default (printf "%s-definitions" (include "barge.fullname" .)) .Values.definitions.configMap.existing }}
{{- end }}

{{/*
Refuses values that cannot work, with what to change. Included by the Deployment, so every
render (install, upgrade, template) checks them.
*/}}
{{- define "barge.validateValues" -}}
{{- $db := .Values.database.type }}
{{- if not (has $db (list "sqlite" "postgres")) }}
{{- fail (printf "database.type must be sqlite or postgres, not %q" $db) }}
{{- end }}
{{- if and (eq $db "sqlite") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount=%d needs database.type=postgres: SQLite is one file on one pod's volume and cannot be shared by replicas (set database.type=postgres with database.postgres.existingSecret, or replicaCount=1)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (eq $db "postgres") (not .Values.database.postgres.existingSecret) (not .Values.database.postgres.url) }}
{{- fail "database.type=postgres needs database.postgres.existingSecret (a Secret with the postgres:// URL) or database.postgres.url" }}
{{- end }}
{{- if and (eq $db "postgres") .Values.database.postgres.url (not (hasPrefix "postgres" .Values.database.postgres.url)) }}
{{- fail "database.postgres.url must be a postgres:// (or postgresql://) URL" }}
{{- end }}
{{- $sources := 0 }}
{{- if .Values.definitions.git.url }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.definitions.configMap.existing }}{{ $sources = add1 $sources }}{{ end }}
{{- if .Values.definitions.files }}{{ $sources = add1 $sources }}{{ end }}
{{- if gt $sources 1 }}
{{- fail "give the pipeline definitions in one of definitions.git.url, definitions.configMap.existing or definitions.files, not several" }}
{{- end }}
{{- if not (has .Values.analysisRuns (list "native" "cluster")) }}
{{- fail (printf "analysisRuns must be native or cluster, not %q" .Values.analysisRuns) }}
{{- end }}
{{- end }}
