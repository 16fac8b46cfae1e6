{{/*
Security wiring of every Mycel container, in one place: what each process is given to authenticate
clients and peers. The StatefulSet, the gateway Deployment and the helm test pod include these and
nothing else of it.

API tokens (auth.*): a Secret with
  tokens         the hashed token file (`NAME SCOPES SHA256` lines, services/core/src/auth/tokens.ts),
                 mounted at /etc/mycel/auth/tokens: the nodes' public gRPC API requires a token
                 from it (MYCEL_API_TOKENS_FILE);
  gateway-token  the gateway's own token (read,write), presented to the nodes for pins (MYCEL_API_TOKEN);
  write-token    a read,write token for applications: the helm test pod uploads with it;
  admin-token    an admin token for operators (cluster status, every scope); the helm test pod
                 reads /mycel/v1/status with it. Both are read from the Secret (NOTES.txt).
Node TLS (MYCEL_TLS_CERT_FILE, MYCEL_TLS_KEY_FILE, MYCEL_TLS_CA_FILE) belongs here too: a
certificate volume in mycel.security.volumes, its mount in mycel.security.volumeMounts, and the
three variables in both env templates.
*/}}

{{/* mycel.auth.secretName: the Secret with the API tokens (generated, or auth.existingSecret). */}}
{{- define "mycel.auth.secretName" -}}
{{- default (printf "%s-auth" (include "mycel.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* mycel.security.nodeEnv: env entries of a storage node. */}}
{{- define "mycel.security.nodeEnv" -}}
- name: MYCEL_API_TOKENS_FILE
  value: /etc/mycel/auth/tokens
{{- end -}}

{{/* mycel.security.gatewayEnv: env entries of a gateway. */}}
{{- define "mycel.security.gatewayEnv" -}}
- name: MYCEL_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "mycel.auth.secretName" . }}
      key: gateway-token
{{- end -}}

{{/* mycel.security.clientEnv: env entries of a client pod of the chart (helm test): MYCEL_TOKEN (write), MYCEL_ADMIN_TOKEN. */}}
{{- define "mycel.security.clientEnv" -}}
- name: MYCEL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "mycel.auth.secretName" . }}
      key: write-token
- name: MYCEL_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "mycel.auth.secretName" . }}
      key: admin-token
{{- end -}}

{{/* mycel.security.volumeMounts: mounts of a node or gateway container. */}}
{{- define "mycel.security.volumeMounts" -}}
- name: auth
  mountPath: /etc/mycel/auth
  readOnly: true
{{- end -}}

{{/* mycel.security.volumes: pod volumes behind mycel.security.volumeMounts (only the token file, not the plain tokens). */}}
{{- define "mycel.security.volumes" -}}
- name: auth
  secret:
    secretName: {{ include "mycel.auth.secretName" . }}
    defaultMode: 0440
    items:
      - key: tokens
        path: tokens
{{- end -}}
