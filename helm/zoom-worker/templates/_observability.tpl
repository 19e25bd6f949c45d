{{/* PromQL label matchers of this release's series, as its ServiceMonitors scrape them: the
Prometheus Operator sets `job` to the Service's name and `namespace` to its namespace. */}}
{{- define "zoom-worker.workerSelector" -}}
{{- .Values.prometheusRule.workerSelector | default (printf "namespace=%q, job=%q" .Release.Namespace (include "zoom-worker.metricsServiceName" .)) }}
{{- end }}

{{- define "zoom-worker.serveSelector" -}}
{{- .Values.prometheusRule.serveSelector | default (printf "namespace=%q, job=%q" .Release.Namespace (include "zoom-worker.serveName" .)) }}
{{- end }}

{{/* One alerting rule; pass (dict "root" $ "name" "ZoomWorkerX" "expr" "..." "summary" "..."
"description" "..."). Its for, severity and on/off come from prometheusRule.alerts.<name>. */}}
{{- define "zoom-worker.alertRule" -}}
{{- $root := .root }}
{{- $settings := index $root.Values.prometheusRule.alerts .name }}
{{- if $settings.enabled }}
- alert: {{ .name }}
  expr: |-
    {{- .expr | trim | nindent 4 }}
  for: {{ $settings.for }}
  labels:
    severity: {{ $settings.severity }}
    {{- with $root.Values.prometheusRule.additionalLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    summary: {{ .summary | quote }}
    description: {{ .description | quote }}
    runbook_url: {{ printf "%s/%s.md" ($root.Values.prometheusRule.runbookBaseUrl | trimSuffix "/") .name | quote }}
{{- end }}
{{- end }}

{{/* KEDA's lag target per replica: keda.lagThreshold, or when 0 the backlog one replica
clears in keda.backlogSecondsPerReplica seconds at keda.eventsPerSecondPerReplica. */}}
{{- define "zoom-worker.kedaLagThreshold" -}}
{{- if .Values.keda.lagThreshold }}
{{- .Values.keda.lagThreshold | int }}
{{- else }}
{{- mul (.Values.keda.eventsPerSecondPerReplica | int) (.Values.keda.backlogSecondsPerReplica | int) }}
{{- end }}
{{- end }}
