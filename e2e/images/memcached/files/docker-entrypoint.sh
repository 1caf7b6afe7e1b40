#!/bin/sh
# As the official memcached image's entry point.
set -e

# first arg is `-f` or `--some-option`
if [ "${1#-}" != "$1" ]; then
    set -- memcached "$@"
fi

exec "$@"
