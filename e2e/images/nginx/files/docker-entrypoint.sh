#!/bin/sh
# As the official image's entry point: run /docker-entrypoint.d/*.sh before
# nginx, then exec the command.
set -e
if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    for f in /docker-entrypoint.d/*.sh; do
        [ -x "$f" ] && "$f"
    done
fi
exec "$@"
