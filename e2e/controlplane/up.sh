#!/usr/bin/env bash
# Start a real Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager) on random free ports on 127.0.0.1, with all state
# (certs, etcd data, logs) inside STATE_DIR. With SD_NODE=1 also
# kube-scheduler and one node (containerd + kubelet on a bridge of its own):
# see up-node.sh.
#
# Usage: up.sh STATE_DIR
#
# Components keep running in the background after this returns; stop them with
# down.sh STATE_DIR. On success STATE_DIR holds:
#   kubeconfig   admin kubeconfig (O=system:masters, certs embedded)
#   env          shell-sourceable exports: KUBECONFIG APISERVER_URL BIN_DIR
#                CA_CERT CA_KEY ETCD_URL KCM_URL *_PID CONTROLPLANE_STATE_DIR
#   pki/         CA (ca.crt/ca.key: may sign webhook serving certs), certs, keys
#   logs/        etcd.log kube-apiserver.log kube-controller-manager.log
#
# Environment:
#   BIN_DIR                 use these binaries instead of running build.sh
#   CONTROLPLANE_TIMEOUT    seconds to wait for readiness (default 120)
#   APISERVER_EXTRA_ARGS    extra kube-apiserver flags (word-split), e.g.
#                           "--feature-gates=Foo=true --v=4"
#   KCM_EXTRA_ARGS          extra kube-controller-manager flags (word-split)
#   SD_NODE                 1: also start kube-scheduler and a node (up-node.sh);
#                           adds NODE_NAME NODE_IP NODE_BRIDGE CONTAINERD_ADDRESS
#                           CTR CRICTL NODE_TEST_IMAGE ... to env
#   KUBELET_EXTRA_ARGS      extra kubelet flags (word-split), with SD_NODE=1
#   NODE_BUSYBOX            static busybox for the test image (default /bin/busybox)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
mkdir -p "$1"
state=$(cd "$1" && pwd)
timeout_s=${CONTROLPLANE_TIMEOUT:-120}

log() { printf 'up.sh: %s\n' "$*" >&2; }
now() { date +%s.%N; }
t0=$(now)

# Refuse to start over a control plane that is still running from STATE_DIR
# (a PID from its env whose command line names STATE_DIR).
if [[ -f $state/env ]]; then
  while read -r p; do
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") || continue
    if [[ $cmdline == *"$state/"* ]]; then
      log "a control plane from $state is still running; run down.sh $state first"
      exit 1
    fi
  done < <(sed -n 's/^export [A-Z]*_PID=\([0-9]*\)$/\1/p' "$state/env")
fi

if [[ -z ${BIN_DIR:-} ]]; then
  BIN_DIR=$("$here/build.sh" | tail -n 1)
fi
for b in etcd kube-apiserver kube-controller-manager kubectl; do
  [[ -x $BIN_DIR/$b ]] || { log "missing $BIN_DIR/$b (run build.sh)"; exit 1; }
done
command -v openssl >/dev/null ||
  { log "openssl is required (apt-get install -y openssl)"; exit 1; }

pki=$state/pki
logs=$state/logs
rm -rf "$pki" "$logs" "$state/etcd" "$state/apiserver-certs" "$state/env" "$state/kubeconfig"
mkdir -p "$pki" "$logs"

