{{/* Name of the objects: the release name if it contains the chart name, else RELEASE-CHART. */}}
{{- define "secure-defaults.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "secure-defaults.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "secure-defaults.labels" -}}
{{ include "secure-defaults.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "secure-defaults.tlsSecretName" -}}
{{- .Values.certificates.secretName | default (printf "%s-tls" (include "secure-defaults.fullname" .)) -}}
{{- end -}}

{{- define "secure-defaults.configYaml" -}}
{{- if .Values.configYaml -}}
{{- .Values.configYaml -}}
{{- else -}}
{{- toYaml .Values.config -}}
{{- end -}}
{{- end -}}

{{/* "true" when the configuration lets namespaces opt out
(namespacePolicy.allowOptOut), read from `config` or `configYaml` alike: only
then does the ignore label take a namespace out of the webhook. */}}
{{- define "secure-defaults.allowOptOut" -}}
{{- $config := include "secure-defaults.configYaml" . | fromYaml | default dict -}}
{{- $policy := get $config "namespacePolicy" | default dict -}}
{{- if eq (toString (get $policy "allowOptOut")) "true" }}true{{ end -}}
{{- end -}}

{{/* "true" when the webhook reads pull secrets for the image lookup: the
cluster's identity is auto and imageLookup.pullSecrets is not false. A
namespace that chooses auto itself gets anonymous lookups unless this holds
(no cluster-wide secret access for a mode the cluster did not choose). */}}
{{- define "secure-defaults.readsPullSecrets" -}}
{{- $config := include "secure-defaults.configYaml" . | fromYaml | default dict -}}
{{- $baseline := get $config "baseline" | default dict -}}
{{- $lookup := get $config "imageLookup" | default dict -}}
{{- if and (eq (toString (get $baseline "identity")) "auto") (ne (toString (get $lookup "pullSecrets")) "false") }}true{{ end -}}
{{- end -}}

{{/* The webhook's service DNS names, as the API server and the certificate use them. */}}
{{- define "secure-defaults.dnsNames" -}}
- {{ include "secure-defaults.fullname" . }}.{{ .Release.Namespace }}.svc
- {{ include "secure-defaults.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}
