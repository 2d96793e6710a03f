{{/* Names: the release's full name, shortened to 63 characters like every chart does. */}}
{{- define "kubetrain.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubetrain.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubetrain.labels" -}}
{{ include "kubetrain.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: kubetrain
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubetrain.serviceAccountName" -}}
{{- default (include "kubetrain.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "kubetrain.webhookServiceName" -}}
{{- printf "%s-webhook" (include "kubetrain.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubetrain.webhookCertSecret" -}}
{{- default (printf "%s-webhook-cert" (include "kubetrain.fullname" .)) .Values.webhook.certSecret -}}
{{- end -}}

{{/* Leader election; more than one replica without it would reconcile every job twice. */}}
{{- define "kubetrain.leaderElection" -}}
{{- if .Values.leaderElection.enabled -}}true
{{- else if gt (int .Values.replicas) 1 -}}
{{- fail "replicas > 1 needs leaderElection.enabled=true: without it every replica reconciles every job" -}}
{{- end -}}
{{- end -}}

{{/* The ValidatingWebhookConfiguration the operator (kopf) manages; see kubetrain/controller/config.py. */}}
{{- define "kubetrain.webhookConfiguration" -}}kubetrain-residency.kubetrain.io{{- end -}}
