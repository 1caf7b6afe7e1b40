#!/bin/bash
# A small application that keeps its state in a directory inside its image
# ($APP_DATA, default /srv/app/data), as many do (caches, uploads, sqlite): it
# rewrites data/heartbeat every 2 seconds and exits 1 as soon as it cannot.
set -u
dir=${APP_DATA:-/srv/app/data}
echo "app: uid=$(id -u) gid=$(id -g) groups=$(id -G), writing $dir/heartbeat"
trap 'exit 0' TERM INT
n=0
while :; do
  n=$((n + 1))
  if ! { printf '%s %s\n' "$n" "$(date -u +%FT%TZ)" >"$dir/heartbeat.tmp" && mv -f "$dir/heartbeat.tmp" "$dir/heartbeat"; }; then
    echo "app: cannot write $dir as uid $(id -u) gid $(id -g)" >&2
    exit 1
  fi
  sleep 2 &
  wait $!
done
