#!/usr/bin/env bash
# Check the archives of build.sh in a real containerd: import each into the
# k8s.io namespace (as the node does), list it, then start it once as its
# image's default user with `ctr run` (runc, a network namespace of its own
# with only loopback, no CNI, nothing pulled) and run its health check inside
# it until it passes. Prints one line per image and a summary.
#
# Usage: verify.sh [--import-only] [NAME...]
#   SD_IMAGES_DIR=DIR  check the archives in DIR instead of build.sh's
#
# Needs root and containerd, containerd-shim-runc-v2, ctr and runc in
# $SD_NODE_BIN (default: the node build's cache, ~/.cache/secure-defaults/
# node/*/bin). A containerd of its own runs under a temp dir with the CRI
# plugins off and is stopped at the end; the host's /etc/containerd and
# /run/containerd are not used. Holds the e2e node lock, as up-node.sh does.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'images/verify.sh: %s\n' "$*" >&2; }
fail() { log "$*"; exit 1; }

import_only=false
names=()
for a in "$@"; do
  case $a in
    --import-only) import_only=true ;;
    -*) echo "usage: $0 [--import-only] [NAME...]" >&2; exit 2 ;;
    *) names+=("$a") ;;
  esac
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
images_dir=${SD_IMAGES_DIR:-$("$here/build.sh" | tail -n 1)}
catalog=$images_dir/catalog.json
((${#names[@]})) || mapfile -t names < <(python3 -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1]))["images"])))' "$catalog")

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
sock=$state/c.sock
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

cat >"$state/config.toml" <<EOF
version = 4
root = "$state/root"
state = "$state/state"
temp = "$state/tmp"
imports = []
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = "$sock"
  [plugins.'io.containerd.server.v1.ttrpc']
    address = "$sock.ttrpc"
  [plugins.'io.containerd.server.v1.debug']
    address = ""
  [plugins.'io.containerd.server.v1.metrics']
    address = ""
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = "$state/s"
  [plugins.'io.containerd.internal.v1.opt']
    path = "$state/opt"
  [plugins.'io.containerd.nri.v1.nri']
    disable = true
    socket_path = "$state/nri.sock"
EOF
PATH=$bin:$PATH "$bin/containerd" --config "$state/config.toml" >"$state/containerd.log" 2>&1 &
cd_pid=$!
ctr=("$bin/ctr" -a "$sock" -n k8s.io)
for _ in $(seq 100); do
  "${ctr[@]}" version >/dev/null 2>&1 && break
  kill -0 "$cd_pid" 2>/dev/null || { tail -n 20 "$state/containerd.log" >&2; fail "containerd exited"; }
  sleep 0.1
done
"${ctr[@]}" version >/dev/null || fail "containerd did not answer in 10 s"

field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["images"][sys.argv[2]].get(sys.argv[3]); print(json.dumps(v) if not isinstance(v,str) else v)' "$catalog" "$1" "$2"; }

passed=0 failed=0
for n in "${names[@]}"; do
  image=$(field "$n" image)
  t0=$(date +%s.%N)
  if ! "${ctr[@]}" images import "$images_dir/$n.tar" >"$state/import-$n.log" 2>&1; then
    log "$n: import failed: $(tail -n 3 "$state/import-$n.log")"
    failed=$((failed + 1))
    continue
  fi
  "${ctr[@]}" images ls -q 2>/dev/null | grep -qxF "$image" || { log "$n: $image not listed after import"; failed=$((failed + 1)); continue; }
  import_s=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
  if $import_only; then
    printf '%-14s imported %s (%ss)\n' "$n" "$image" "$import_s"
    passed=$((passed + 1))
    continue
  fi

  # Run it as the image says (user, entry point, command), with the catalog's env.
  env_args=()
  while IFS= read -r kv; do [[ -n $kv ]] && env_args+=(--env "$kv"); done < <(
    python3 -c 'import json,sys; [print(f"{k}={v}") for k,v in json.load(open(sys.argv[1]))["images"][sys.argv[2]].get("env",{}).items()]' "$catalog" "$n")
  id=verify-$n
  t1=$(date +%s.%N)
  if ! "${ctr[@]}" run -d --runc-binary "$bin/runc" --log-uri "file://$state/$n.log" "${env_args[@]}" "$image" "$id" >/dev/null 2>"$state/run-$n.err"; then
    log "$n: ctr run failed: $(cat "$state/run-$n.err")"
    failed=$((failed + 1))
    continue
  fi
  mapfile -t health < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["images"][sys.argv[2]]["health"]))' "$catalog" "$n")
  ok=false
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
  # Who the container's first process runs as, from the host's view.
  pid=$("${ctr[@]}" tasks ls 2>/dev/null | awk -v id="$id" '$1 == id {print $2}')
  who=$(ps -o uid=,gid= -p "$pid" 2>/dev/null | xargs || true)
  procs=$(ps -o uid= --ppid "$pid" 2>/dev/null | sort -un | xargs || true)
  if $ok; then
    printf '%-14s ok  %-40s import %4ss  healthy after %4ss  pid 1 as uid:gid %s%s\n' \
      "$n" "$image" "$import_s" "$ready_s" "${who:-?}" "${procs:+, children uid $procs}"
    passed=$((passed + 1))
  else
    printf '%-14s FAIL %s: health check never passed (%ss); container log:\n' "$n" "$image" "$ready_s"
    tail -n 15 "$state/$n.log" | sed 's/^/    /'
    failed=$((failed + 1))
  fi
  "${ctr[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  for _ in $(seq 50); do
    "${ctr[@]}" tasks delete "$id" >/dev/null 2>&1 && break
    sleep 0.2
  done
  "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
done
echo "$passed passed, $failed failed"
((failed == 0))
