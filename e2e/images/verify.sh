#!/usr/bin/env bash
# Check the archives of build.sh in a real containerd: import each into the
# k8s.io namespace (as the node does), list it, then start it once as its
# image's default user with `ctr run` (runc, a network namespace of its own
# with only loopback, no CNI, nothing pulled) and run its health check inside
# it until it passes. Prints one line per image and a summary.
#
# Usage: verify.sh [--import-only | --matrix] [--product ARCHIVE] [NAME...]
#   --import-only      only import and list
#   --matrix           also start each under hardened settings, one at a time
#                      (see profiles below); what breaks is reported, not failed
#   --product ARCHIVE  only the product image (make oci-image): start
#                      `serve --self-signed` with all capabilities dropped,
#                      seccomp and a read-only root, then GET /readyz on the
#                      admin port and POST examples/admission-review.json to
#                      /mutate over TLS, trusting the CA it wrote
#   SD_IMAGES_DIR=DIR  check the archives in DIR instead of build.sh's
#
# Needs root and containerd, containerd-shim-runc-v2, ctr and runc in
# $SD_NODE_BIN (default: the node build's cache, ~/.cache/secure-defaults/
# node/*/bin). A containerd of its own runs under a temp dir with the CRI
# and CNI unconfigured, and is stopped at the end; the host's /etc/containerd and
# /run/containerd are not used. Holds the e2e node lock, as up-node.sh does.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'images/verify.sh: %s\n' "$*" >&2; }
fail() { log "$*"; exit 1; }

import_only=false
matrix=false
product=
names=()
while (($#)); do
  case $1 in
    --import-only) import_only=true ;;
    --matrix) matrix=true ;;
    --product) product=$(realpath "${2:?--product needs an archive}"); shift ;;
    -*) echo "usage: $0 [--import-only | --matrix] [--product ARCHIVE] [NAME...]" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done

