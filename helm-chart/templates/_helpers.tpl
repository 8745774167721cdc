{{/* Chart name, overridable. */}}
{{- define "mogothrow77.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "mogothrow77.fullname" -}}
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

{{- define "mogothrow77.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels for every object. */}}
{{- define "mogothrow77.labels" -}}
helm.sh/chart: {{ include "mogothrow77.chart" . }}
app.kubernetes.io/name: {{ include "mogothrow77.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mogothrow77
{{- end }}

{{/*
Selector labels of the server pods. The component label keeps the migration
Job's pods out of the Service and the PodDisruptionBudget.
*/}}
{{- define "mogothrow77.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mogothrow77.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "mogothrow77.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mogothrow77.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mogothrow77.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Non-secret settings as MOGOTHROW77_* variables (one source for the ConfigMap
of the Deployment and the inline env of the migration Job, which runs before
the ConfigMap exists). Values are strings, read by the server as TOML-like values.
*/}}
{{- define "mogothrow77.settings" -}}
MOGOTHROW77_LISTEN: "0.0.0.0:8443"
MOGOTHROW77_STATE_DIR: {{ include "mogothrow77.stateDir" . | quote }}
MOGOTHROW77_LOG__FORMAT: {{ .Values.log.format | quote }}
MOGOTHROW77_LOG__LEVEL: {{ .Values.log.level | quote }}
MOGOTHROW77_TLS__ENABLED: {{ .Values.tls.enabled | toString | quote }}
MOGOTHROW77_TLS__HOSTNAMES: {{ .Values.tls.hostnames | toJson | quote }}
MOGOTHROW77_HTTP__HEADER_READ_TIMEOUT_SECS: {{ .Values.http.headerReadTimeoutSecs | int64 | toString | quote }}
MOGOTHROW77_HTTP__TLS_HANDSHAKE_TIMEOUT_SECS: {{ .Values.http.tlsHandshakeTimeoutSecs | int64 | toString | quote }}
MOGOTHROW77_HTTP__BODY_LIMIT_BYTES: {{ .Values.http.bodyLimitBytes | int64 | toString | quote }}
MOGOTHROW77_HTTP__DRAIN_DELAY_SECS: {{ .Values.http.drainDelaySecs | int64 | toString | quote }}
MOGOTHROW77_HTTP__SHUTDOWN_GRACE_SECS: {{ .Values.http.shutdownGraceSecs | int64 | toString | quote }}
MOGOTHROW77_HTTP__ALLOWED_HOSTS: {{ .Values.http.allowedHosts | toJson | quote }}
MOGOTHROW77_DATABASE__AUTO_MIGRATE: "false"
MOGOTHROW77_DATABASE__POOL_SIZE: {{ .Values.database.poolSize | int64 | toString | quote }}
MOGOTHROW77_DATABASE__CONNECT_TIMEOUT_SECS: {{ .Values.database.connectTimeoutSecs | int64 | toString | quote }}
{{- with .Values.metrics.allowAddresses }}
MOGOTHROW77_METRICS__ALLOW_ADDRESSES: {{ . | toJson | quote }}
{{- end }}
{{- end }}

{{/*
state_dir: a subdirectory of the emptyDir, created by the server itself
(mode 0750, its own).
*/}}
{{- define "mogothrow77.stateDir" -}}
/var/lib/mogothrow77/state
{{- end }}

{{/*
Paths of the files mounted from Secrets. Called with (dict "root" $ "migrate"
BOOL): only the migration Job (migrate true) gets the schema owner's
connection string; the server runs with auto-migrate off and never needs it.
*/}}
{{- define "mogothrow77.fileEnv" -}}
{{- $ := .root -}}
- name: MOGOTHROW77_DATABASE__URL_FILE
  value: /etc/mogothrow77/secrets/database-url/url
- name: MOGOTHROW77_SECRETS__KEY_FILE
  value: /etc/mogothrow77/secrets/keys/secrets.key
{{- if .migrate }}
- name: MOGOTHROW77_DATABASE__MIGRATION_URL_FILE
  value: /etc/mogothrow77/secrets/database-migration-url/url
{{- end }}
{{- if $.Values.database.caSecret.name }}
- name: MOGOTHROW77_DATABASE__CA_FILE
  value: /etc/mogothrow77/secrets/database-ca/ca.pem
{{- end }}
{{- end }}

{{- define "mogothrow77.databaseVolumeMounts" -}}
{{- $ := .root -}}
- name: state
  mountPath: /var/lib/mogothrow77
- name: database-url
  mountPath: /etc/mogothrow77/secrets/database-url
  readOnly: true
- name: keys
  mountPath: /etc/mogothrow77/secrets/keys
  readOnly: true
{{- if .migrate }}
- name: database-migration-url
  mountPath: /etc/mogothrow77/secrets/database-migration-url
  readOnly: true
{{- end }}
{{- if $.Values.database.caSecret.name }}
- name: database-ca
  mountPath: /etc/mogothrow77/secrets/database-ca
  readOnly: true
{{- end }}
{{- end }}

{{/*
Secret volumes: mode 0440 (decimal 288), owner root, group fsGroup. The
server refuses secret files that "others" can read, such as the default 0644.
*/}}
{{- define "mogothrow77.databaseVolumes" -}}
{{- $ := .root -}}
- name: state
  emptyDir: {}
- name: database-url
  secret:
    secretName: {{ $.Values.database.urlSecret.name }}
    defaultMode: 288 # 0440
    items:
      - key: {{ $.Values.database.urlSecret.key }}
        path: url
- name: keys
  secret:
    secretName: {{ $.Values.secrets.keySecret.name }}
    defaultMode: 288 # 0440
    items:
      - key: {{ $.Values.secrets.keySecret.key }}
        path: secrets.key
{{- if .migrate }}
- name: database-migration-url
  secret:
    secretName: {{ $.Values.database.migrationUrlSecret.name }}
    defaultMode: 288 # 0440
    items:
      - key: {{ $.Values.database.migrationUrlSecret.key }}
        path: url
{{- end }}
{{- if $.Values.database.caSecret.name }}
- name: database-ca
  secret:
    secretName: {{ $.Values.database.caSecret.name }}
    defaultMode: 288 # 0440
    items:
      - key: {{ $.Values.database.caSecret.key }}
        path: ca.pem
{{- end }}
{{- end }}

{{- define "mogothrow77.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "mogothrow77.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Scheduling settings shared by the server and the migration Job. */}}
{{- define "mogothrow77.scheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- /*
The server pods' scheduling: as above, and with several replicas and no
affinity of the site's own, spread over nodes where possible (a node's loss
takes one replica, not all).
*/ -}}
{{- define "mogothrow77.serverScheduling" -}}
{{- include "mogothrow77.scheduling" . }}
{{- if and (not .Values.affinity) (gt (int .Values.replicas) 1) }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "mogothrow77.selectorLabels" . | nindent 14 }}
{{- end }}
{{- end }}
