#!/usr/bin/env bash
# Build (once) and run helm, from the helm.sh/helm/v3 Go module pinned in
# hack/tools/helm/go.mod (a `tool` directive, with go.sum).
#
# Usage: helm.sh [--print-path | HELM ARGS...]
#   --print-path  build if needed, print the path of the helm binary
#   HELM ARGS...  build if needed, then exec helm with ARGS
#
# The binary goes to ${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/tools/
# helm-<version>/helm, outside the repo, keyed by version. A cold build takes
# about 4 minutes on 2 cores with a cold Go module cache (downloads included);
# a cached run takes a few milliseconds. Build progress goes to stderr.
#
# To bump: cd hack/tools/helm && go get -tool helm.sh/helm/v3/cmd/helm@vX.Y.Z && go mod tidy
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mod_dir=$here/helm

log() { printf 'helm.sh: %s\n' "$*" >&2; }

# The version comes from go.mod, the one place it is written.
version=$(sed -n 's/^[[:space:]]*helm\.sh\/helm\/v3 \(v[0-9][^ ]*\).*/\1/p' "$mod_dir/go.mod" | head -n 1)
[[ -n $version ]] || { log "no helm.sh/helm/v3 requirement in $mod_dir/go.mod"; exit 1; }

cache_root=${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/tools
version_dir=$cache_root/helm-$version
helm_bin=$version_dir/helm

helm_ok() {
  [[ -x $1 ]] && "$1" version --short 2>/dev/null | grep -q "^$version"
}

if ! helm_ok "$helm_bin"; then
  command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
  mkdir -p "$cache_root"
  # Serialise concurrent builds; the second finds the cache filled.
  exec 9>"$cache_root/.helm-build.lock"
  flock 9
  if ! helm_ok "$helm_bin"; then
    tmp=$(mktemp -d "$cache_root/.helm-build.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    start=$(date +%s)
    # Same ldflags as helm's Makefile: the version, and the Kubernetes version
    # that `helm lint`/`helm template` assume (from the client-go it builds with).
    client_go=$(cd "$mod_dir" && go list -m -f '{{.Version}}' k8s.io/client-go)
    k8s_minor=$(cut -d. -f2 <<<"${client_go#v}")
    ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
    done
    log "building helm $version (a few minutes when cold)"
    (cd "$mod_dir" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
      -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
    helm_ok "$tmp/helm" || { log "built helm does not report $version"; exit 1; }
    mkdir -p "$version_dir"
    mv -f "$tmp/helm" "$helm_bin"
    log "built in $(($(date +%s) - start)) s into $helm_bin"
  fi
  exec 9>&-
fi

if [[ ${1:-} == --print-path ]]; then
  printf '%s\n' "$helm_bin"
  exit 0
fi
exec "$helm_bin" "$@"
