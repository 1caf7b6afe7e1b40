#!/usr/bin/env bash
# Build (or reuse) the e2e registry: this directory's Go program on
# go-containerregistry's pkg/registry (see README.md).
#
# Usage: build.sh [--print-bin]
#   (no args)    build if needed; the last line on stdout is the binary
#   --print-bin  only print the binary's path (does not build or check it)
#
# The binary goes to ${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/registry/
# <go-containerregistry version>-<hash of this directory's sources>/registry,
# outside the repo, filled once by build-lib.sh's cached_build (flock, temp
# dir renamed into place). About 35 s cold on 2 cores (modules downloaded); a
# cached run takes well under a second. Build progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ggcr_version=$(sed -n 's/^[[:space:]]*\(require[[:space:]]\+\)\?github.com\/google\/go-containerregistry \(v[^ ]*\).*/\2/p' "$here/go.mod")
[[ -n $ggcr_version ]] || { echo "build.sh: go.mod does not require go-containerregistry" >&2; exit 1; }
# Every input of the build: a change to any of them is a new cache entry.
src_hash=$(cd "$here" && find . -maxdepth 1 -type f \( -name '*.go' -o -name go.mod -o -name go.sum -o -name build.sh \) -print0 |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
cache_root=${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/registry
version_dir=$cache_root/$ggcr_version-$src_hash
bin=$version_dir/registry

log() { printf 'registry/build.sh: %s\n' "$*" >&2; }

if [[ ${1:-} == --print-bin ]]; then
  printf '%s\n' "$bin"
  exit 0
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--print-bin]" >&2
  exit 2
fi

# A built binary refuses to start without a password: that is its health check.
bin_ok() { [[ -x $1/registry ]] && "$1/registry" -h 2>&1 | grep -q -- '-seed'; }

# shellcheck source=SCRIPTDIR/../controlplane/build-lib.sh
. "$here/../controlplane/build-lib.sh"

if ! cache_hit "$version_dir" bin_ok >/dev/null; then
  command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
  build() {
    # mktemp's 0700 would become the cache directory's mode.
    chmod 755 "$1"
    log "building the registry (go-containerregistry $ggcr_version)"
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$1/registry" .)
  }
  cached_build "$version_dir" bin_ok build >/dev/null
fi
printf '%s\n' "$bin"
