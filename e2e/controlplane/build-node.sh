#!/usr/bin/env bash
# Build (or reuse) the node binaries: kubelet and kube-scheduler (module k8s/),
# containerd + containerd-shim-runc-v2 + ctr (containerd/), runc (runc/), the
# CNI plugins bridge, host-local and loopback (cni/), crictl (cri-tools/) and
# the pause binary (C, from the kubernetes module's build/pause/linux/pause.c).
#
# Usage: build-node.sh [--print-dir]
#   (no args)    build if needed; the last line on stdout is the node dir
#   --print-dir  only print the node dir (does not build or check it)
#
# The node dir is ${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/node/<versions>
# with bin/ (kubelet kube-scheduler containerd containerd-shim-runc-v2 ctr runc
# crictl pause) and cni/ (bridge host-local loopback), keyed by every pinned
# version. About 20 minutes cold on 2 busy cores (see README.md): start it in
# the background. Needs go, gcc, pkg-config and libseccomp-dev (static
# libseccomp.a for runc). Build progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.env
. "$here/versions.env"
# shellcheck source=SCRIPTDIR/build-lib.sh
. "$here/build-lib.sh"

cache_root=${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/node
node_dir=$cache_root/${K8S_VERSION}-containerd${CONTAINERD_VERSION}-runc${RUNC_VERSION}-cni${CNI_PLUGINS_VERSION}-crictl${CRI_TOOLS_VERSION}
bins=(kubelet kube-scheduler containerd containerd-shim-runc-v2 ctr runc crictl pause)
cni_plugins=(bridge host-local loopback)

log() { printf 'build-node.sh: %s\n' "$*" >&2; }

if [[ ${1:-} == --print-dir ]]; then
  printf '%s\n' "$node_dir"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--print-dir]" >&2
  exit 2
fi

# True when every binary is in $1 and runs, and runc enforces seccomp (a runc
# without libseccomp would silently run RuntimeDefault pods unconfined).
node_ok() {
  local d=$1 b
  for b in "${bins[@]}"; do [[ -x $d/bin/$b ]] || return 1; done
  for b in "${cni_plugins[@]}"; do [[ -x $d/cni/$b ]] || return 1; done
  "$d/bin/kubelet" --version >/dev/null 2>&1 &&
    "$d/bin/kube-scheduler" --version >/dev/null 2>&1 &&
    "$d/bin/containerd" --version >/dev/null 2>&1 &&
    "$d/bin/ctr" --version >/dev/null 2>&1 &&
    "$d/bin/crictl" --version >/dev/null 2>&1 &&
    "$d/bin/runc" features 2>/dev/null | tr -d ' \n' | grep -q '"seccomp":{"enabled":true'
}

cache_hit "$node_dir" node_ok && exit 0

for tool in go gcc pkg-config; do
  command -v "$tool" >/dev/null || { log "$tool is not on PATH"; exit 1; }
done
pkg-config --exists libseccomp ||
  { log "libseccomp is missing (apt-get install -y libseccomp-dev pkg-config)"; exit 1; }

# versions.env and the go.mod files must name the same versions, or the cache
# key would lie about what is inside.
requires() { # DIR MODULE VERSION
  grep -Eq "^[[:space:]]*(require )?$2 $3( |$)" "$here/$1/go.mod" ||
    { log "$1/go.mod does not require $2 $3"; exit 1; }
}
requires k8s k8s.io/kubernetes "$K8S_VERSION"
requires containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
requires runc github.com/opencontainers/runc "$RUNC_VERSION"
requires cni github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION"
requires cri-tools sigs.k8s.io/cri-tools "$CRI_TOOLS_VERSION"

step() { # NAME CMD...: run and time one component
  local name=$1 t
  shift
  t=$(date +%s)
  log "building $name"
  "$@"
  log "$name took $(($(date +%s) - t)) s"
}

b_pause() {
  local src
  src=$(cd "$here/k8s" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  gcc -Os -Wall -Werror -static -DVERSION="$K8S_VERSION" -o "$tmp/bin/pause" "$src"
  strip "$tmp/bin/pause"
}

b_containerd() {
  (cd "$here/containerd" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    -o "$tmp/bin/" \
    github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr)
}

# cgo + libseccomp, linked statically (as runc's `make static` does, without
# the libpathrs tag, which needs a Rust library).
b_runc() {
  (cd "$here/runc" && CGO_ENABLED=1 go build -trimpath -buildmode=pie \
    -tags "seccomp netgo osusergo urfave_cli_no_docs" \
    -ldflags "-s -w -linkmode external -extldflags -static-pie" \
    -o "$tmp/bin/runc" github.com/opencontainers/runc)
  "$tmp/bin/runc" features | tr -d ' \n' | grep -q '"seccomp":{"enabled":true' ||
    { log "runc was built without seccomp support"; return 1; }
}

b_cni() {
  (cd "$here/cni" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION" \
    -o "$tmp/cni/" \
    github.com/containernetworking/plugins/plugins/main/bridge \
    github.com/containernetworking/plugins/plugins/ipam/host-local \
    github.com/containernetworking/plugins/plugins/main/loopback)
}

b_crictl() {
  (cd "$here/cri-tools" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRI_TOOLS_VERSION" \
    -o "$tmp/bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
}

# Same version variables as build.sh sets for the control plane.
b_kube() {
  (cd "$here/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$(kube_ldflags "$K8S_VERSION")" -o "$tmp/bin/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-scheduler)
}

# build TMP: every component into TMP/bin and TMP/cni (the b_* use $tmp).
build() {
  tmp=$1
  mkdir -p "$tmp/bin" "$tmp/cni"
  step pause b_pause
  step runc b_runc
  step cni b_cni
  step crictl b_crictl
  step containerd b_containerd
  step "kubelet + kube-scheduler" b_kube
}
cached_build "$node_dir" node_ok build
