#!/usr/bin/env bash
# Build (or reuse) the e2e control-plane binaries: kube-apiserver,
# kube-controller-manager, kubectl and etcd, from the Go modules in k8s/ and etcd/.
#
# Usage: build.sh [--print-bindir]
#   (no args)       build if needed; the last line on stdout is the bin dir
#   --print-bindir  only print the bin dir (does not build or check it)
#
# Binaries go to ${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/controlplane/
# <K8S_VERSION>-etcd<ETCD_VERSION>/bin, outside the repo, keyed by version.
# A cold build takes about 11 minutes on 2 cores (see README.md); a cached run
# takes well under a second. Build progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/versions.env
. "$here/versions.env"
# shellcheck source=SCRIPTDIR/build-lib.sh
. "$here/build-lib.sh"

cache_root=${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/controlplane
version_dir=$cache_root/${K8S_VERSION}-etcd${ETCD_VERSION}
bin_dir=$version_dir/bin
binaries=(kube-apiserver kube-controller-manager kubectl etcd)

log() { printf 'build.sh: %s\n' "$*" >&2; }

if [[ ${1:-} == --print-bindir ]]; then
  printf '%s\n' "$bin_dir"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--print-bindir]" >&2
  exit 2
fi

# True when all four binaries are in $1 and run.
binaries_ok() {
  local d=$1
  for b in "${binaries[@]}"; do
    [[ -x $d/$b ]] || return 1
  done
  "$d/kube-apiserver" --version >/dev/null 2>&1 &&
    "$d/kube-controller-manager" --version >/dev/null 2>&1 &&
    "$d/kubectl" version --client >/dev/null 2>&1 &&
    "$d/etcd" --version >/dev/null 2>&1
}

cache_hit "$bin_dir" binaries_ok && exit 0

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

# versions.env and the go.mod files must name the same versions, or the cache
# key would lie about what is inside.
grep -Eq "^[[:space:]]*k8s.io/kubernetes ${K8S_VERSION}( |$)" "$here/k8s/go.mod" ||
  { log "k8s/go.mod does not require k8s.io/kubernetes $K8S_VERSION"; exit 1; }
grep -Eq "=> k8s.io/api ${K8S_STAGING_VERSION}$" "$here/k8s/go.mod" ||
  { log "k8s/go.mod does not replace k8s.io/api with $K8S_STAGING_VERSION"; exit 1; }
grep -Eq "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}( |$)" "$here/etcd/go.mod" ||
  { log "etcd/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION"; exit 1; }

# Static binaries (no C toolchain needed), as the upstream release builds them.
build() {
  local tmp=$1
  log "building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION (several minutes when cold)"
  (cd "$here/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$(kube_ldflags "$K8S_VERSION")" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl)

  log "building etcd $ETCD_VERSION"
  (cd "$here/etcd" && CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
    -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
}
cached_build "$bin_dir" binaries_ok build
