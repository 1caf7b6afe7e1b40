#!/usr/bin/env bash
# Stop the control plane that up.sh started in STATE_DIR (and its node, with
# down-node.sh): SIGTERM, then SIGKILL after a grace period. Idempotent:
# exits 0 when nothing is running, when STATE_DIR is gone, or when it is
# called twice.
#
# Usage: down.sh STATE_DIR
# Environment: DOWN_GRACE_SECONDS (default 10)
set -uo pipefail # no -e: stopping must go on past any single failure

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
[[ -f $1/env ]] || exit 0
state=$(cd "$1" && pwd) || exit 0
grace=${DOWN_GRACE_SECONDS:-10}

# Read the PIDs without sourcing the whole file (it may be half written).
etcd_pid="" others=()
while IFS='=' read -r key val; do
  [[ $val =~ ^[0-9]+$ ]] || continue
  case $key in
    "export ETCD_PID") etcd_pid=$val ;;
    "export APISERVER_PID" | "export KCM_PID" | "export SCHEDULER_PID") others+=("$val") ;;
  esac
done <"$state/env"

# Only signal a PID that is still one of ours (ours, in state-lib.sh).
# shellcheck source=SCRIPTDIR/state-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/state-lib.sh"

# up.sh starts each component with setsid, so PID = process group id; signal
# the group to take any child along. Fall back to the PID alone.
signal() {
  kill -s "$1" -- "-$2" 2>/dev/null || kill -s "$1" "$2" 2>/dev/null || true
}

# stop PID...: SIGTERM those still ours, wait up to $grace s, then SIGKILL.
stop() {
  local live=() remaining pid deadline
  for pid in "$@"; do
    ours "$pid" && live+=("$pid")
  done
  [[ ${#live[@]} -eq 0 ]] && return 0
  for pid in "${live[@]}"; do
    signal TERM "$pid"
  done
  deadline=$(($(date +%s) + grace))
  while :; do
    remaining=()
    for pid in "${live[@]}"; do
      ours "$pid" && remaining+=("$pid")
    done
    [[ ${#remaining[@]} -eq 0 ]] && return 0
    if [[ $(date +%s) -ge $deadline ]]; then
      for pid in "${remaining[@]}"; do
        echo "down.sh: $pid did not stop ${grace}s after SIGTERM, sending SIGKILL" >&2
        signal KILL "$pid"
      done
      sleep 0.2
      return 0
    fi
    sleep 0.1
  done
}

# The node first (up-node.sh, SD_NODE=1): its kubelet talks to the apiserver.
[[ -d $state/n ]] && "$(dirname "${BASH_SOURCE[0]}")/down-node.sh" "$state"

# Controller manager and apiserver first, etcd after they are gone: an
# apiserver whose etcd vanished first hangs in its shutdown retrying it.
[[ ${#others[@]} -gt 0 ]] && stop "${others[@]}"
[[ -n $etcd_pid ]] && stop "$etcd_pid"
exit 0
