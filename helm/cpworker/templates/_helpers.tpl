{{/* Chart name, overridable. */}}
{{- define "cpworker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, unless the release name already contains the chart name. */}}
{{- define "cpworker.fullname" -}}
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

{{- define "cpworker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the operator's pods: stable across upgrades. */}}
{{- define "cpworker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cpworker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cpworker.labels" -}}
helm.sh/chart: {{ include "cpworker.chart" . }}
{{ include "cpworker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cpworker
{{- end }}

{{- define "cpworker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cpworker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: a digest pins the image; otherwise the tag (appVersion by default). */}}
{{- define "cpworker.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Namespaced mode when watchNamespaces lists namespaces; cluster-wide otherwise. */}}
{{- define "cpworker.clusterwide" -}}
{{- if .Values.watchNamespaces }}false{{ else }}true{{ end }}
{{- end }}

{{/*
The RBAC rules for what the operator does inside the namespaces it serves. One helper for both
modes: cluster-wide mode puts them in the ClusterRole, namespaced mode in a Role per namespace.
Exactly the verbs the operator uses; see docs/install.md#rbac for why each is needed.
*/}}
{{- define "cpworker.namespacedRules" -}}
# The operator's own resource: kopf lists/watches it, patches finalizers/annotations and status.
- apiGroups: ["cpworker.io"]
  resources: ["customactionworkers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["cpworker.io"]
  resources: ["customactionworkers/status"]
  verbs: ["patch"]
# Never called: OwnerReferencesPermissionEnforcement (on in OpenShift) asks for these when
# the operator creates a Job whose owner reference to its worker blocks deletion, and a Secret
# whose owner reference to its Job does; without them every Job is refused (403).
- apiGroups: ["cpworker.io"]
  resources: ["customactionworkers/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs/finalizers"]
  verbs: ["update"]
# One Job per CodePipeline job: created suspended, released by patch, deleted when cancelled;
# watched (label-filtered) to learn completion and rebuild in-flight state after a restart.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The per-job Secret (artifact credentials, secret configuration) is addressed by its
# deterministic name only: no list/watch, so the operator never bulk-reads Secrets.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch", "delete"]
# Pods of those Jobs are indexed (label-filtered list/watch) to catch what never starts
# (image pulls, scheduling) and to read termination messages.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on workers and Jobs: kopf and the operator both POST core v1 events (never update
# them, never use events.k8s.io). The operator lists a Job's FailedCreate events (by field
# selector) to say why its pod was refused.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list"]
{{- if and .Values.peering.enabled .Values.watchNamespaces }}
# kopf peering in namespaced mode: one KopfPeering per served namespace (keep-alives by patch).
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}

{{/* Cluster-scoped reads kopf needs in both modes. */}}
{{- define "cpworker.clusterRules" -}}
# kopf discovers resources at start-up and watches CRDs to notice changes to them.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- if .Values.watchNamespaces }}
# Namespaced mode: kopf lists/watches namespaces to learn when a served namespace appears.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end }}
{{- if and .Values.peering.enabled (not .Values.watchNamespaces) }}
# kopf peering in cluster-wide mode: one ClusterKopfPeering (keep-alives by patch).
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["list", "watch", "patch"]
{{- end }}
{{- end }}