pids=()
# Stop whatever was started if anything below fails; logs stay for reading.
fail() {
  trap - EXIT INT TERM
  log "$*"
  for f in "$logs"/openssl.log "$logs"/etcd.log "$logs"/kube-apiserver.log "$logs"/kube-controller-manager.log \
    "$logs"/kube-scheduler.log "$logs"/containerd.log "$logs"/ctr.log "$logs"/kubelet.log "$logs"/registry.log; do
    [[ -f $f ]] || continue
    printf '\n===== last lines of %s =====\n' "$f" >&2
    tail -n 25 "$f" >&2
  done
  if [[ ${#pids[@]} -gt 0 || -n $(sed -n 's/^export NODE_BRIDGE=//p' "$state/env" 2>/dev/null) ]]; then
    "$here/down.sh" "$state" >&2 || true
  fi
  exit 1
}
trap 'fail "interrupted"' INT TERM
on_exit() {
  local rc=$?
  [[ $rc -eq 0 ]] || fail "failed (exit $rc)"
}
trap on_exit EXIT

# ---------------------------------------------------------------- ports
# A port is taken if any socket in /proc/net/tcp{,6} uses it locally (or
# remotely: a harmless false positive). Ports come from 20000-31999, below
# Linux's default ephemeral range (32768+), so outgoing connections made later
# cannot have grabbed them. There is a small race between choosing and binding;
# a component that then fails to bind shows it in its log.
used_ports=" " # ports already handed out (free_port runs in a subshell)
free_port() {
  local p hex i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    [[ $used_ports == *" $p "* ]] && continue
    printf -v hex ':%04X ' "$p"
    if ! grep -qi -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  log "no free port found"
  return 1
}
etcd_port=$(free_port); used_ports+="$etcd_port "
etcd_peer_port=$(free_port); used_ports+="$etcd_peer_port "
apiserver_port=$(free_port); used_ports+="$apiserver_port "
kcm_port=$(free_port)

etcd_url=http://127.0.0.1:$etcd_port
kcm_url=https://127.0.0.1:$kcm_port

cat >"$state/env" <<EOF
# Written by up.sh (still starting up until kubeconfig exists).
export CONTROLPLANE_STATE_DIR=$(printf '%q' "$state")
EOF

# The API server listens on loopback; with the node, on the node bridge's own
# address instead (up-bridge.sh), which pods on the bridge reach and which is
# as local to this host as loopback.
apiserver_ip=127.0.0.1
apiserver_san=""
if [[ ${SD_NODE:-0} == 1 ]]; then
  # shellcheck source=SCRIPTDIR/up-bridge.sh
  . "$here/up-bridge.sh"
  apiserver_ip=$node_ip
  apiserver_san=",IP:$node_ip"
fi
apiserver_url=https://$apiserver_ip:$apiserver_port

# ---------------------------------------------------------------- PKI
# ECDSA P-256 everywhere: fast to generate, accepted by Go, rustls and OpenSSL.
ossl() { openssl "$@" 2>>"$logs/openssl.log"; }
newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

newkey "$pki/ca.key"
ossl req -x509 -new -key "$pki/ca.key" -sha256 -days 3650 \
  -subj "/CN=secure-defaults-e2e-ca" -out "$pki/ca.crt"

# sign NAME SUBJECT EXTENSIONS: key + CA-signed cert in pki/NAME.{key,crt}.
sign() {
  local name=$1 subj=$2 ext=$3
  newkey "$pki/$name.key"
  ossl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
  printf '%s\n' "$ext" >"$pki/$name.ext"
  ossl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -sha256 -days 3650 -extfile "$pki/$name.ext" -out "$pki/$name.crt"
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'

# 10.0.0.1 is the first address of --service-cluster-ip-range below (the
# "kubernetes" Service's ClusterIP). Nothing ever sends traffic to it here.
sign apiserver "/CN=kube-apiserver" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1'"$apiserver_san"
# Serving cert for the controller manager (else it self-signs one), so its
# /healthz can be checked with a verifying client.
sign kcm-serving "/CN=kube-controller-manager" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'
sign admin "/O=system:masters/CN=secure-defaults-e2e-admin" "$client_ext"
# The RBAC bootstrap policy grants the user system:kube-controller-manager
# what the controller manager itself needs (it then uses one service account
# per controller, --use-service-account-credentials).
sign kcm "/CN=system:kube-controller-manager" "$client_ext"
# The apiserver's client cert towards kubelets (logs, exec); up-node.sh binds
# it to the system:kubelet-api-admin ClusterRole. The apiserver dials a kubelet
# by its InternalIP only: the default tries the node's hostname first, in DNS.
sign apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "$client_ext"

# Service-account token signing key pair.
newkey "$pki/sa.key"
ossl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
chmod 600 "$pki"/*.key

# kubeconfig FILE USER: certs embedded so the file works on its own.
kubeconfig() {
  local f=$1 user=$2 k=("$BIN_DIR/kubectl" --kubeconfig="$1")
  "${k[@]}" config set-cluster e2e --server="$apiserver_url" \
    --certificate-authority="$pki/ca.crt" --embed-certs=true >/dev/null
  "${k[@]}" config set-credentials "$user" --client-certificate="$pki/$user.crt" \
    --client-key="$pki/$user.key" --embed-certs=true >/dev/null
  "${k[@]}" config set-context e2e --cluster=e2e --user="$user" >/dev/null
  "${k[@]}" config use-context e2e >/dev/null
  chmod 600 "$f"
}
kubeconfig "$state/kcm.kubeconfig" kcm
# Written to a temp name and renamed once ready: a kubeconfig in STATE_DIR means
# the control plane came up.
kubeconfig "$state/kubeconfig.tmp" admin

# ---------------------------------------------------------------- start
# start NAME CMD...: run in the background in its own session (setsid, so a
# Ctrl-C on the caller's terminal does not reach it and down.sh can signal its
# whole process group), detached from stdin, output to logs/NAME.log.
# setsid execs in place (a background child is never a group leader), so $! is
# the component's own PID.
start() {
  local name=$1
  shift
  setsid "$@" </dev/null >"$logs/$name.log" 2>&1 &
  last_pid=$!
}

# --unsafe-no-fsync: throwaway test data; fsync dominates etcd latency on
# slow CI disks (kubernetes' own integration tests run etcd the same way).
start etcd "$BIN_DIR/etcd" \
  --name=e2e \
  --data-dir="$state/etcd" \
  --listen-client-urls="$etcd_url" \
  --advertise-client-urls="$etcd_url" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster="e2e=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync \
  --log-level=warn
etcd_pid=$last_pid
pids+=("$etcd_pid")
echo "export ETCD_PID=$etcd_pid" >>"$state/env"

deadline=$(($(date +%s) + timeout_s))
alive() { kill -0 "$1" 2>/dev/null || fail "$2 exited early"; }
in_time() { [[ $(date +%s) -lt $deadline ]] || fail "timed out after ${timeout_s}s waiting for $1"; }

# etcd listening (bash's /dev/tcp: no extra tool needed).
until (exec 3<>"/dev/tcp/127.0.0.1/$etcd_port") 2>/dev/null; do
  alive "$etcd_pid" etcd
  in_time etcd
  sleep 0.1
done

# --endpoint-reconciler-type=none: the apiserver would otherwise publish its
# address in the default/kubernetes Endpoints, and validation rejects
# loopback addresses there (error loop); with the node, nothing routes the
# Service's ClusterIP anyway (pods are given the address itself).
# --allow-privileged: like real clusters (kubeadm), so tests can submit
# privileged pods and see what Pod Security and the webhook do with them.
# PodSecurity, MutatingAdmissionWebhook and ValidatingAdmissionWebhook are in
# the default plugin set of 1.37; listed anyway to make the dependency explicit.
# --enable-aggregator-routing: there is no kube-proxy, so the apiserver calls
# a webhook's Service at one of its endpoints (a pod IP on the node's bridge);
# 1.37 uses this resolver for admission webhooks too (cmd/kube-apiserver/app/
# server.go: buildServiceResolver).
# shellcheck disable=SC2086 # APISERVER_EXTRA_ARGS is word-split on purpose
start kube-apiserver "$BIN_DIR/kube-apiserver" \
  --bind-address="$apiserver_ip" \
  --advertise-address="$apiserver_ip" \
  --secure-port="$apiserver_port" \
  --etcd-servers="$etcd_url" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --authorization-mode=Node,RBAC \
  --enable-admission-plugins=PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --cert-dir="$state/apiserver-certs" \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$pki/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --enable-aggregator-routing=true \
  ${APISERVER_EXTRA_ARGS:-}
apiserver_pid=$last_pid
pids+=("$apiserver_pid")
echo "export APISERVER_PID=$apiserver_pid" >>"$state/env"

kubectl=("$BIN_DIR/kubectl" --kubeconfig="$state/kubeconfig.tmp" --request-timeout=5s)
until [[ $("${kubectl[@]}" get --raw /readyz 2>/dev/null) == ok ]]; do
  alive "$apiserver_pid" kube-apiserver
  alive "$etcd_pid" etcd
  in_time "kube-apiserver /readyz"
  sleep 0.25
done
t_api=$(now)

# Leader election off: a single instance, and no lease wait at start.
# The signing cert/key let the csrsigning controller issue certificates for
# approved CertificateSigningRequests (e.g. webhook serving certs).
# shellcheck disable=SC2086 # KCM_EXTRA_ARGS is word-split on purpose
start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig="$state/kcm.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$kcm_port" \
  --tls-cert-file="$pki/kcm-serving.crt" \
  --tls-private-key-file="$pki/kcm-serving.key" \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" \
  --cluster-signing-key-file="$pki/ca.key" \
  --controllers='*' \
  --flex-volume-plugin-dir="$state/kcm-flex" \
  ${KCM_EXTRA_ARGS:-}
kcm_pid=$last_pid
pids+=("$kcm_pid")
echo "export KCM_PID=$kcm_pid" >>"$state/env"

# /healthz is on the controller manager's always-allowed paths. The admin
# credentials only keep kubectl from prompting for a password; the controller
# manager has no client CA configured and treats the request as anonymous.
kcm_kubectl=("$BIN_DIR/kubectl" --kubeconfig="$state/kubeconfig.tmp" --server="$kcm_url"
  --request-timeout=5s)
until [[ $("${kcm_kubectl[@]}" get --raw /healthz 2>/dev/null) == ok ]]; do
  alive "$kcm_pid" kube-controller-manager
  in_time "kube-controller-manager /healthz"
  sleep 0.25
done

# The serviceaccount controller creates the "default" ServiceAccount in every
# namespace; pods are rejected until it exists. Waiting for it in "default"
# proves the controllers are running, not just the health endpoint.
until "${kubectl[@]}" -n default get serviceaccount default >/dev/null 2>&1; do
  alive "$kcm_pid" kube-controller-manager
  in_time "the default ServiceAccount"
  sleep 0.25
done

t_cp=$(now)
if [[ ${SD_NODE:-0} == 1 ]]; then
  NODE_PAUSE_IMAGE=localhost/secure-defaults-e2e/pause:3.10
  NODE_TEST_IMAGE=localhost/secure-defaults-e2e/busybox:1
  NODE_BUSYBOX=${NODE_BUSYBOX:-/bin/busybox}
  # shellcheck source=SCRIPTDIR/up-node.sh
  . "$here/up-node.sh"
fi

cat >>"$state/env" <<EOF
export KUBECONFIG=$(printf '%q' "$state/kubeconfig")
export APISERVER_URL=$apiserver_url
export ETCD_URL=$etcd_url
export KCM_URL=$kcm_url
export BIN_DIR=$(printf '%q' "$BIN_DIR")
export CA_CERT=$(printf '%q' "$pki/ca.crt")
export CA_KEY=$(printf '%q' "$pki/ca.key")
EOF
mv "$state/kubeconfig.tmp" "$state/kubeconfig"
trap - EXIT INT TERM

t1=$(now)
secs() { awk "BEGIN{printf \"%.1f\", $2 - $1}"; }
log "apiserver ready after $(secs "$t0" "$t_api") s, control plane ready after $(secs "$t0" "$t_cp") s: $apiserver_url"
if [[ ${SD_NODE:-0} == 1 ]]; then
  log "scheduler and node $node_name Ready $(secs "$t_cp" "$t_node") s later, $(secs "$t0" "$t1") s in all (bridge $bridge, $node_ip)"
fi
log "use: . $state/env"
