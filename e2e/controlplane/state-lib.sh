# shellcheck shell=bash
# What the teardown scripts (down.sh, down-node.sh, leak-check.sh) share:
# reading STATE_DIR/env and telling which processes belong to STATE_DIR.
# Sourced; uses the caller's $state (STATE_DIR, absolute).

# envval NAME: the last value STATE_DIR/env exports for NAME (read without
# sourcing the file, which may be half written).
envval() { sed -n "s/^export $1=//p" "$state/env" 2>/dev/null | tail -n 1; }

# ours PID: its command line names STATE_DIR (every component gets paths
# inside it), so a PID reused after the component died is never signalled.
# A zombie has an empty command line: not ours.
ours() {
  local cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $cmdline == *"$state/"* ]]
}

# naming TEXT: the PIDs whose command line contains TEXT, except this shell,
# the subshell running this, and their ancestors (a caller's own arguments
# name STATE_DIR too).
naming() {
  local a=$$ p skip=" $BASHPID "
  while [[ $a =~ ^[0-9]+$ && $a -gt 1 ]]; do
    skip+="$a "
    a=$(awk '{ print $4 }' "/proc/$a/stat" 2>/dev/null)
  done
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [[ $skip == *" $p "* ]] && continue
    [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline") == *"$1"* ]] && echo "$p"
  done
  return 0
}
