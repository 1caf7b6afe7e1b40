#!/usr/bin/env bash
# Run CMD against a fresh control plane:
#   build (cached) -> up.sh in a new temp state dir -> CMD -> down.sh
#   -> leak-check.sh.
#
# Usage: with-controlplane.sh CMD [ARGS...]
#
# CMD runs with the variables of STATE_DIR/env exported (KUBECONFIG,
# APISERVER_URL, BIN_DIR, CA_CERT, CA_KEY, ...) and BIN_DIR prepended to PATH
# (so `kubectl` is the matching version). Exit status is CMD's. On success the
# state dir is removed; on failure it is kept and its path printed, for the logs.
# Set CONTROLPLANE_KEEP_STATE=1 to keep it always. With SD_NODE=1 the cluster
# has a scheduler and a node (see up-node.sh). CMD runs in a process group of
# its own; what it leaves running (children of a killed test) is stopped, and
# fails a run that CMD passed. Anything left after down.sh (a process, mount,
# bridge, network namespace, host path) fails the run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -eq 0 ]]; then
  echo "usage: $0 CMD [ARGS...]" >&2
  exit 2
fi

BIN_DIR=$("$here/build.sh" | tail -n 1)
export BIN_DIR
if [[ ${SD_NODE:-0} == 1 ]]; then
  "$here/build-node.sh" >/dev/null
fi

state=$(mktemp -d "${TMPDIR:-/tmp}/secure-defaults-cp.XXXXXX")
rc=1
cmd_group=""
# Stop whatever CMD's process group still runs: after a test binary was
# killed, its children (helm, kubectl, `secure-defaults serve`) live on,
# orphaned but still in the group. 1 when something was left.
stop_cmd_group() {
  local left i
  [[ -n $cmd_group ]] || return 0
  left=$(pgrep -g "$cmd_group" | xargs)
  [[ -n $left ]] || return 0
  echo "with-controlplane.sh: stopping what CMD left running: $left" >&2
  kill -TERM -- "-$cmd_group" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pgrep -g "$cmd_group" >/dev/null || return 1
    sleep 0.1
  done
  kill -KILL -- "-$cmd_group" 2>/dev/null || true
  return 1
}
finish() {
  trap - EXIT INT TERM
  if ! stop_cmd_group && [[ $rc -eq 0 ]]; then
    rc=1
  fi
  "$here/down.sh" "$state" || true
  if ! "$here/leak-check.sh" "$state" && [[ $rc -eq 0 ]]; then
    rc=1
  fi
  if [[ $rc -eq 0 && ${CONTROLPLANE_KEEP_STATE:-0} != 1 ]]; then
    rm -rf "$state"
  else
    echo "with-controlplane.sh: exit $rc; state and logs kept in $state" >&2
  fi
  exit "$rc"
}
trap finish EXIT
trap 'rc=130; finish' INT
trap 'rc=143; finish' TERM

"$here/up.sh" "$state"

# shellcheck disable=SC1091
. "$state/env"
export PATH="$BIN_DIR:$PATH"

# Not exec: the trap must run afterwards. CMD gets a session and process
# group of its own (setsid execs in place: a background child is never a
# group leader, so $! is its PID and group ID), for stop_cmd_group.
# `|| rc=$?` keeps set -e from exiting before rc is recorded.
rc=0
setsid "$@" &
cmd_group=$!
wait "$cmd_group" || rc=$?
