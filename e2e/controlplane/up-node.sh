# shellcheck shell=bash
# The node part of up.sh (sourced by it when SD_NODE=1, after the control
# plane is ready; uses its helpers: log, fail, free_port, sign, kubeconfig,
# start, alive, in_time, and its variables state, pki, logs, BIN_DIR).
#
# Starts kube-scheduler, then one node on the bridge of up-bridge.sh
# (node_name, bridge, subnet, node_ip): containerd (with runc and the CNI
# plugins) and a kubelet registered with its own system:node:<name>
# credentials. Everything lives in STATE_DIR/n except what
# the kubelet and containerd hard-code on the host; those paths are recorded
# in n/host-paths when this run creates them, and down-node.sh removes them.
#
# Pods get addresses on the bridge, with a route to their own /24 only: no
# NAT, no default route. Nothing is pulled from outside: containerd's registry
# config sends every pull to a closed loopback port, except pulls from the
# suite's own registry on loopback (e2e/registry/up.sh), and the images the
# node needs (pause, busybox) are imported from local OCI archives. The node carries
# the taint e2e.secure-defaults.io/node=runtime:NoSchedule, so only pods that
# tolerate it (the runtime tests') land on it; the other scenarios' pods stay
# Pending as before.

NODE_DIR=$("$here/build-node.sh" | tail -n 1)
node=$state/n
node_bin=$NODE_DIR/bin
used_ports+="$kcm_port "
mkdir -p "$node"/{etc,run,cni/net.d,images} "$node/etc/certs.d/_default"
# A user-namespaced pod's processes (hostUsers: false) run as an unprivileged
# host uid, and runc sets up their rootfs under containerd's state dir as
# that uid: every directory on the way must be searchable (mktemp made
# STATE_DIR 0700; otherwise: "remount-propagation ... permission denied").
chmod 711 "$state"
mkdir -p -m 711 "$node/containerd"

