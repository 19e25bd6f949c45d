{{/* Names, labels and shared pod parts. Resource names are cut to 63 characters (DNS labels). */}}

{{- define "zoom-worker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zoom-worker.fullname" -}}
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

{{/* The serve app's resources: "<fullname>-serve", still within 63 characters. */}}
{{- define "zoom-worker.serveName" -}}
{{- printf "%s-serve" (include "zoom-worker.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "zoom-worker.metricsServiceName" -}}
{{- printf "%s-metrics" (include "zoom-worker.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "zoom-worker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; selector labels are the stable subset (never change them in upgrades). */}}
{{- define "zoom-worker.labels" -}}
helm.sh/chart: {{ include "zoom-worker.chart" . }}
app.kubernetes.io/name: {{ include "zoom-worker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: talivo
{{- end }}

{{/* Selector labels; pass (dict "root" $ "component" "worker"). */}}
{{- define "zoom-worker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zoom-worker.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of a component's objects; pass (dict "root" $ "component" "worker"). */}}
{{- define "zoom-worker.componentLabels" -}}
{{ include "zoom-worker.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "zoom-worker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "zoom-worker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Hooks run before the chart's ServiceAccount exists, so the Job can only use one made beforehand. */}}
{{- define "zoom-worker.migrationServiceAccountName" -}}
{{- if .Values.migrations.serviceAccountName }}
{{- .Values.migrations.serviceAccountName }}
{{- else if not .Values.serviceAccount.create }}
{{- default "default" .Values.serviceAccount.name }}
{{- else }}
{{- print "default" }}
{{- end }}
{{- end }}

{{- define "zoom-worker.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "zoom-worker.configMapName" -}}
{{- include "zoom-worker.fullname" . }}
{{- end }}

{{- define "zoom-worker.defaultSecretName" -}}
{{- printf "%s-secrets" (include "zoom-worker.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/* Secret name for one entry of .Values.secrets; pass (dict "root" $ "entry" "databaseUrl"). */}}
{{- define "zoom-worker.secretName" -}}
{{- $entry := index .root.Values.secrets .entry }}
{{- $entry.existingSecret | default .root.Values.secrets.existingSecret | default (include "zoom-worker.defaultSecretName" .root) }}
{{- end }}

{{/* One env var read from a Secret; pass (dict "root" $ "env" "DATABASE_URL" "entry" "databaseUrl"). */}}
{{- define "zoom-worker.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "zoom-worker.secretName" . }}
      key: {{ (index .root.Values.secrets .entry).key }}
{{- end }}

{{- define "zoom-worker.usesSasl" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{/* Secrets both processes read (`run` and `serve`). */}}
{{- define "zoom-worker.serviceSecretEnv" -}}
{{ include "zoom-worker.secretEnv" (dict "root" . "env" "DATABASE_URL" "entry" "databaseUrl") }}
{{ include "zoom-worker.secretEnv" (dict "root" . "env" "TOKEN_ENCRYPTION_KEYS" "entry" "tokenEncryptionKeys") }}
{{ include "zoom-worker.secretEnv" (dict "root" . "env" "ZOOM_CLIENT_SECRET" "entry" "zoomClientSecret") }}
{{- end }}

{{/* The Kafka SASL password, with a SASL_* protocol only: `run` and `serve` (which publishes
meeting.changed and checks the same KAFKA_* settings) both read it. Empty without SASL. */}}
{{- define "zoom-worker.kafkaSecretEnv" -}}
{{- if include "zoom-worker.usesSasl" . -}}
{{ include "zoom-worker.secretEnv" (dict "root" . "env" "KAFKA_SASL_PASSWORD" "entry" "kafkaSaslPassword") }}
{{- end -}}
{{- end }}

{{/* Secrets every `run` container reads. */}}
{{- define "zoom-worker.workerSecretEnv" -}}
{{ include "zoom-worker.serviceSecretEnv" . }}
{{- with include "zoom-worker.kafkaSecretEnv" . }}
{{ . }}
{{- end }}
{{- end }}

{{/* Grace Kubernetes gives a stopping pod: the worker's own grace plus a margin, never less. */}}
{{- define "zoom-worker.terminationGracePeriodSeconds" -}}
{{- add (ceil .Values.worker.shutdownGraceSeconds | int) .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/* Checksums that roll the pods when their configuration changes. */}}
{{- define "zoom-worker.configChecksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if .Values.secrets.trial.create }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* Writable /tmp on a read-only root filesystem. */}}
{{- define "zoom-worker.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "zoom-worker.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Scheduling and pod-level settings shared by both Deployments; pass (dict "root" $ "component" "worker"). */}}
{{- define "zoom-worker.podScheduling" -}}
{{- $root := .root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
serviceAccountName: {{ include "zoom-worker.serviceAccountName" $root }}
automountServiceAccountToken: {{ $root.Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
{{- if $root.Values.topologySpreadConstraints }}
  {{- toYaml $root.Values.topologySpreadConstraints | nindent 2 }}
{{- else }}
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "zoom-worker.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end }}

{{/* Fail early, with the fix in the message, on combinations the schema cannot express. */}}
{{- define "zoom-worker.validate" -}}
{{- $partitions := int .Values.kafka.partitionCount }}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are both true: KEDA manages its own HorizontalPodAutoscaler, enable only one" }}
{{- end }}
{{- if and (not .Values.autoscaling.enabled) (not .Values.keda.enabled) (gt (int .Values.replicaCount) $partitions) }}
{{- fail (printf "replicaCount (%d) is more than kafka.partitionCount (%d): the extra consumers in the group would sit idle" (int .Values.replicaCount) $partitions) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) $partitions) }}
{{- fail (printf "autoscaling.minReplicas (%d) is more than kafka.partitionCount (%d)" (int .Values.autoscaling.minReplicas) $partitions) }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicas) $partitions) }}
{{- fail (printf "keda.minReplicas (%d) is more than kafka.partitionCount (%d)" (int .Values.keda.minReplicas) $partitions) }}
{{- end }}
{{- if and (include "zoom-worker.usesSasl" .) (not .Values.kafka.saslMechanism) }}
{{- fail (printf "kafka.saslMechanism is required with kafka.securityProtocol=%s (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)" .Values.kafka.securityProtocol) }}
{{- end }}
{{- end }}