[[ $(id -u) == 0 ]] || fail "needs root"
bin=${SD_NODE_BIN:-}
if [[ -z $bin ]]; then
  for d in "${SD_CACHE_DIR:-$HOME/.cache/secure-defaults}"/node/*/bin; do
    [[ -x $d/containerd && -x $d/ctr && -x $d/runc && -x $d/containerd-shim-runc-v2 ]] && bin=$d
  done
fi
[[ -n $bin ]] || fail "no containerd/ctr/runc: set SD_NODE_BIN or build the node (e2e/controlplane/build-node.sh)"
# SD_IMAGES_DIR: a directory of archives and catalog.json already built.
if [[ -z $product ]]; then
  images_dir=${SD_IMAGES_DIR:-$("$here/build.sh" | tail -n 1)}
  catalog=$images_dir/catalog.json
fi
[[ -n $product ]] || ((${#names[@]})) || mapfile -t names < <(python3 -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1]))["images"])))' "$catalog")

# One containerd-based node per host at a time (shared with up-node.sh).
node_lock=${SD_NODE_LOCK:-/run/lock/secure-defaults-e2e-node.lock}
mkdir -p "$(dirname "$node_lock")"
exec 8>"$node_lock"
flock -w "${SD_NODE_LOCK_TIMEOUT:-600}" 8 || fail "another e2e node holds $node_lock"

# Short path: shim sockets are <socket_dir>/<64 hex> and must fit in 107 bytes.
state=$(mktemp -d /tmp/sd-img.XXXXXX)
# containerd may create /run/containerd whatever its config says: remove it
# afterwards only if it was not there before.
[[ -e /run/containerd ]] && had_run_containerd=true || had_run_containerd=false
cd_pid=
cleanup() {
  set +e
  if [[ -n $cd_pid ]]; then
    # Containers first (their shims outlive containerd otherwise), then containerd.
    for id in $("${ctr[@]}" tasks ls -q 2>/dev/null); do
      "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1
      timeout 10 "${ctr[@]}" tasks delete -f "$id" >/dev/null 2>&1
    done
    for id in $("${ctr[@]}" containers ls -q 2>/dev/null); do
      "${ctr[@]}" containers delete "$id" >/dev/null 2>&1
    done
    kill "$cd_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$cd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$cd_pid" 2>/dev/null
    wait "$cd_pid" 2>/dev/null
  fi
  # Whatever is still mounted below the state dir (a snapshot of a killed task).
  findmnt -rn -o TARGET | grep "^$state/" | sort -r | xargs -r -n1 umount -l
  rm -rf "$state"
  $had_run_containerd || rm -rf /run/containerd
}
trap cleanup EXIT

# shellcheck source=SCRIPTDIR/../controlplane/containerd.sh
. "$here/../controlplane/containerd.sh"
# The CRI plugin is there only so that crictl can show what a kubelet would
# see: no CNI config, no pulls.
containerd_config "$state" "$bin" "$state/cni"
sock=$state/run/containerd.sock
ctr=("$bin/ctr" -a "$sock" -n k8s.io)
PATH=$bin:$PATH "$bin/containerd" --config "$state/etc/containerd.toml" >"$state/containerd.log" 2>&1 &
cd_pid=$!
containerd_wait "$bin/ctr" "$sock" "$cd_pid" 10 || {
  tail -n 20 "$state/containerd.log" >&2
  fail "containerd exited or did not answer in 10 s"
}

# listed IMAGE: ctr lists the image (a few tries: the CRI plugin handles the
# import's events at the same time).
listed() {
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    "${ctr[@]}" images ls -q 2>/dev/null | grep -xF "$1" >/dev/null && return 0
    sleep 0.2
  done
  return 1
}

# cri_user IMAGE: the user the CRI reports for an image, which is what the
# kubelet checks runAsNonRoot against ("uid N", "name NAME" or "none": root).
cri_user() {
  [[ -x $bin/crictl ]] || { echo "no crictl"; return; }
  "$bin/crictl" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" inspecti "$1" 2>/dev/null |
    python3 -c '
import json, sys
s = json.load(sys.stdin)["status"]
print("uid " + s["uid"]["value"] if s.get("uid") else "name " + s["username"] if s.get("username") else "none")'
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["images"][sys.argv[2]].get(sys.argv[3]); print(json.dumps(v) if not isinstance(v,str) else v)' "$catalog" "$1" "$2"; }

# The runtime's default capabilities (containerd's, as for a pod that drops none).
default_caps=(CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID
  CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL CAP_AUDIT_WRITE)
drop_all=()
for c in "${default_caps[@]}"; do drop_all+=(--cap-drop "$c"); done
# --matrix: what a hardened pod does to each image, one setting at a time.
#   default      the image as it is (user, capabilities of the runtime)
#   drop-all     all capabilities dropped, seccomp RuntimeDefault, image's user
#   read-only    drop-all plus a read-only root filesystem
#   uid-65532    drop-all with runAsUser/runAsGroup 65532 (writable root)
#   pinned-uid   drop-all with only runAsUser 1000680000 (gid from the image: 0)
profiles=(default)
$matrix && profiles=(default drop-all read-only uid-65532 pinned-uid)
profile_args() {
  case $1 in
    default) ;;
    drop-all) printf '%s\n' "${drop_all[@]}" --seccomp ;;
    read-only) printf '%s\n' "${drop_all[@]}" --seccomp --read-only ;;
    uid-65532) printf '%s\n' "${drop_all[@]}" --seccomp --user 65532:65532 ;;
    pinned-uid) printf '%s\n' "${drop_all[@]}" --seccomp --user 1000680000 ;;
  esac
}

# run_one NAME PROFILE: start the image once, poll its health check (at most
# 60 times, 0.5 s apart, while it runs), print one line, remove it. Returns 1
# when the health check never passed.
run_one() {
  local n=$1 profile=$2 image id t1 ok=false i status ready_s pid who procs
  local -a env_args=() extra=() health=()
  image=$(field "$n" image)
  while IFS= read -r kv; do [[ -n $kv ]] && env_args+=(--env "$kv"); done < <(
    python3 -c 'import json,sys; [print(f"{k}={v}") for k,v in json.load(open(sys.argv[1]))["images"][sys.argv[2]].get("env",{}).items()]' "$catalog" "$n")
  mapfile -t extra < <(profile_args "$profile")
  mapfile -t health < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["images"][sys.argv[2]]["health"]))' "$catalog" "$n")
  id=verify-$n-$profile
  t1=$(date +%s.%N)
  if ! "${ctr[@]}" run -d --runc-binary "$bin/runc" --log-uri "file://$state/$id.log" "${env_args[@]}" "${extra[@]}" \
    "$image" "$id" >/dev/null 2>"$state/run-$id.err"; then
    printf '%-14s %-10s FAIL ctr run: %s\n' "$n" "$profile" "$(tail -n 1 "$state/run-$id.err")"
    "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
    return 1
  fi
  for i in $(seq 60); do
    if timeout 10 "${ctr[@]}" tasks exec --exec-id "health$i" "$id" "${health[@]}" >/dev/null 2>&1; then
      ok=true
      break
    fi
    status=$("${ctr[@]}" tasks ls 2>/dev/null | awk -v id="$id" '$1 == id {print $3}')
    [[ $status == RUNNING ]] || break
    sleep 0.5
  done
  ready_s=$(python3 -c "import time; print(f'{time.time() - $t1:.1f}')")
  # Who the container's first process and its children run as, on the host.
  pid=$("${ctr[@]}" tasks ls 2>/dev/null | awk -v id="$id" '$1 == id {print $2}')
  who=$(ps -o uid=,gid= -p "$pid" 2>/dev/null | xargs || true)
  procs=$(ps -o uid= --ppid "$pid" 2>/dev/null | sort -un | xargs || true)
  if $ok; then
    printf '%-14s %-10s ok   healthy after %4ss, pid 1 uid:gid %s%s\n' \
      "$n" "$profile" "$ready_s" "${who// /:}" "${procs:+, children uid $procs}"
  else
    # The last line that says what went wrong, else the last line (the shim
    # copies output asynchronously: give it a moment).
    local why
    sleep 0.5
    why=$(grep -iE 'cannot|could not|not exist|fail|error|denied|not permitted|emerg|fatal' "$state/$id.log" | tail -n 1)
    [[ -n $why ]] || why=$(grep -v '^[[:space:]]*$' "$state/$id.log" | tail -n 1)
    printf '%-14s %-10s FAIL no health in %4ss: %s\n' "$n" "$profile" "$ready_s" "$(cut -c1-160 <<<"$why")"
  fi
  "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  for _ in $(seq 50); do
    "${ctr[@]}" tasks delete "$id" >/dev/null 2>&1 && break
    sleep 0.2
  done
  "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
  $ok
}

# verify_product: the webhook as a pod would run it hardened, reached from the
# host inside the container's own network namespace (nsenter), on loopback.
verify_product() {
  local image id=verify-product pid ok=false i review=$here/../../examples/admission-review.json
  # mutate CA: one POST of the sample review over TLS; true when a patch comes back.
  mutate() {
    nsenter -t "$pid" -n curl -sS --max-time 5 --cacert "/proc/$pid/root/tmp/ca.pem" \
      -H 'Content-Type: application/json' --data-binary "@$review" 'https://localhost:8443/mutate?timeout=10s'
  }
  "${ctr[@]}" images import "$product" >"$state/import-product.log" 2>&1 ||
    fail "import of $product failed: $(tail -n 3 "$state/import-product.log")"
  image=$(python3 "$here/../../hack/oci-image/ociimage.py" inspect "$product" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')
  listed "$image" || fail "$image not listed after import"
  echo "product        imported   $image; CRI image user: $(cri_user "$image")"
  # /tmp is an in-memory volume, as a pod would mount an emptyDir for --ca-out.
  "${ctr[@]}" run -d --runc-binary "$bin/runc" --log-uri "file://$state/product.log" \
    "${drop_all[@]}" --seccomp --read-only --mount type=tmpfs,destination=/tmp,options=nosuid:nodev:mode=1777 \
    "$image" "$id" /usr/local/bin/secure-defaults serve --self-signed --ca-out /tmp/ca.pem >/dev/null ||
    fail "ctr run of $image failed"
  pid=$("${ctr[@]}" tasks ls 2>/dev/null | awk -v id="$id" '$1 == id {print $2}')
  for i in $(seq 50); do
    if nsenter -t "$pid" -n curl -sf --max-time 2 http://127.0.0.1:8080/readyz >/dev/null 2>&1 &&
      mutate 2>/dev/null | grep '"allowed":true,.*"patchType":"JSONPatch"' >/dev/null; then
      ok=true
      break
    fi
    sleep 0.2
  done
  local who
  who=$(ps -o uid=,gid= -p "$pid" 2>/dev/null | xargs || true)
  if $ok; then
    printf 'product        hardened   ok   /readyz answers, /mutate patches over TLS; uid:gid %s, caps %s, NoNewPrivs %s, Seccomp %s\n' \
      "${who// /:}" "$(awk '/^CapEff/ {print $2}' "/proc/$pid/status")" \
      "$(awk '/^NoNewPrivs/ {print $2}' "/proc/$pid/status")" "$(awk '/^Seccomp:/ {print $2}' "/proc/$pid/status")"
  else
    printf 'product        hardened   FAIL no answer: %s; %s; log:\n' \
      "$(nsenter -t "$pid" -n curl -sS --max-time 2 http://127.0.0.1:8080/readyz 2>&1 | head -c 200)" \
      "$(mutate 2>&1 | head -c 300)"
    tail -n 15 "$state/product.log" | sed 's/^/    /'
  fi
  "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  for _ in $(seq 50); do "${ctr[@]}" tasks delete "$id" >/dev/null 2>&1 && break; sleep 0.2; done
  "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
  $ok
}

passed=0 failed=0 expected_fail=0
if [[ -n $product ]]; then
  if verify_product; then passed=1; else failed=1; fi
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit
fi
for n in "${names[@]}"; do
  image=$(field "$n" image)
  t0=$(date +%s.%N)
  if ! "${ctr[@]}" images import "$images_dir/$n.tar" >"$state/import-$n.log" 2>&1; then
    log "$n: import failed: $(tail -n 3 "$state/import-$n.log")"
    failed=$((failed + 1))
    continue
  fi
  if ! listed "$image"; then
    log "$n: $image not listed after import: $("${ctr[@]}" images ls -q 2>&1 | tr '\n' ' ')"
    failed=$((failed + 1))
    continue
  fi
  printf '%-14s imported   %s in %ss; CRI image user: %s\n' "$n" "$image" \
    "$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")" "$(cri_user "$image")"
  if $import_only; then
    passed=$((passed + 1))
    continue
  fi
  for profile in "${profiles[@]}"; do
    if run_one "$n" "$profile"; then
      passed=$((passed + 1))
    elif [[ $profile == default ]]; then
      failed=$((failed + 1))
    else
      # A hardened setting that breaks an image is a finding, not a failure here.
      expected_fail=$((expected_fail + 1))
    fi
  done
done
$matrix && echo "hardened settings that stopped an image: $expected_fail"
echo "$passed passed, $failed failed"
((failed == 0))
