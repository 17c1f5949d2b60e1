{{- /*
Every permission the operator has is listed here, once; rbac.yaml only binds these lists.
The chart's README lists the same rules with the code that uses each (a test keeps the two equal).
*/ -}}

{{- /* Rules in each namespace whose InferenceBackends the operator runs (Secrets apart, below). */ -}}
{{- define "turnout.rbac.namespacedRules" -}}
# Kopf watches the backends and patches its finalizer (turnout.dev/daemon) onto them; turnout's
# own informer lists and watches them too (reconciles read that cache), and GETs one after a write
# whose outcome it does not know (a conflict, a timeout).
- apiGroups: [turnout.dev]
  resources: [inferencebackends]
  verbs: [get, list, watch, patch]
# Phase, colors, revisions and conditions (Cluster.patch_backend_status).
- apiGroups: [turnout.dev]
  resources: [inferencebackends/status]
  verbs: [patch]
# Owner references with blockOwnerDeletion on what turnout creates, where the API server enforces them.
- apiGroups: [turnout.dev]
  resources: [inferencebackends/finalizers]
  verbs: [update]
# The blue and green Deployments: listed and watched with the label turnout.dev/backend (turnout's
# informer), looked up by name when not in that cache (observe: one of those names that is not the
# backend's own is a Conflict), server-side applied.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
# Scaling a color up or down without touching its template.
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [patch]
# The stable Service whose selector moves between the colors: listed and watched with the label
# turnout.dev/backend (turnout's informer), looked up by name when not in that cache, server-side applied.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch]
# The model claim (storage.create): listed and watched with the label turnout.dev/backend (turnout's
# informer: the claims it made), looked up by name when not in that cache (a claim the user made),
# created once, never patched or deleted by turnout.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, list, watch, create]
# Pod readiness, addresses and failure reasons (ImagePullBackOff, OOMKilled, ...): listed and
# watched with the label turnout.dev/backend only (turnout's informer); and the short-lived
# inspector pod that serves a vLLM model's config.json from its claim, created and deleted by turnout.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete]
# One Event per cutover transition on the backend (kopf.event posts core/v1 Events).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The revision history (one ControllerRevision per revision, owned by the backend): listed by the
# backend's label when a cutover starts, created (a revision rolled out again: deleted and created
# as the newest), and the oldest deleted.
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [list, create, delete]
# The JSONL prompts of rollout.benchmark.prompts.configMapKeyRef, read by name; no list or watch.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# The HTTPRoute a canary names: listed and watched (turnout's informer; the routes are the user's, so
# without a label selector), read by name after a write whose outcome is unknown, and replaced with
# only the weights of its refs to the color Services changed (the resourceVersion read makes a
# concurrent edit a 409). No create.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, update]
{{- end -}}

{{- /* Where Secrets are read: each watched namespace (namespaces scope), else rbac.secretNamespaces only. */ -}}
{{- define "turnout.rbac.secretRules" -}}
# The vLLM API key named by spec.vllm.apiKeySecretRef, read by name once per reconcile; no list or watch.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}

{{- /* Cluster-scoped reads Kopf needs: discovering and following the CRD, and (namespaces scope) the namespaces. */ -}}
{{- define "turnout.rbac.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# The nvidia.com/gpu.memory label of the GPU nodes, listed once before a vLLM revision with
# model.architecture starts (Cluster.list_nodes, the GPU memory estimate); no get or watch.
- apiGroups: [""]
  resources: [nodes]
  verbs: [list]
{{- if eq .Values.watch.scope "namespaces" }}
# Only when watching listed namespaces: Kopf follows whether they exist (cluster-wide it does not look).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end -}}

{{- /* Who gets the rules: the operator's ServiceAccount. */ -}}
{{- define "turnout.rbac.subjects" -}}
- kind: ServiceAccount
  name: {{ include "turnout.serviceAccountName" . | quote }}
  namespace: {{ .Release.Namespace | quote }}
{{- end -}}

{{- /* A Role or ClusterRole (.kind) named .name holding .rules (rendered YAML), bound to the operator; .top is the root context. */ -}}
{{- define "turnout.rbac.grant" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ .kind }}
metadata:
  name: {{ .name | quote }}
  {{- with .namespace }}
  namespace: {{ . | quote }}
  {{- end }}
  labels:
    {{- include "turnout.labels" .top | nindent 4 }}
rules:
  {{- .rules | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ printf "%sBinding" .kind }}
metadata:
  name: {{ .name | quote }}
  {{- with .namespace }}
  namespace: {{ . | quote }}
  {{- end }}
  labels:
    {{- include "turnout.labels" .top | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ .kind }}
  name: {{ .name | quote }}
subjects:
  {{- include "turnout.rbac.subjects" .top | nindent 2 }}
{{- end -}}

{{- /* Leader election: the one Lease of the release, in its namespace (turnout.kube.lease). */ -}}
{{- define "turnout.rbac.leaseRules" -}}
# Leader election (turnout.kube.lease): read the Lease, create it once, renew or take it over
# (a PUT carrying the resourceVersion read, so two replicas never both win).
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}
