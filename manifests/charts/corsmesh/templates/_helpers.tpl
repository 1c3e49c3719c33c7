{{/*
Labels every object carries (kustomize's labels: in manifests/base).
*/}}
{{- define "corsmesh.labels" -}}
app.kubernetes.io/part-of: corsmesh
{{- end }}

{{/*
Labels of the webhook's Deployment, pods, Service and PodDisruptionBudget.
*/}}
{{- define "corsmesh.webhookLabels" -}}
app.kubernetes.io/component: webhook
app.kubernetes.io/name: corsmesh-webhook
{{ include "corsmesh.labels" . }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: repository@digest when a digest is
set (as kustomize's images: digest writes it), else repository:tag, the tag defaulting to
the chart's appVersion.
*/}}
{{- define "corsmesh.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end }}

{{/*
The serving certificate's Certificate, as cainjector's annotation names it.
*/}}
{{- define "corsmesh.injectCAFrom" -}}
{{ .Release.Namespace }}/corsmesh-webhook-cert
{{- end }}