# Unix socket paths are limited to 107 bytes; containerd's shim sockets are
# SOCKET_DIR/<64 hex>.
(( ${#node} + 72 < 108 )) || fail "state dir path too long for unix sockets: $state (use a shorter TMPDIR)"

# ---------------------------------------------------------------- scheduler
# Started before the node lock is taken, so it does not hold it.
sign scheduler "/CN=system:kube-scheduler" "$client_ext"
sign scheduler-serving "/CN=kube-scheduler" 'basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'
chmod 600 "$pki"/*.key
kubeconfig "$state/scheduler.kubeconfig" scheduler
sched_port=$(free_port); used_ports+="$sched_port "
start kube-scheduler "$node_bin/kube-scheduler" \
  --kubeconfig="$state/scheduler.kubeconfig" \
  --authentication-kubeconfig="$state/scheduler.kubeconfig" \
  --authorization-kubeconfig="$state/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$sched_port" \
  --tls-cert-file="$pki/scheduler-serving.crt" \
  --tls-private-key-file="$pki/scheduler-serving.key" \
  --leader-elect=false
sched_pid=$last_pid
pids+=("$sched_pid")
echo "export SCHEDULER_PID=$sched_pid" >>"$state/env"

# What the apiserver may do on the kubelet API (logs, exec, ...), as kubeadm
# grants it.
"${kubectl[@]}" create clusterrolebinding e2e:apiserver-kubelet-client \
  --clusterrole=system:kubelet-api-admin --user=kube-apiserver-kubelet-client >/dev/null ||
  fail "cannot bind the apiserver's kubelet client"

# ---------------------------------------------------------------- host lock
# One node per host: the kubelet and containerd use host-global paths
# (/var/lib/kubelet/device-plugins, /var/lib/cni, the kubepods cgroups).
# The lock fd is inherited by containerd, its shims and the kubelet, so it is
# held until the last of them is gone, even after a crash of this script.
node_lock=${SD_NODE_LOCK:-/run/lock/secure-defaults-e2e-node.lock}
mkdir -p "$(dirname "$node_lock")"
exec 8>"$node_lock"
if ! flock -n 8; then
  log "waiting for $node_lock (another e2e node on this host) at most ${SD_NODE_LOCK_TIMEOUT:-600} s"
  if ! flock -w "${SD_NODE_LOCK_TIMEOUT:-600}" 8; then
    exec 8>&-
    fail "another e2e node still runs on this host (lock $node_lock held); waited ${SD_NODE_LOCK_TIMEOUT:-600}s"
  fi
  # The node's own start-up gets the full CONTROLPLANE_TIMEOUT.
  deadline=$(($(date +%s) + timeout_s))
fi
echo "export NODE_LOCK=$(printf '%q' "$node_lock")" >>"$state/env"

# Host paths that the kubelet, containerd or the CNI plugins may create
# outside STATE_DIR; the ones missing now are recorded and removed at teardown.
host_candidates=(/var/lib/kubelet /var/log/containers /var/log/pods /var/lib/cni
  /usr/libexec/kubernetes /etc/cni /opt/cni /run/netns /etc/kubernetes)
: >"$node/host-paths"
for p in "${host_candidates[@]}"; do
  [[ -e $p ]] || echo "$p" >>"$node/host-paths"
done
# The kubepods cgroups (cgroupfs driver, cgroupsPerQOS), v1 and v2 alike.
for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  [[ -f $d/cgroup.procs && ! -e $d/kubepods ]] && echo "${d%/}/kubepods" >>"$node/cgroups"
done
touch "$node/cgroups"
# The bridge plugin turns on IPv4 forwarding for its gateway; put it back after.
echo "$(cat /proc/sys/net/ipv4/ip_forward)" >"$node/ip_forward"
ip netns list 2>/dev/null | sort >"$node/netns.before" || true

# ---------------------------------------------------------------- certs
# The kubelet's client cert puts it under the Node authorizer and
# NodeRestriction; its serving cert is signed by the cluster CA, which the
# apiserver checks (--kubelet-certificate-authority).
sign kubelet "/O=system:nodes/CN=system:node:$node_name" "$client_ext"
sign kubelet-serving "/CN=$node_name" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:$node_ip,DNS:$node_name"
chmod 600 "$pki"/*.key
kubeconfig "$node/kubelet.kubeconfig" kubelet

# ---------------------------------------------------------------- images
# pause (sandbox) and busybox (tests) as local OCI archives: imported into
# containerd below, and busybox also seeds the registry.
python3 "$here/mkimage.py" pause "$node/images/pause.tar" "$NODE_PAUSE_IMAGE" "$node_bin/pause" ||
  fail "cannot build the pause image"
python3 "$here/mkimage.py" busybox "$node/images/busybox.tar" "$NODE_TEST_IMAGE" "$NODE_BUSYBOX" ||
  fail "cannot build the busybox image from $NODE_BUSYBOX"

# ---------------------------------------------------------------- registry
# The test registry (e2e/registry) on loopback, seeded with busybox and the
# suite's image archives (when built), for the tests that pull and the
# image-lookup tests. It writes certs.d/$SD_REGISTRY/hosts.toml, so it runs
# before containerd_config, which keeps the files already there: containerd
# reaches it over HTTP; every other registry still goes to the closed port.
# shellcheck source=SCRIPTDIR/../registry/up.sh
. "$here/../registry/up.sh"

# ---------------------------------------------------------------- containerd
# shellcheck source=SCRIPTDIR/containerd.sh
. "$here/containerd.sh"
containerd_config "$node" "$node_bin" "$NODE_DIR/cni" "$NODE_PAUSE_IMAGE"
sock=$node/run/containerd.sock
# routes: only the pods' own /24, no default route; ipMasq off: no NAT.
cat >"$node/cni/net.d/10-e2e.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "e2e-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$node/cni-ipam",
        "ranges": [[{"subnet": "$subnet.0/24", "gateway": "$node_ip"}]],
        "routes": [{"dst": "$subnet.0/24"}]
      }
    }
  ]
}
EOF

# The shim inherits containerd's environment; its runc is the one from the
# config, never one on PATH.
start containerd "$node_bin/containerd" --config "$node/etc/containerd.toml"
containerd_pid=$last_pid
pids+=("$containerd_pid")
echo "export CONTAINERD_PID=$containerd_pid" >>"$state/env"
containerd_wait "$node_bin/ctr" "$sock" "$containerd_pid" $((deadline - $(date +%s))) ||
  fail "containerd exited or did not answer on $sock"
ctr=("$node_bin/ctr" -a "$sock" -n k8s.io)

# The images: pause (sandbox) and busybox (tests), from the archives above.
for img in pause busybox; do
  "${ctr[@]}" images import "$node/images/$img.tar" >>"$logs/ctr.log" 2>&1 ||
    fail "ctr images import $img failed (see $logs/ctr.log)"
done

# ---------------------------------------------------------------- kubelet
kubelet_port=$(free_port); used_ports+="$kubelet_port "
kubelet_healthz_port=$(free_port); used_ports+="$kubelet_healthz_port "
cat >"$node/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 hosts need this since 1.35; harmless on v2.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
volumePluginDir: $node/kubelet-plugins
podLogsDir: $node/pod-logs
# The API server reaches the kubelet (logs, exec) on the node IP, the
# bridge's own address on this host; healthz stays on loopback.
address: $node_ip
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz_port
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
# The production shape: client certs from the cluster CA, bearer tokens via
# TokenReview, every request authorised by SubjectAccessReview.
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $pki/ca.crt
authorization:
  mode: Webhook
registerNode: true
registerWithTaints:
- key: e2e.secure-defaults.io/node
  value: runtime
  effect: NoSchedule
failSwapOn: false
# Without CAP_SYS_RESOURCE the kubelet cannot go below 0.
oomScoreAdj: 0
# Pods get no nameserver: nothing may leave the host.
resolvConf: ""
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
serializeImagePulls: false
# The suite imports its own images (localhost/...) and also pulls the same
# ones from its registry. Once the kubelet has pulled an image, it checks
# every pod's credentials for it (KubeletEnsureSecretPulledImages), also a
# pod that names the imported copy: "not present with pull policy of Never".
# Imported localhost/ names are exempt; registry pulls stay checked.
imagePullCredentialsVerificationPolicy: NeverVerifyAllowlistedImages
preloadedImagesVerificationAllowlist: ["localhost/*"]
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
cgroupsPerQOS: true
enforceNodeAllocatable: ["pods"]
protectKernelDefaults: false
makeIPTablesUtilChains: false
EOF

start kubelet "$node_bin/kubelet" \
  --config="$node/etc/kubelet.yaml" \
  --kubeconfig="$node/kubelet.kubeconfig" \
  --root-dir="$node/kubelet" \
  --cert-dir="$node/kubelet-pki" \
  --hostname-override="$node_name" \
  --node-ip="$node_ip" \
  ${KUBELET_EXTRA_ARGS:-}
kubelet_pid=$last_pid
pids+=("$kubelet_pid")
echo "export KUBELET_PID=$kubelet_pid" >>"$state/env"
# From here on the lock is held by containerd and the kubelet.
exec 8>&-

sched_kubectl=("$BIN_DIR/kubectl" --kubeconfig="$state/kubeconfig.tmp" --server="https://127.0.0.1:$sched_port"
  --request-timeout=5s)
until [[ $("${sched_kubectl[@]}" get --raw /healthz 2>/dev/null) == ok ]]; do
  alive "$sched_pid" kube-scheduler
  in_time "kube-scheduler /healthz"
  sleep 0.25
done

ready='{.status.conditions[?(@.type=="Ready")].status}'
until [[ $("${kubectl[@]}" get node "$node_name" -o jsonpath="$ready" 2>/dev/null) == True ]]; do
  alive "$kubelet_pid" kubelet
  alive "$containerd_pid" containerd
  in_time "node $node_name Ready"
  sleep 0.25
done
t_node=$(now)

cat >>"$state/env" <<EOF
export NODE_DIR=$(printf '%q' "$NODE_DIR")
export CONTAINERD_ADDRESS=$(printf '%q' "$sock")
export CTR=$(printf '%q' "$node_bin/ctr")
export CRICTL=$(printf '%q' "$node_bin/crictl")
export CONTAINER_RUNTIME_ENDPOINT=unix://$(printf '%q' "$sock")
export NODE_TEST_IMAGE=$NODE_TEST_IMAGE
export NODE_TAINT=e2e.secure-defaults.io/node=runtime:NoSchedule
EOF
