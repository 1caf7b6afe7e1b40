#!/usr/bin/env bash
# Build the product's image as an OCI image-layout archive, without a registry
# or a container engine: the release binary linked statically, packed by
# ociimage.py with the layout of the Dockerfile's run stage (product.json).
#
# Usage: build-product.sh [--binary PATH]
#   (no args)      cargo build --release (static), then pack; several minutes
#                  cold on 2 cores (LTO), seconds when cargo has nothing to do
#   --binary PATH  pack this binary instead (must be static)
#
# Writes target/oci/secure-defaults-<version>.tar, image name
# localhost/secure-defaults:<version>; the last line on stdout is its path.
# Import it with: ctr -n k8s.io images import <path>
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=x86_64-unknown-linux-gnu

log() { printf 'build-product.sh: %s\n' "$*" >&2; }

binary=
if [[ ${1:-} == --binary && $# -eq 2 ]]; then
  binary=$(realpath "$2")
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--binary PATH]" >&2
  exit 2
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)
[[ -n $version ]] || { log "no version in Cargo.toml"; exit 1; }

if [[ -z $binary ]]; then
  # crt-static links glibc into the binary: the image needs no libc, so the run
  # stage is distroless static (as in the Dockerfile). A separate --target
  # keeps these objects apart from the dynamic release build's.
  log "cargo build --release (static, $target)"
  (cd "$root" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --target "$target" --bin secure-defaults >&2)
  binary=$root/target/$target/release/secure-defaults
fi

# Static means no program interpreter (no ld.so): the image has none to offer.
if readelf -lW "$binary" | grep 'Requesting program interpreter' >/dev/null; then
  log "$binary is dynamically linked; the image has no libc"
  exit 1
fi
# It must run with an empty environment, as it will in the image.
env -i "$binary" serve --help >/dev/null || { log "$binary serve --help failed"; exit 1; }

out=$root/target/oci/secure-defaults-$version.tar
mkdir -p "$(dirname "$out")"

# The CA bundle, as distroless has it: Debian's ca-certificates, the Mozilla
# roots concatenated as update-ca-certificates does. Taken from the package's
# own files, not /etc/ssl/certs, which may hold roots added on this machine.
# The kube client (scan, serve --namespace-policy) refuses to start without
# any system roots, even with the cluster's own CA.
mozilla=/usr/share/ca-certificates/mozilla
[[ -d $mozilla ]] || { log "no $mozilla: apt-get install ca-certificates"; exit 1; }
bundle=$root/target/oci/ca-certificates.crt
find "$mozilla" -name '*.crt' -print0 | LC_ALL=C sort -z | xargs -0 cat >"$bundle"
grep -q 'BEGIN CERTIFICATE' "$bundle" || { log "no certificates in $mozilla"; exit 1; }

python3 "$here/ociimage.py" build "$here/product.json" -o "$out" \
  --var BINARY="$binary" --var VERSION="$version" --var CA_BUNDLE="$bundle" >&2
python3 "$here/ociimage.py" inspect "$out" >/dev/null
log "localhost/secure-defaults:$version ($(du -h "$out" | cut -f1))"
printf '%s\n' "$out"
