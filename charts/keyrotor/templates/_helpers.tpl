{{/* Name of the chart, overridable. */}}
{{- define "keyrotor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Prefix of every object name: the release name when it already says keyrotor. */}}
{{- define "keyrotor.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "keyrotor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "keyrotor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keyrotor
{{- end }}

{{/* Labels that select the operator pods; never change them (selectors are immutable). */}}
{{- define "keyrotor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keyrotor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "keyrotor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keyrotor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keyrotor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The leader Lease's name (the `keyrotor run` default). */}}
{{- define "keyrotor.leaseName" -}}
keyrotor-leader
{{- end }}

{{/*
What the operator may do in each namespace it watches: a ClusterRole in
cluster-wide mode, a Role per namespace otherwise. Derived from the API calls
in src/controller/ and src/ops/crd.rs; every verb is used by the code path
named next to it, and nothing else is granted. The e2e suite runs the
operator with exactly these rules.
*/}}
{{- define "keyrotor.rules" -}}
# ApiKeyRotations: the controller lists and watches them (src/controller/mod.rs,
# and src/ops/crd.rs lists one to learn that the CRD is installed); `patch`
# adds and removes the keyrotor.dev/cleanup finalizer (kube-runtime's finalizer
# helper sends a JSON patch). No `get`, `update`, `create` or `delete`.
# No `apikeyrotations/finalizers`: the Secrets' owner references do not set
# blockOwnerDeletion, so the OwnerReferencesPermissionEnforcement admission
# plugin asks for nothing more.
- apiGroups: ["keyrotor.dev"]
  resources: ["apikeyrotations"]
  verbs: ["list", "watch", "patch"]
# Status is written with server-side apply on the status subresource.
- apiGroups: ["keyrotor.dev"]
  resources: ["apikeyrotations/status"]
  verbs: ["patch"]
# Secrets: list/watch of keyrotor's own (label-selected watch; the deletion
# policy lists them too); `get` reads the projected Secrets, a version Secret
# after a create conflict, and the adoption source fresh from the API; `create`
# writes a version Secret once (immutable); `patch` is server-side apply of the
# projected Secrets and the merge patches that mark an abandoned version or
# orphan projections; `delete` retires a version's key. Not `update`.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Pods: the consumer cache lists and watches them, and a promote or retire
# step re-lists them no older than the Secret write it depends on; `patch`
# sets the nudge annotation that makes kubelet refresh a volume at once.
# Never `get`, `update`, `create`, `delete` or pods/status.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# Rollout mode: workloads are watched (metadata only) to react to their
# rollouts, read with `get` for the stamped revision and rollout status, and
# merge-patched to stamp the revision into the pod template.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch", "patch"]
# Events about a rotation (events.k8s.io/v1): one is created per step, never
# updated (src/controller/events.rs).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/*
What the operator needs of Namespaces, in both modes and always in a
ClusterRole: Namespaces are cluster-scoped, so a Role cannot grant it.
*/}}
{{- define "keyrotor.namespaceRules" -}}
# Namespaces: a metadata-only watch feeds the namespace cache with each
# Namespace's labels (consumers.<group>.namespaceSelector) and its
# keyrotor.dev/accept-from annotation (a namespace's consent to hold copies of
# a rotation's Secrets, docs/namespaces.md); `get` reads one Namespace. Never
# `patch`, `update` or `create`: only who may annotate a Namespace can consent
# for it, and keyrotor must not be able to.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}
