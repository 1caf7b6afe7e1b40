#!/usr/bin/env bash
# Tear down the node that up-node.sh started in STATE_DIR: the kubelet, every
# pod (containers, shims, network namespaces), containerd, the mounts under
# STATE_DIR, the bridge, the kubepods cgroups and the host paths this run
# created. Idempotent, and it works after a crash of any component: each step
# falls back to the next lower layer (crictl, then runc, then kill by cgroup
# and command line). down.sh calls it first.
#
# Usage: down-node.sh STATE_DIR
# Environment: DOWN_GRACE_SECONDS (default 10)
set -uo pipefail # no -e: stopping must go on past any single failure

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
[[ -d $1/n ]] || exit 0
state=$(cd "$1" && pwd) || exit 0
node=$state/n
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
node_bin=$("$here/build-node.sh" --print-dir)/bin
grace=${DOWN_GRACE_SECONDS:-10}
log() { printf 'down-node.sh: %s\n' "$*" >&2; }
# envval, ours (a PID whose command line names STATE_DIR), naming.
# shellcheck source=SCRIPTDIR/state-lib.sh
. "$here/state-lib.sh"
# stop PID: TERM (to its process group, from setsid), KILL after $grace s.
stop() {
  local pid=$1 deadline
  [[ $pid =~ ^[0-9]+$ ]] && ours "$pid" || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  deadline=$(($(date +%s) + grace))
  while ours "$pid"; do
    if [[ $(date +%s) -ge $deadline ]]; then
      log "$pid did not stop ${grace}s after SIGTERM, sending SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      sleep 0.2
      return 0
    fi
    sleep 0.1
  done
}

# 1. The kubelet first, so that it restarts nothing we stop below.
stop "$(envval KUBELET_PID)"

# 2. Every pod, through the CRI while containerd runs: stops the containers,
# runs CNI DEL (frees the address, deletes the veth) and removes the netns.
sock=$node/run/containerd.sock
containerd_pid=$(envval CONTAINERD_PID)
if [[ -n $containerd_pid ]] && ours "$containerd_pid" && [[ -S $sock ]]; then
  timeout 60 "$node_bin/crictl" --runtime-endpoint "unix://$sock" --timeout 20s rmp --all --force \
    >>"$state/logs/down-node.log" 2>&1 || log "crictl rmp failed; falling back to runc (see logs/down-node.log)"
fi

# 3. containerd.
stop "$containerd_pid"

# 3b. The test registry (e2e/registry/up.sh), once nothing pulls from it.
stop "$(envval REGISTRY_PID)"

# 4. Containers that survived (containerd gone, a shim killed, ...): runc
# kills and deletes them, cgroups included.
for root in "$node"/runc/*/; do
  [[ -d $root ]] || continue
  for id in $(timeout 10 "$node_bin/runc" --root "$root" list -q 2>/dev/null); do
    timeout 10 "$node_bin/runc" --root "$root" delete --force "$id" >>"$state/logs/down-node.log" 2>&1
  done
done

# 5. Whatever still runs: shims (their command line names the socket in
# STATE_DIR/n; the control plane's processes name only STATE_DIR, and down.sh
# stops them gracefully afterwards) and processes in the kubepods cgroups
# this run created.
# Never this script or its callers (naming skips them).
node_pids() {
  local d
  naming "$node/"
  [[ -f $node/cgroups ]] || return 0
  while read -r d; do
    [[ -d $d ]] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null
  done <"$node/cgroups"
}
for ((round = 0; round < 20; round++)); do
  mapfile -t left < <(node_pids | sort -u)
  [[ ${#left[@]} -eq 0 ]] && break
  [[ $round -eq 0 ]] && log "killing ${#left[@]} remaining node processes (shims, containers): ${left[*]}"
  kill -KILL "${left[@]}" 2>/dev/null
  sleep 0.25
done

# 6. Mounts under STATE_DIR (netns, overlay rootfs, shm, kubelet's rshared
# root dir, projected volumes), deepest first.
for ((round = 0; round < 5; round++)); do
  mapfile -t mounts < <(awk -v s="$state/" 'index($5, s) == 1 { print length($5), $5 }' /proc/self/mountinfo |
    sort -rn | cut -d' ' -f2-)
  [[ ${#mounts[@]} -eq 0 ]] && break
  for m in "${mounts[@]}"; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
  done
done

# 7. The bridge, and any veth still attached to it.
bridge=$(envval NODE_BRIDGE)
if [[ -n $bridge ]] && ip link show "$bridge" >/dev/null 2>&1; then
  for veth in $(ip -o link show master "$bridge" 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'); do
    ip link del "$veth" 2>/dev/null
  done
  ip link del "$bridge" || log "cannot delete bridge $bridge"
fi

# 8. The kubepods cgroups: emptied above; the kernel may need a moment.
if [[ -f $node/cgroups ]]; then
  for ((round = 0; round < 20; round++)); do
    busy=0
    while read -r d; do
      [[ -d $d ]] || continue
      find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
      [[ -d $d ]] && busy=1
    done <"$node/cgroups"
    [[ $busy -eq 0 ]] && break
    sleep 0.25
  done
fi

# 9. Host paths this run created, and IPv4 forwarding as it was.
if [[ -f $node/host-paths ]]; then
  while read -r p; do
    [[ -n $p && -e $p ]] && rm -rf --one-file-system -- "$p"
  done <"$node/host-paths"
fi
if [[ -f $node/ip_forward ]]; then
  cat "$node/ip_forward" >/proc/sys/net/ipv4/ip_forward 2>/dev/null
fi
exit 0
