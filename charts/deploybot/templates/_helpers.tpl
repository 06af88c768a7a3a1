{{- define "deploybot.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "deploybot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "deploybot.labels" -}}
app.kubernetes.io/name: {{ include "deploybot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "deploybot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "deploybot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "deploybot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "deploybot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "deploybot.secretName" -}}
{{- default (include "deploybot.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/*
The directory of config.store.path: where the store's volume is mounted.
*/}}
{{- define "deploybot.storeDir" -}}
{{- $path := .Values.config.store.path | default "/var/lib/deploybot/deploybot.db" -}}
{{- $dir := dir $path -}}
{{- if or (not (isAbs $path)) (eq $dir "/") (eq $dir "/etc/deploybot") (eq $dir "/tmp") -}}
{{- fail (printf "config.store.path must be a file in a directory of its own, such as /var/lib/deploybot/deploybot.db (the store's volume is mounted at its directory); got %q" $path) -}}
{{- end -}}
{{- $dir -}}
{{- end -}}

{{/*
persistence.enabled puts the store on one ReadWriteOnce volume, which one
pod can hold: a second replica would never start (the volume attached
elsewhere, or bbolt's file lock held). Refused here rather than left to
hang a rollout.
*/}}
{{- define "deploybot.validate" -}}
{{- if and .Values.persistence.enabled (gt (int .Values.replicaCount) 1) -}}
{{- fail (printf "persistence.enabled=true keeps the store on one ReadWriteOnce volume, which only one pod can use, but replicaCount is %d: set replicaCount=1, or leave persistence.enabled=false (each replica's store is then an emptyDir, a cache rebuilt from the bucket)" (int .Values.replicaCount)) -}}
{{- end -}}
{{- end -}}
