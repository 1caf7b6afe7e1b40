#!/usr/bin/env bash
# Build (or reuse) the e2e test images: real servers from Debian bookworm
# packages, packaged as their official images are, and the identity-pattern
# images, as OCI archives for `ctr -n k8s.io images import`. See README.md.
#
# Usage: build.sh [--print-dir] [NAME...]
#   (no args)    build what is not cached; the last line on stdout is the
#                directory of archives (NAME.tar) and catalog.json
#   NAME...      only these images (into the same directory)
#   --print-dir  only print that directory (does not build)
#
# Needs root (debootstrap, chroot, unshare), debootstrap and python3, and
# Debian's package mirror. Cached in ${SD_CACHE_DIR:-~/.cache/secure-defaults}/
# images/<hash of this directory and the archive writer>/; the Debian packages
# themselves in images/debs. Cold: about 2 minutes for the base, then
# 10-60 s per image; cached: instant. Progress goes to stderr.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
writer=$root/hack/oci-image/ociimage.py
cache_root=${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}/images
suite=bookworm
mirror=http://deb.debian.org/debian

log() { printf 'images/build.sh: %s\n' "$*" >&2; }

# Every image is a directory with image.json (the archive spec and its test
# metadata) and recipe.sh; base/ is the layer they share, common/ has files
# recipes use (in /tmp/common during the build).
all_images() {
  local d
  for d in "$here"/*/; do
    d=${d%/}
    [[ -f $d/image.json ]] && basename "$d"
  done
}

# The cache key: every file that decides what goes into an archive (not the
# docs, not verify.sh).
hash_of() {
  (cd "$root" && find "$@" -type f ! -name '*.md' ! -name verify.sh -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -c1-16
}
key=$(hash_of e2e/images hack/oci-image/ociimage.py)
out_dir=$cache_root/$key
base_key=$(hash_of e2e/images/base e2e/images/chroot-setup.sh)
base_dir=$cache_root/rootfs/base-$base_key
# Each archive is also kept under a key of its own (what is shared, and its
# recipe), so that changing one recipe rebuilds one image; out_dir holds hard links.
shared_key=$(hash_of e2e/images/base e2e/images/common e2e/images/chroot-setup.sh e2e/images/build.sh hack/oci-image/ociimage.py)
archive_of() { printf '%s/archives/%s-%s.tar\n' "$cache_root" "$1" "$(printf '%s %s' "$shared_key" "$(hash_of "e2e/images/$1")" | sha256sum | cut -c1-16)"; }
debs=$cache_root/debs

print_dir=false
names=()
for a in "$@"; do
  case $a in
    --print-dir) print_dir=true ;;
    -*) echo "usage: $0 [--print-dir] [NAME...]" >&2; exit 2 ;;
    *) [[ -f $here/$a/image.json ]] || { log "no image $a"; exit 2; }; names+=("$a") ;;
  esac
done
if $print_dir; then
  printf '%s\n' "$out_dir"
  exit 0
fi
((${#names[@]})) || mapfile -t names < <(all_images)

missing() {
  local n
  for n in "${names[@]}"; do
    [[ -s $out_dir/$n.tar ]] || echo "$n"
  done
  [[ -s $out_dir/catalog.json ]] || echo catalog.json
}

if [[ -z $(missing) ]]; then
  printf '%s\n' "$out_dir"
  exit 0
fi

[[ $(id -u) == 0 ]] || { log "needs root (debootstrap, chroot)"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

mkdir -p "$cache_root/rootfs" "$cache_root/archives" "$debs" "$out_dir"
# One build at a time; a second one finds the cache filled.
exec 9>"$cache_root/.build.lock"
flock 9
if [[ -z $(missing) ]]; then
  printf '%s\n' "$out_dir"
  exit 0
fi

# Holding the lock, any .build.* dir is a leftover of a killed build.
rm -rf "$cache_root"/.build.*/ "$cache_root"/rootfs/.build.*/
tmp=$(mktemp -d "$cache_root/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Run chroot-setup.sh with recipe $2 inside rootfs $1, in a mount namespace of
# its own: /proc and the package cache are mounted there only, so nothing is
# left mounted whatever happens. apt's and the recipe's output go to a log,
# shown when the recipe fails.
in_rootfs() {
  local rootfs=$1 recipe=$2 out
  out=$tmp/$(basename "$recipe").log
  rm -rf "$rootfs/tmp/recipe" "$rootfs/tmp/common"
  cp -r "$recipe" "$rootfs/tmp/recipe"
  cp -r "$here/common" "$rootfs/tmp/common"
  cp "$here/chroot-setup.sh" "$rootfs/tmp/chroot-setup.sh"
  rm -f "$rootfs/etc/resolv.conf"
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mkdir -p "$rootfs/var/cache/apt/archives"
  # shellcheck disable=SC2016 # $1 and $2 expand in the inner bash
  unshare --mount --propagation private --fork -- bash -euc '
    mount -t proc proc "$1/proc"
    mount --bind "$2" "$1/var/cache/apt/archives"
    exec chroot "$1" /bin/bash /tmp/chroot-setup.sh' _ "$rootfs" "$debs" >"$out" 2>&1 ||
    { tail -n 30 "$out" >&2; log "$(basename "$recipe"): the recipe failed (output above)"; return 1; }
  rm -rf "$rootfs/tmp/recipe" "$rootfs/tmp/common" "$rootfs/tmp/chroot-setup.sh" "$rootfs/etc/resolv.conf"
}

start=$(date +%s)
if [[ ! -f $base_dir/.complete ]]; then
  log "base: debootstrap --variant=minbase $suite (about 2 minutes)"
  b=$cache_root/rootfs/.build.base
  rm -rf "$b"
  debootstrap --variant=minbase --cache-dir="$debs" "$suite" "$b" "$mirror" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -n 20 "$tmp/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
  in_rootfs "$b" "$here/base"
  rm -f "$b/etc/hostname"
  touch "$b/.complete"
  rm -rf "$base_dir"
  mv -T "$b" "$base_dir"
fi

# Left out of every layer: the runtime mounts over these, and the package
# lists stay in the build rootfs only.
excludes='["/.complete", "/dev/*", "/proc/*", "/sys/*", "/tmp/*", "/var/lib/apt/lists/*", "/var/cache/apt/*", "/etc/hostname", "/etc/resolv.conf"]'

for n in "${names[@]}"; do
  [[ -s $out_dir/$n.tar ]] && continue
  archive=$(archive_of "$n")
  if [[ -s $archive ]]; then
    ln -f "$archive" "$out_dir/$n.tar"
    log "$n: cached"
    continue
  fi
  t0=$(date +%s)
  log "$n: building"
  rootfs=$tmp/rootfs-$n
  cp -a "$base_dir" "$rootfs"
  in_rootfs "$rootfs" "$here/$n"
  # The spec is image.json plus the two layers: the base, and what the recipe changed.
  python3 - "$here/$n/image.json" "$base_dir" "$rootfs" "$excludes" >"$tmp/$n.spec.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
ex = json.loads(sys.argv[4])
spec["layers"] = [{"tree": sys.argv[2], "exclude": ex}, {"tree": sys.argv[3], "over": sys.argv[2], "exclude": ex}]
json.dump(spec, sys.stdout)
PY
  python3 "$writer" build "$tmp/$n.spec.json" -o "$tmp/$n.tar" >/dev/null
  python3 "$writer" inspect "$tmp/$n.tar" >/dev/null
  mv -f "$tmp/$n.tar" "$archive"
  ln -f "$archive" "$out_dir/$n.tar"
  rm -rf "$rootfs"
  log "$n: $(du -h "$out_dir/$n.tar" | cut -f1) in $(($(date +%s) - t0)) s"
done

# The catalog the suite reads: per image its name, archive, default user,
# ports and health check, from image.json.
python3 - "$here" "$out_dir" >"$out_dir/.catalog.json" <<'PY'
import json, os, sys
here, out = sys.argv[1:]
images = {}
for n in sorted(os.listdir(here)):
    p = os.path.join(here, n, "image.json")
    if not os.path.isfile(p):
        continue
    spec = json.load(open(p))
    c = spec["config"]
    images[n] = {
        "image": spec["name"],
        "archive": os.path.join(out, n + ".tar") if os.path.exists(os.path.join(out, n + ".tar")) else None,
        "user": c.get("User", ""),
        "ports": sorted(int(p.split("/")[0]) for p in c.get("ExposedPorts", {})),
        **spec["test"],
    }
json.dump({"images": images}, sys.stdout, indent=2, sort_keys=True)
print()
PY
mv -f "$out_dir/.catalog.json" "$out_dir/catalog.json"
log "done in $(($(date +%s) - start)) s"
printf '%s\n' "$out_dir"
