#!/usr/bin/env bash
# After down.sh STATE_DIR: fail (exit 1, one line per leak) if anything of
# that run is left: a process or mount naming STATE_DIR, and for a node
# (STATE_DIR/n) its bridge, a network namespace, a kubepods cgroup (or a
# process in one), a host path it created, or IPv4 forwarding left on. (The
# host-wide node lock is no evidence: other tools on the host may take it.)
#
# Usage: leak-check.sh STATE_DIR
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 STATE_DIR" >&2
  exit 2
fi
[[ -d $1 ]] || exit 0
state=$(cd "$1" && pwd)
node=$state/n
leaks=0
leak() {
  printf 'leak-check.sh: LEAK: %s\n' "$*" >&2
  leaks=$((leaks + 1))
}
# shellcheck source=SCRIPTDIR/state-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/state-lib.sh"

# Processes: not this script nor its callers, whose arguments name STATE_DIR.
while read -r p; do
  leak "process $p: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
done < <(naming "$state/")

while read -r m; do
  leak "mount $m"
done < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo)

if [[ -d $node ]]; then
  bridge=$(envval NODE_BRIDGE)
  [[ -n $bridge ]] && ip link show "$bridge" >/dev/null 2>&1 && leak "bridge $bridge"
  if [[ -f $node/netns.before ]]; then
    while read -r ns; do
      leak "network namespace $ns"
    done < <(comm -13 "$node/netns.before" <(ip netns list 2>/dev/null | sort))
  fi
  if [[ -f $node/cgroups ]]; then
    while read -r d; do
      [[ -e $d ]] || continue
      leak "cgroup $d"
      while read -r p; do
        leak "process $p in $d: $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
      done < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    done <"$node/cgroups"
  fi
  if [[ -f $node/host-paths ]]; then
    while read -r p; do
      [[ -n $p && -e $p ]] && leak "host path $p"
    done <"$node/host-paths"
  fi
  if [[ -f $node/ip_forward && $(cat /proc/sys/net/ipv4/ip_forward) != "$(cat "$node/ip_forward")" ]]; then
    leak "net.ipv4.ip_forward is $(cat /proc/sys/net/ipv4/ip_forward), was $(cat "$node/ip_forward")"
  fi
fi

if [[ $leaks -gt 0 ]]; then
  echo "leak-check.sh: $leaks leak(s) after down.sh $state" >&2
  exit 1
fi
echo "leak-check.sh: nothing left of $state" >&2
