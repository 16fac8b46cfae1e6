{{/* vim: set filetype=mustache: */}}

{{/* mycel.name: the chart name, or nameOverride. */}}
{{- define "mycel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
mycel.fullname: the prefix of every resource name: the release name (or fullnameOverride), so
node pods are <release>-node-<i> behind <release>-node-headless and the gateway is <release>-gateway.
*/}}
{{- define "mycel.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{/* mycel.node.fullname: the StatefulSet name; pods are <this>-<i>. */}}
{{- define "mycel.node.fullname" -}}
{{- printf "%s-node" (include "mycel.fullname" .) | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{/* mycel.node.headless: the headless Service that gives node pods stable DNS names. */}}
{{- define "mycel.node.headless" -}}
{{- printf "%s-node-headless" (include "mycel.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* mycel.gateway.fullname */}}
{{- define "mycel.gateway.fullname" -}}
{{- printf "%s-gateway" (include "mycel.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* mycel.chart: chart name and version for the helm.sh/chart label. */}}
{{- define "mycel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* mycel.labels: common labels. */}}
{{- define "mycel.labels" -}}
helm.sh/chart: {{ include "mycel.chart" . }}
app.kubernetes.io/name: {{ include "mycel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mycel
{{- end -}}

{{/* mycel.selectorLabels: labels that select one component; call with (dict "ctx" . "component" "node"). */}}
{{- define "mycel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mycel.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* mycel.componentLabels: common labels plus the component. */}}
{{- define "mycel.componentLabels" -}}
{{ include "mycel.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* mycel.image: repository:tag, the tag defaulting to appVersion. */}}
{{- define "mycel.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* mycel.serviceAccountName */}}
{{- define "mycel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mycel.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* mycel.writeQuorum: W, explicit or a majority of R (as the gateway computes it). */}}
{{- define "mycel.writeQuorum" -}}
{{- if kindIs "invalid" .Values.writeQuorum -}}
{{- add (div (int .Values.replication) 2) 1 -}}
{{- else -}}
{{- int .Values.writeQuorum -}}
{{- end -}}
{{- end -}}

{{/* mycel.node.maxUnavailable: explicit, or R - W (the most nodes that can be down with writes still reaching W). */}}
{{- define "mycel.node.maxUnavailable" -}}
{{- if kindIs "invalid" .Values.node.pdb.maxUnavailable -}}
{{- sub (int .Values.replication) (int (include "mycel.writeQuorum" .)) -}}
{{- else -}}
{{- int .Values.node.pdb.maxUnavailable -}}
{{- end -}}
{{- end -}}

{{/*
mycel.peers: every node's stable DNS name and gRPC port, comma-separated, the gateway's seeds
(MYCEL_PEERS): <node-statefulset>-<i>.<headless>.<namespace>.svc.cluster.local:<grpcPort>. The
gateway follows the membership of whichever of them answers.
*/}}
{{- define "mycel.peers" -}}
{{- $sts := include "mycel.node.fullname" . -}}
{{- $svc := include "mycel.node.headless" . -}}
{{- $peers := list -}}
{{- range $i := until (int .Values.node.replicas) -}}
{{- $peers = append $peers (printf "%s-%d.%s.%s.svc.cluster.local:%d" $sts $i $svc $.Release.Namespace (int $.Values.node.grpcPort)) -}}
{{- end -}}
{{- join "," $peers -}}
{{- end -}}

{{/*
mycel.otelEnv: the standard OpenTelemetry variables of a container when otel.endpoint is set
(nothing otherwise: without an endpoint the services do not load the SDK). Call with
(dict "ctx" . "component" "node" "hasPodName" true). service.instance.id is the pod name, so every
pod's spans are told apart; extra resource attributes come after and may override it. hasPodName:
the container already declares POD_NAME (the node does, for its advertise address), and a second
declaration of one variable is rejected by strict validators and confuses kubectl apply.
*/}}
{{- define "mycel.otelEnv" -}}
{{- $v := .ctx.Values.otel -}}
{{- if $v.endpoint }}
{{- if not .hasPodName }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_SERVICE_NAME
  value: {{ printf "mycel-%s" .component | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $v.protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $v.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $v.samplerArg | quote }}
{{- $attrs := list "service.instance.id=$(POD_NAME)" "k8s.pod.name=$(POD_NAME)" "k8s.namespace.name=$(POD_NAMESPACE)" (printf "service.namespace=%s" .ctx.Release.Name) }}
{{- range $k, $val := $v.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k $val) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end }}
{{- end -}}

{{/*
mycel.validateValues: cross-field rules the JSON schema cannot express (they mirror the
gateway's config checks). Every broken rule is listed, then rendering fails.
*/}}
{{- define "mycel.validateValues" -}}
{{- $messages := list -}}
{{- $messages = append $messages (include "mycel.validateValues.replication" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.writeQuorum" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.durability" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.nodePdb" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.gracePeriod" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.gatewayGrace" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.deadAfter" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.zone" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.autoscaling" .) -}}
{{- $messages = append $messages (include "mycel.validateValues.ingress" .) -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- fail (printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages)) -}}
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.replication" -}}
{{- if gt (int .Values.replication) (int .Values.node.replicas) -}}
replication: {{ .Values.replication }} copies need at least as many nodes, but node.replicas is {{ .Values.node.replicas }}
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.writeQuorum" -}}
{{- if and (not (kindIs "invalid" .Values.writeQuorum)) (gt (int .Values.writeQuorum) (int .Values.replication)) -}}
writeQuorum: {{ .Values.writeQuorum }} must not exceed replication ({{ .Values.replication }})
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.durability" -}}
{{- if hasPrefix "ec:" .Values.durability -}}
{{- $code := splitList "+" (trimPrefix "ec:" .Values.durability) -}}
{{- $shards := add (int (first $code)) (int (last $code)) -}}
{{- if gt (int $shards) (int .Values.node.replicas) -}}
durability: {{ .Values.durability }} places {{ $shards }} shards on distinct nodes, but node.replicas is {{ .Values.node.replicas }}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.nodePdb" -}}
{{- if and .Values.node.pdb.enabled (not (kindIs "invalid" .Values.node.pdb.maxUnavailable)) (gt (int .Values.node.pdb.maxUnavailable) (sub (int .Values.replication) 1)) -}}
node.pdb.maxUnavailable: {{ .Values.node.pdb.maxUnavailable }} would allow every copy of a block to be down; at most replication - 1 = {{ sub (int .Values.replication) 1 }}
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.gracePeriod" -}}
{{- if le (mul (int .Values.node.terminationGracePeriodSeconds) 1000) (int .Values.node.shutdownTimeoutMs) -}}
node.terminationGracePeriodSeconds: {{ .Values.node.terminationGracePeriodSeconds }}s must be longer than node.shutdownTimeoutMs ({{ .Values.node.shutdownTimeoutMs }} ms), or nodes are killed before they drain
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.gatewayGrace" -}}
{{- if le (int .Values.gateway.terminationGracePeriodSeconds) (int .Values.gateway.preStopSleepSeconds) -}}
gateway.terminationGracePeriodSeconds: {{ .Values.gateway.terminationGracePeriodSeconds }}s must be longer than gateway.preStopSleepSeconds ({{ .Values.gateway.preStopSleepSeconds }}s), which it includes
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.deadAfter" -}}
{{- if le (int64 .Values.node.membership.deadAfterMs) (mul (int .Values.node.terminationGracePeriodSeconds) 1000) -}}
node.membership.deadAfterMs: {{ int64 .Values.node.membership.deadAfterMs }} ms must be longer than node.terminationGracePeriodSeconds ({{ .Values.node.terminationGracePeriodSeconds }}s), or a node that is only restarting is declared dead and its data copied away
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.zone" -}}
{{- if and (eq .Values.node.zone.source "value") (not .Values.node.zone.value) -}}
node.zone.value: required when node.zone.source is "value"
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.autoscaling" -}}
{{- if and .Values.gateway.autoscaling.enabled (lt (int .Values.gateway.autoscaling.maxReplicas) (int .Values.gateway.autoscaling.minReplicas)) -}}
gateway.autoscaling.maxReplicas: {{ .Values.gateway.autoscaling.maxReplicas }} must be at least minReplicas ({{ .Values.gateway.autoscaling.minReplicas }})
{{- end -}}
{{- end -}}

{{- define "mycel.validateValues.ingress" -}}
{{- if and .Values.gateway.ingress.enabled (not .Values.gateway.ingress.hosts) -}}
gateway.ingress.hosts: at least one host is required when gateway.ingress.enabled is true
{{- end -}}
{{- end -}}

{{/* mycel.tls.secretName: the Secret with ca.crt, tls.crt and tls.key (given, or the chart's). */}}
{{- define "mycel.tls.secretName" -}}
{{- default (printf "%s-tls" (include "mycel.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}

{{/*
mycel.tls.serverName: the name every process checks in the certificate of the node it dials
(MYCEL_TLS_SERVER_NAME). Nodes are dialed by addresses that change (seeds resolve to pod IPs), so
one name is checked whatever the address; the generated certificate carries it.
*/}}
{{- define "mycel.tls.serverName" -}}
{{- default (printf "%s-node.%s.svc" (include "mycel.fullname" .) .Release.Namespace) .Values.tls.serverName -}}
{{- end -}}

{{/* mycel.auth.secretName: the Secret with the token file (given, or the chart's). */}}
{{- define "mycel.auth.secretName" -}}
{{- default (printf "%s-tokens" (include "mycel.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* mycel.auth.required: "true" when the gateway and the nodes' API require tokens. */}}
{{- define "mycel.auth.required" -}}
{{- if eq .Values.auth.mode "required" }}true{{ end -}}
{{- end -}}

{{/* mycel.securityEnv: TLS (and, for the nodes' and the gateway's APIs, token file) variables. */}}
{{- define "mycel.securityEnv" -}}
{{- if .Values.tls.enabled }}
- name: MYCEL_TLS_CERT_FILE
  value: /etc/mycel/tls/tls.crt
- name: MYCEL_TLS_KEY_FILE
  value: /etc/mycel/tls/tls.key
- name: MYCEL_TLS_CA_FILE
  value: /etc/mycel/tls/ca.crt
- name: MYCEL_TLS_SERVER_NAME
  value: {{ include "mycel.tls.serverName" . | quote }}
{{- end }}
{{- if include "mycel.auth.required" . }}
- name: MYCEL_API_TOKENS_FILE
  value: /etc/mycel/tokens/tokens
{{- end }}
{{- end -}}

{{/* mycel.securityVolumeMounts: the Secrets above, read-only (not subPath: updates reach the pods). */}}
{{- define "mycel.securityVolumeMounts" -}}
{{- if .Values.tls.enabled }}
- name: tls
  mountPath: /etc/mycel/tls
  readOnly: true
{{- end }}
{{- if include "mycel.auth.required" . }}
- name: tokens
  mountPath: /etc/mycel/tokens
  readOnly: true
{{- end }}
{{- end -}}

{{- define "mycel.securityVolumes" -}}
{{- if .Values.tls.enabled }}
- name: tls
  secret:
    secretName: {{ include "mycel.tls.secretName" . }}
    items:
      - { key: ca.crt, path: ca.crt }
      - { key: tls.crt, path: tls.crt }
      - { key: tls.key, path: tls.key }
{{- end }}
{{- if include "mycel.auth.required" . }}
- name: tokens
  secret:
    secretName: {{ include "mycel.auth.secretName" . }}
    items:
      - { key: tokens, path: tokens }
{{- end }}
{{- end -}}
