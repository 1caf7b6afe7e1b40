# shellcheck shell=bash
# What build.sh and build-node.sh share: the version-keyed cache directory,
# filled at most once and never half, and the kube version ldflags. Sourced;
# the caller defines log.

# cache_hit DIR CHECK: print DIR and succeed when `CHECK DIR` passes (a
# usable cached build).
cache_hit() {
  "$2" "$1" || return 1
  printf '%s\n' "$1"
}

# cached_build DIR CHECK BUILD: fill DIR by `BUILD TMP` unless `CHECK DIR`
# passes, then print DIR. Holds DIR's parent's .build.lock (flock), so a
# concurrent build waits and then finds DIR filled. BUILD fills a temp dir
# beside DIR that is checked and renamed into place only at the end, so an
# interrupted build never looks like a cached one.
cached_build() {
  local dir=$1 check=$2 build=$3 parent start
  parent=$(dirname "$dir")
  mkdir -p "$parent"
  exec 9>"$parent/.build.lock"
  flock 9
  if ! cache_hit "$dir" "$check"; then
    # Holding the lock, any .build.* dir is a leftover of a killed build.
    rm -rf "$parent"/.build.*/
    build_tmp=$(mktemp -d "$parent/.build.XXXXXX")
    trap 'rm -rf "$build_tmp"' EXIT
    start=$(date +%s)
    "$build" "$build_tmp"
    "$check" "$build_tmp" || { log "built binaries do not run"; return 1; }
    # Whatever is at DIR failed CHECK: a broken leftover, replace it.
    rm -rf "$dir"
    mv -T "$build_tmp" "$dir"
    log "built in $(($(date +%s) - start)) s into $dir"
    printf '%s\n' "$dir"
  fi
  exec 9>&-
}

# kube_ldflags VERSION: the -X flags kubernetes' hack/lib/version.sh sets.
# Without them kube binaries report v0.0.0-master+$Format:%H$ and the
# apiserver's compatibility-version logic falls back to its built-in default.
kube_ldflags() {
  local minor=${1#v1.} pkg
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s' "$pkg" "$1" "$pkg" "$pkg" "$minor"
    printf ' -X %s.gitTreeState=clean -X %s.buildDate=%s' "$pkg" "$pkg" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
}
