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

if binaries_ok "$bin_dir"; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }

# versions.env and the go.mod files must name the same versions, or the cache
# key would lie about what is inside.
grep -Eq "^[[:space:]]*k8s.io/kubernetes ${K8S_VERSION}( |$)" "$here/k8s/go.mod" ||
  { log "k8s/go.mod does not require k8s.io/kubernetes $K8S_VERSION"; exit 1; }
grep -Eq "=> k8s.io/api ${K8S_STAGING_VERSION}$" "$here/k8s/go.mod" ||
  { log "k8s/go.mod does not replace k8s.io/api with $K8S_STAGING_VERSION"; exit 1; }
grep -Eq "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}( |$)" "$here/etcd/go.mod" ||
  { log "etcd/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION"; exit 1; }

mkdir -p "$cache_root"
# Serialise concurrent builds (two test runs starting at once); the second one
# finds the cache filled when it gets the lock.
exec 9>"$cache_root/.build.lock"
flock 9
if binaries_ok "$bin_dir"; then
  printf '%s\n' "$bin_dir"
  exit 0
fi

# Holding the lock, any .build.* dir is a leftover of a killed build.
rm -rf "$cache_root"/.build.*/
# Build into a temp dir on the same filesystem and rename it into place at the
# end, so an interrupted build never looks like a cached one.
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

k8s_minor=${K8S_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
# Without these, kube binaries report v0.0.0-master+$Format:%H$ and the
# apiserver's compatibility-version logic falls back to its built-in default.
# Same variables as kubernetes' hack/lib/version.sh sets.
version_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_ldflags+=" -X $pkg.gitVersion=$K8S_VERSION"
  version_ldflags+=" -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  version_ldflags+=" -X $pkg.gitTreeState=clean"
  version_ldflags+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done

# Static binaries (no C toolchain needed), as the upstream release builds them.
export CGO_ENABLED=0
start=$(date +%s)

log "building kube-apiserver, kube-controller-manager, kubectl $K8S_VERSION (several minutes when cold)"
(cd "$here/k8s" && go build -trimpath -ldflags "-s -w$version_ldflags" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl)

log "building etcd $ETCD_VERSION"
(cd "$here/etcd" && go build -trimpath \
  -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" \
  -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3)

binaries_ok "$tmp/bin" || { log "built binaries do not run"; exit 1; }

mkdir -p "$version_dir"
# Whatever is at $bin_dir failed binaries_ok: a broken leftover, replace it.
rm -rf "$bin_dir"
mv -T "$tmp/bin" "$bin_dir"
log "built in $(($(date +%s) - start)) s into $bin_dir"
printf '%s\n' "$bin_dir"
