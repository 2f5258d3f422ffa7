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

{{- define "shoal.checkLabels" -}}
{{ include "shoal.labels" . }}
app.kubernetes.io/component: check
{{- end }}

{{- define "shoal.checkSelectorLabels" -}}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/component: check
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

{{/*
What an edge is configured by, shared by the edge container, the check init
container (check.initContainer) and the `helm test` pod (check.test), so
that `shoal check` runs with exactly the edge's flags and environment and
can never drift from them: the flags after the subcommand
(shoal.edgeFlags), the environment (shoal.edgeEnv), and the volumes the
flags and environment name (shoal.configMounts, shoal.configVolumes).
*/}}
{{- define "shoal.edgeFlags" -}}
{{- $storage := include "shoal.storageType" . }}
{{- $gossip := eq (include "shoal.membership" .) "gossip" }}
{{- $gossipKey := "" }}
{{- if $gossip }}
{{- $gossipKey = include "shoal.gossipKeySecretName" . }}
{{- end }}
{{- $clientTLS := list }}
{{- if .Values.clientTLS.enabled }}
{{- $clientTLS = include "shoal.clientTLSSecrets" . | trim | splitList "\n" }}
{{- end -}}
- {{ printf "--listen=:%v" (.Values.edge.ports.http) | quote }}
- {{ printf "--peer-listen=:%v" (.Values.edge.ports.peer) | quote }}
- {{ printf "--admin-listen=:%v" (.Values.edge.ports.admin) | quote }}
- {{ printf "--advertise=%v" (include "shoal.advertise" .) | quote }}
{{- if $gossip }}
- {{ printf "--join=%v" (include "shoal.join" .) | quote }}
{{- /* Brackets make $(POD_IP) valid whether it is IPv4 or IPv6. */}}
- {{ printf "--gossip-listen=[$(POD_IP)]:%v" (.Values.edge.ports.gossip) | quote }}
- "--node-id=$(POD_NAME)"
{{- if $gossipKey }}
- --gossip-key-file=/etc/shoal/gossip/gossip.key
{{- end }}
{{- else }}
- {{ printf "--peers=%v" (include "shoal.peers" .) | quote }}
{{- end }}
- {{ printf "--origin=%v" (include "shoal.originURL" .) | quote }}
{{- if and .Values.containerdMirror.enabled (ne .Values.containerdMirror.registry "_default") }}
- {{ printf "--registry-names=%v" .Values.containerdMirror.registry | quote }}
{{- end }}
- --tls-dir=/etc/shoal/tls
{{- if $clientTLS }}
- {{ printf "--tls-listen=:%v" (.Values.edge.ports.https) | quote }}
{{- range $i, $_ := $clientTLS }}
- "--tls-cert=/etc/shoal/client-tls/{{ $i }}/tls.crt"
- "--tls-key=/etc/shoal/client-tls/{{ $i }}/tls.key"
{{- end }}
{{- if .Values.clientTLS.http3.enabled }}
- {{ printf "--h3-listen=:%v" (.Values.edge.ports.https) | quote }}
- {{ printf "--h3-advertise-port=%v" (.Values.service.httpsPort) | quote }}
{{- end }}
{{- end }}
{{- if ne $storage "memory" }}
- {{ printf "--data-dir=%v" (.Values.storage.path) | quote }}
{{- end }}
{{- with include "shoal.diskCache" . }}
- {{ printf "--disk-cache=%v" (.) | quote }}
{{- end }}
- {{ printf "--memory-cache=%v" (.Values.edge.memoryCache) | quote }}
- {{ printf "--segment-size=%v" (.Values.edge.segmentSize) | quote }}
- {{ printf "--shards=%v" (.Values.edge.shards) | quote }}
- {{ printf "--scrub-rate=%v" (.Values.edge.scrubRate) | quote }}
- {{ printf "--origin-concurrency=%v" (.Values.edge.originConcurrency) | quote }}
- {{ printf "--origin-timeout=%v" (.Values.edge.originTimeout) | quote }}
{{- with .Values.edge.peerUploadLimit }}
- {{ printf "--peer-upload-limit=%v" . | quote }}
{{- end }}
{{- with .Values.edge.originLimit }}
- {{ printf "--origin-limit=%v" . | quote }}
{{- end }}
- {{ printf "--drain-delay=%v" (.Values.edge.drainDelay) | quote }}
- {{ printf "--drain-timeout=%v" (.Values.edge.drainTimeout) | quote }}
- {{ printf "--log-format=%v" (.Values.edge.logFormat) | quote }}
- {{ printf "--log-level=%v" (.Values.edge.logLevel) | quote }}
{{- /* A SHOAL_* variable of extraEnv that names no flag stops the edge. */}}
- --strict-env
{{- range .Values.edge.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{- define "shoal.edgeEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
{{- if .Values.adminToken.enabled }}
- name: SHOAL_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "shoal.adminTokenSecretName" . }}
      key: {{ .Values.adminToken.secretKey }}
{{- end }}
{{- if .Values.zone.enabled }}
# --zone-file: the zone the init container found.
- name: SHOAL_ZONE_FILE
  value: /etc/shoal/zone/zone
{{- end }}
{{- if not (hasKey .Values.otel "OTEL_RESOURCE_ATTRIBUTES") }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name={{ .Release.Namespace }}"
{{- end }}
{{- with .Values.otel }}
{{- include "shoal.otelEnv" $ | nindent 0 }}
{{- end }}
{{- with .Values.edge.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- end }}

{{/* The mounts of what the flags name: peer TLS, client TLS, the gossip
key, the zone file. Read-only. */}}
{{- define "shoal.configMounts" -}}
{{- $gossipKey := "" }}
{{- if eq (include "shoal.membership" .) "gossip" }}
{{- $gossipKey = include "shoal.gossipKeySecretName" . }}
{{- end -}}
- name: tls
  mountPath: /etc/shoal/tls
  readOnly: true
{{- /* Directories, not subPath: the kubelet updates them when cert-manager renews. */}}
{{- if .Values.clientTLS.enabled }}
{{- range $i, $_ := include "shoal.clientTLSSecrets" . | trim | splitList "\n" }}
- name: client-tls-{{ $i }}
  mountPath: /etc/shoal/client-tls/{{ $i }}
  readOnly: true
{{- end }}
{{- end }}
{{- if $gossipKey }}
- name: gossip-key
  mountPath: /etc/shoal/gossip
  readOnly: true
{{- end }}
{{- if .Values.zone.enabled }}
- name: zone
  mountPath: /etc/shoal/zone
  readOnly: true
{{- end }}
{{- end }}

{{/* The volumes of shoal.configMounts, and with zones the API token of the
zone init container. */}}
{{- define "shoal.configVolumes" -}}
{{- $gossipKey := "" }}
{{- if eq (include "shoal.membership" .) "gossip" }}
{{- $gossipKey = include "shoal.gossipKeySecretName" . }}
{{- end -}}
- name: tls
  secret:
    secretName: {{ include "shoal.tlsSecretName" . }}
    defaultMode: 0440
    items:
      {{- include "shoal.tlsItems" . | nindent 6 }}
{{- if .Values.clientTLS.enabled }}
{{- range $i, $name := include "shoal.clientTLSSecrets" . | trim | splitList "\n" }}
- name: client-tls-{{ $i }}
  secret:
    secretName: {{ $name }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- if $gossipKey }}
- name: gossip-key
  secret:
    secretName: {{ $gossipKey }}
    defaultMode: 0440
    items:
      - key: {{ ternary .Values.membership.gossipKey.existingSecret.key "gossip.key" (eq .Values.membership.gossipKey.source "existingSecret") }}
        path: gossip.key
{{- end }}
{{- if .Values.zone.enabled }}
- name: zone
  emptyDir:
    sizeLimit: 1Mi
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
{{- end }}
{{- end }}

{{/* The zone init container (zone.enabled): writes /etc/shoal/zone/zone. */}}
{{- define "shoal.zoneInitContainer" -}}
- name: zone
  image: "{{ .Values.zone.image.repository }}:{{ .Values.zone.image.tag }}"
  imagePullPolicy: {{ .Values.zone.image.pullPolicy }}
  command: ["sh", "-c"]
  args:
    - |
      {{- include "shoal.zoneScript" . | nindent 6 }}
  env:
    - name: NODE_NAME
      valueFrom:
        fieldRef:
          fieldPath: spec.nodeName
    - name: ZONE_LABEL
      value: {{ .Values.zone.label | quote }}
    - name: ZONE_FILE
      value: /etc/shoal/zone/zone
  securityContext:
    {{- include "shoal.containerSecurityContext" . | nindent 4 }}
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: zone
      mountPath: /etc/shoal/zone
    - name: kube-api-access
      mountPath: /var/run/secrets/kubernetes.io/serviceaccount
      readOnly: true
{{- end }}

{{/* A container running `shoal check` with the edge's flags and
environment, and one flag of the check's own (.flag): --remote-warnings
in the init container, --outside in the `helm test` pod. Arguments: root
(the chart's context), name, flag. */}}
{{- define "shoal.checkContainer" -}}
{{- $ := .root -}}
- name: {{ .name }}
  image: {{ include "shoal.image" $ | quote }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  args:
    - check
    {{- include "shoal.edgeFlags" $ | nindent 4 }}
    - {{ .flag }}
  env:
    {{- include "shoal.edgeEnv" $ | nindent 4 }}
  {{- with $.Values.check.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "shoal.containerSecurityContext" $ | nindent 4 }}
  volumeMounts:
    {{- include "shoal.configMounts" $ | nindent 4 }}
{{- end }}

{{- /*
The init container that writes containerd's hosts.toml on the node
(containerdMirror): `shoal containerd-hosts`, as root (the node's
/etc/containerd/certs.d is root's), with every capability dropped.
*/}}
{{- define "shoal.containerdHostsContainer" -}}
{{- $m := .Values.containerdMirror -}}
{{- if ne .Values.mode "daemonset" }}
{{- fail "containerdMirror.enabled needs mode daemonset (one edge per node, the mirror of its node's containerd)" }}
{{- end }}
{{- if not .Values.daemonset.clientHostPort }}
{{- fail "containerdMirror.enabled needs daemonset.clientHostPort: containerd, on the node, reaches its edge at <node IP>:<clientHostPort>" }}
{{- end -}}
- name: containerd-hosts
  image: {{ include "shoal.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - containerd-hosts
    - --dir=/host/containerd-certs.d
    - {{ printf "--registry=%v" (required "containerdMirror.registry is required: the registry's name in image references (e.g. registry.example.com:5000), or _default" $m.registry) | quote }}
    {{- with $m.server }}
    - {{ printf "--server=%v" . | quote }}
    {{- end }}
    - {{ printf "--mirror=http://$(HOST_IP):%v" .Values.daemonset.clientHostPort | quote }}
    {{- if $m.resolve }}
    - --resolve
    {{- end }}
  env:
    - name: HOST_IP
      valueFrom:
        fieldRef:
          fieldPath: status.hostIP
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: false
    runAsUser: 0
    capabilities:
      drop: [ALL]
    seccompProfile:
      type: RuntimeDefault
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: containerd-certs
      mountPath: /host/containerd-certs.d
{{- end }}
