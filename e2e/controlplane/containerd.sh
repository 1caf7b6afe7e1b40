# shellcheck shell=bash
# containerd as the e2e suite runs it, for the node (up-node.sh) and for the
# image checks (e2e/images/verify.sh): one configuration, one readiness wait.
# Sourced; defines functions only.

# containerd_config DIR BIN_DIR CNI_BIN_DIR [SANDBOX_IMAGE]: write
# DIR/etc/containerd.toml, containerd 2.4 (config schema 4). Everything lives
# under DIR: root, state and temp (DIR/containerd), the socket
# DIR/run/containerd.sock, shim sockets (DIR/run/s: keep DIR short, unix
# socket paths end at 107 bytes), runc's root (DIR/runc), the CNI config
# (DIR/cni/net.d) and network namespaces; the host's /etc/containerd is never
# read. Nothing is pulled: DIR/etc/certs.d/_default/hosts.toml sends every
# pull, of any registry, to a closed port on loopback, unless the caller
# wrote that file first. SANDBOX_IMAGE is pinned (never pulled nor
# collected) when given.
containerd_config() {
  local dir=$1 bin=$2 cni_bin=$3 sock=$1/run/containerd.sock pinned=""
  [[ -z ${4:-} ]] || pinned="sandbox = \"$4\""
  mkdir -p "$dir/etc/certs.d/_default" "$dir/run" "$dir/cni/net.d"
  [[ -e $dir/etc/certs.d/_default/hosts.toml ]] ||
    echo 'server = "http://127.0.0.1:9"' >"$dir/etc/certs.d/_default/hosts.toml"
  cat >"$dir/etc/containerd.toml" <<EOF
version = 4
root = "$dir/containerd/root"
state = "$dir/containerd/state"
temp = "$dir/containerd/tmp"
imports = []
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = "$sock"
  [plugins.'io.containerd.server.v1.ttrpc']
    address = "$sock.ttrpc"
  [plugins.'io.containerd.server.v1.debug']
    address = ""
  [plugins.'io.containerd.server.v1.metrics']
    address = ""
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = "$dir/run/s"
  [plugins.'io.containerd.internal.v1.opt']
    path = "$dir/containerd/opt"
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
    socket_path = "$dir/run/nri.sock"

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      $pinned
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "$dir/etc/certs.d"

  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    # Without CAP_SYS_RESOURCE (some VMs) runc init cannot lower
    # oom_score_adj: clamp it to containerd's own instead of failing.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$bin/runc"
          Root = "$dir/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["$cni_bin"]
      conf_dir = "$dir/cni/net.d"
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
EOF
}

# containerd_wait CTR SOCK PID SECONDS: until containerd (PID) answers on
# SOCK, at most SECONDS. 1 when it exited or did not answer in time.
containerd_wait() {
  local ctr=$1 sock=$2 pid=$3 deadline=$(($(date +%s) + $4))
  until "$ctr" -a "$sock" version >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ $(date +%s) -lt $deadline ]] || return 1
    sleep 0.1
  done
}
