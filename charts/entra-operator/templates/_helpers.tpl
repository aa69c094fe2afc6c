{{/* The chart name, shortened to fit a label value. */}}
{{- define "entra-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name when it already contains the chart name,
else <release>-<chart>. Cluster-scoped objects (ClusterRole, ClusterRoleBinding) use it too, so two
releases with the same name in different namespaces would share them: use distinct release names.
*/}}
{{- define "entra-operator.fullname" -}}
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

{{- define "entra-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods; never change them in an upgrade. */}}
{{- define "entra-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "entra-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "entra-operator.labels" -}}
helm.sh/chart: {{ include "entra-operator.chart" . }}
{{ include "entra-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: entra-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* metadata.labels and, when there are any, metadata.annotations of every object. */}}
{{- define "entra-operator.metadata" -}}
labels:
  {{- include "entra-operator.labels" . | nindent 2 }}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "entra-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "entra-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "entra-operator.leaderLeaseName" -}}
{{- default (printf "%s-leader" (include "entra-operator.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "entra-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Refuses combinations the schema cannot express. */}}
{{- define "entra-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: replicas without leader election would all reconcile at once" }}
{{- end }}
{{- if and (eq (.Values.strategy.type | default "") "Recreate") .Values.strategy.rollingUpdate }}
{{- fail "strategy.rollingUpdate applies only to type RollingUpdate: remove it for Recreate" }}
{{- end }}
{{- $owned := dict "--concurrency" "concurrency" "--leader-election-lease-name" "leaderElection.leaseName" "--leader-election-lease-duration-seconds" "leaderElection.leaseDurationSeconds" "--lease-secret-types" "leaseSecrets.allowedTypes" "--min-forced-rotation-interval" "minForcedRotationInterval" "--graph-app-tenant-writes" "graphBudgets.appTenantWrites" "--graph-tenant-writes" "graphBudgets.tenantWrites" "--graph-app-writes" "graphBudgets.appWrites" "--graph-app-tenant-read-units" "graphBudgets.appTenantReadUnits" "--graph-end-reserve-percent" "graphBudgets.endReservePercent" }}
{{- range .Values.extraArgs }}
{{- $flag := first (splitList "=" .) }}
{{- if hasKey $owned $flag }}
{{- fail (printf "extraArgs repeats %s, which the chart sets: set %s instead (the operator refuses a flag given twice)" $flag (get $owned $flag)) }}
{{- end }}
{{- end }}
{{- /* /metrics names every lease: the chart serves it only to callers the API server authorizes. */}}
{{- range .Values.extraArgs }}
{{- if hasPrefix "--metrics-secure" . }}
{{- fail "extraArgs may not set --metrics-secure: the chart serves /metrics over HTTPS to authorized callers only (metrics.reader.serviceAccounts); plain HTTP is for local development" }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if eq .name "METRICS_SECURE" }}
{{- fail "extraEnv may not set METRICS_SECURE: the chart serves /metrics over HTTPS to authorized callers only (metrics.reader.serviceAccounts); plain HTTP is for local development" }}
{{- end }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail "metrics.port and health.port must differ: /metrics is HTTPS with authentication, the probes plain HTTP" }}
{{- end }}
{{- end }}

{{/*
The namespaces this release serves, as the matchResources of an admission policy binding:
the watched namespaces (watchNamespaces), or every namespace.
*/}}
{{- define "entra-operator.servedNamespaces" -}}
{{- $watched := include "entra-operator.watchedNamespaces" . | fromJsonArray }}
{{- if eq (len $watched) 1 }}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ first $watched }}
{{- else if $watched }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values: {{ toJson $watched }}
{{- else }}
namespaceSelector: {}
{{- end }}
{{- end }}

{{/* The namespaces this release serves, as a JSON list; empty for every namespace. */}}
{{- define "entra-operator.watchedNamespaces" -}}
{{- .Values.watchNamespaces | default list | uniq | toJson }}
{{- end }}
