{{/* Names. */}}
{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name: <release>, or <release>-shoal. Kept
short (40) so that "<fullname>-edge-NN" pod names and the DNS names built
from them stay within limits. */}}
{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shoal.edgeName" -}}{{ include "shoal.fullname" . }}-edge{{- end }}
{{- define "shoal.peersService" -}}{{ include "shoal.fullname" . }}-peers{{- end }}
{{- define "shoal.originName" -}}{{ include "shoal.fullname" . }}-origin{{- end }}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Labels. */}}
{{- define "shoal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shoal.edgeSelectorLabels" -}}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/component: edge
{{- end }}

{{- define "shoal.originSelectorLabels" -}}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/component: origin
{{- end }}

{{/* The image reference. */}}
{{- define "shoal.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Storage type with the per-mode default resolved, checked against the mode. */}}
{{- define "shoal.storageType" -}}
{{- $t := .Values.storage.type }}
{{- if not $t }}
{{- $t = ternary "persistentVolumeClaim" "emptyDir" (eq .Values.mode "statefulset") }}
{{- end }}
{{- if and (eq $t "persistentVolumeClaim") (ne .Values.mode "statefulset") }}
{{- fail "storage.type persistentVolumeClaim needs mode statefulset (use hostPath or emptyDir for a DaemonSet)" }}
{{- end }}
{{- if and (eq $t "hostPath") (ne .Values.mode "daemonset") }}
{{- fail "storage.type hostPath needs mode daemonset (use persistentVolumeClaim for a StatefulSet)" }}
{{- end }}
{{- $t }}
{{- end }}

{{/* The DNS suffix of the edges' peer addresses: <peers svc>.<ns>.svc.<domain>. */}}
{{- define "shoal.peerDomain" -}}
{{- printf "%s.%s.svc.%s" (include "shoal.peersService" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{/* The membership mode, checked: gossip or static. */}}
{{- define "shoal.membership" -}}
{{- $m := .Values.membership.mode }}
{{- if not (has $m (list "gossip" "static")) }}
{{- fail (printf "membership.mode must be gossip or static, not %q" $m) }}
{{- end }}
{{- if and (eq $m "gossip") .Values.daemonset.staticPeers }}
{{- fail "daemonset.staticPeers needs membership.mode=static (with gossip the edges find each other through the peers Service)" }}
{{- end }}
{{- $m }}
{{- end }}

{{/* --join: the peers Service, which resolves to every edge pod. */}}
{{- define "shoal.join" -}}
{{- printf "%s:%d" (include "shoal.peerDomain" .) (int .Values.edge.ports.gossip) }}
{{- end }}

{{/* The Secret holding the gossip key, or nothing for source none. */}}
{{- define "shoal.gossipKeySecretName" -}}
{{- $k := .Values.membership.gossipKey }}
{{- if not (has $k.source (list "generate" "existingSecret" "none")) }}
{{- fail (printf "membership.gossipKey.source must be generate, existingSecret or none, not %q" $k.source) }}
{{- end }}
{{- if eq $k.source "existingSecret" }}
{{- required "membership.gossipKey.existingSecret.name is required when membership.gossipKey.source is existingSecret" $k.existingSecret.name }}
{{- else if eq $k.source "generate" }}
{{- include "shoal.fullname" . }}-gossip-key
{{- end }}
{{- end }}

{{/* --peers: StatefulSet: every pod's DNS name; DaemonSet: the static list. */}}
{{- define "shoal.peers" -}}
{{- if eq .Values.mode "statefulset" }}
{{- $peers := list }}
{{- range $i := until (int .Values.statefulset.replicas) }}
{{- $peers = append $peers (printf "%s-%d.%s:%d" (include "shoal.edgeName" $) $i (include "shoal.peerDomain" $) (int $.Values.edge.ports.peer)) }}
{{- end }}
{{- join "," $peers }}
{{- else }}
{{- join "," .Values.daemonset.staticPeers }}
{{- end }}
{{- end }}

{{/* --advertise: this pod's own entry in --peers, or its peer address in
gossip ($(VAR) is expanded by the kubelet). A StatefulSet's pods advertise
their stable DNS names, so that placement, which ranks members by these
addresses, stays the same when a pod comes back with a new IP. */}}
{{- define "shoal.advertise" -}}
{{- if eq .Values.mode "statefulset" }}
{{- printf "$(POD_NAME).%s:%d" (include "shoal.peerDomain" .) (int .Values.edge.ports.peer) }}
{{- else if .Values.daemonset.staticPeers }}
{{- printf "$(HOST_IP):%d" (int .Values.edge.ports.peer) }}
{{- else }}
{{- printf "$(POD_IP):%d" (int .Values.edge.ports.peer) }}
{{- end }}
{{- end }}

{{/* --origin. */}}
{{- define "shoal.originURL" -}}
{{- if .Values.edge.origin }}
{{- .Values.edge.origin }}
{{- else if .Values.referenceOrigin.enabled }}
{{- printf "http://%s.%s.svc.%s:%d" (include "shoal.originName" .) .Release.Namespace .Values.clusterDomain (int .Values.referenceOrigin.port) }}
{{- else }}
{{- fail "edge.origin is required: the base URL of your origin (or set referenceOrigin.enabled=true to try Shoal with its reference origin)" }}
{{- end }}
{{- end }}

{{/* The Secret holding the peer TLS files, and its keys. */}}
{{- define "shoal.tlsSecretName" -}}
{{- if eq .Values.tls.source "existingSecret" }}
{{- required "tls.existingSecret.name is required when tls.source is existingSecret" .Values.tls.existingSecret.name }}
{{- else }}
{{- include "shoal.fullname" . }}-tls
{{- end }}
{{- end }}

{{- define "shoal.tlsItems" -}}
{{- $keys := dict "ca" "ca.crt" "cert" "node.crt" "key" "node.key" }}
{{- if eq .Values.tls.source "existingSecret" }}
{{- $keys = dict "ca" .Values.tls.existingSecret.caKey "cert" .Values.tls.existingSecret.certKey "key" .Values.tls.existingSecret.keyKey }}
{{- else if eq .Values.tls.source "certManager" }}
{{- /* cert-manager's names, mapped to the names --tls-dir expects */}}
{{- $keys = dict "ca" "ca.crt" "cert" "tls.crt" "key" "tls.key" }}
{{- end -}}
- key: {{ $keys.ca }}
  path: ca.crt
- key: {{ $keys.cert }}
  path: node.crt
- key: {{ $keys.key }}
  path: node.key
{{- end }}

{{- define "shoal.adminTokenSecretName" -}}
{{- default (printf "%s-admin-token" (include "shoal.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{/* OTEL_* variables from values.otel, sorted. */}}
{{- define "shoal.otelEnv" -}}
{{- range $k := keys .Values.otel | sortAlpha }}
- name: {{ $k }}
  value: {{ index $.Values.otel $k | toString | quote }}
{{- end }}
{{- end }}

{{/* The hardened container securityContext (restricted Pod Security Standard). */}}
{{- define "shoal.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "shoal.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "shoal.edgeLabels" -}}
{{ include "shoal.labels" . }}
app.kubernetes.io/component: edge
{{- end }}

{{- define "shoal.originLabels" -}}
{{ include "shoal.labels" . }}
app.kubernetes.io/component: origin
{{- end }}

{{/* The zone init container's script (POSIX sh; busybox or dash). It reads
this pod's Node from the API with the projected ServiceAccount token and
writes the value of the zone label, or an empty line, to $ZONE_FILE. An API
error fails the container (and so the pod) with the reason in its log. */}}
{{- define "shoal.zoneScript" -}}
set -eu
sa="${SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}"
host="${KUBERNETES_SERVICE_HOST:?no KUBERNETES_SERVICE_HOST}"
case "$host" in *:*) host="[$host]" ;; esac
url="https://$host:${KUBERNETES_SERVICE_PORT:-443}/api/v1/nodes/$NODE_NAME"
if ! node=$(curl -sS --fail-with-body --max-time 10 --retry 5 --retry-connrefused \
    --cacert "$sa/ca.crt" -H "Authorization: Bearer $(cat "$sa/token")" "$url"); then
  echo "shoal-zone: cannot read Node $NODE_NAME from $url (does the ClusterRole allow get nodes?): $node" >&2
  exit 1
fi
zone=$(printf '%s\n' "$node" | tr ',{}' '\n\n\n' | awk -v k="\"$ZONE_LABEL\"" 'index($0, k) { sub(/^[^:]*:[ \t]*"/, ""); sub(/".*$/, ""); print; exit }')
printf '%s\n' "$zone" > "$ZONE_FILE.tmp"
mv "$ZONE_FILE.tmp" "$ZONE_FILE"
if [ -n "$zone" ]; then
  echo "shoal-zone: node $NODE_NAME is in zone $zone"
else
  echo "shoal-zone: node $NODE_NAME has no $ZONE_LABEL label: no zone"
fi
{{- end }}

{{/* --disk-cache: edge.diskCache, else 256MiB of RAM for memory storage,
else 80% of a PVC or emptyDir's size (an emptyDir over its size limit gets
the pod evicted; the binary's own default is a quarter of the free space it
sees, which is the node's whole disk for an emptyDir), else empty (the
binary's default). */}}
{{- define "shoal.diskCache" -}}
{{- $type := include "shoal.storageType" . }}
{{- if .Values.edge.diskCache }}
{{- .Values.edge.diskCache }}
{{- else if eq $type "memory" }}
{{- /* the binary's 1 GiB of RAM would not fit the default memory limit */}}
{{- "256MiB" }}
{{- else if and (has $type (list "persistentVolumeClaim" "emptyDir")) .Values.storage.size }}
{{- $n := regexFind "^[0-9]+" .Values.storage.size }}
{{- $mib := dict "Mi" 1 "Gi" 1024 "Ti" 1048576 }}
{{- $unit := trimPrefix $n .Values.storage.size }}
{{- if and $n (hasKey $mib $unit) }}
{{- printf "%dMiB" (div (mul (atoi $n) (index $mib $unit) 8) 10) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The client certificates' Secrets (clientTLS), in --tls-cert order: the
listed ones, then those of the chart's cert-manager Certificates. One per
line.
*/}}
{{- define "shoal.clientTLSSecrets" -}}
{{- range .Values.clientTLS.secrets }}
{{ . }}
{{- end }}
{{- range .Values.clientTLS.certificates }}
{{ .secretName }}
{{- end }}
{{- end }}
