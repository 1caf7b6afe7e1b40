#!/bin/bash
# Runs as root inside one image's root filesystem (chroot, in a mount
# namespace of its own; build.sh sets that up). Sources /tmp/recipe/recipe.sh,
# which may set PACKAGES and define pre and post; installs the packages from
# Debian between the two, then removes what an install leaves behind.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ensure_user NAME UID GID HOME SHELL: the user and its group with exactly these
# ids, as the official image creates them. A package's postinst may already
# have made the user with ids of its own choosing: renumber it and whatever it owns.
ensure_user() {
  local name=$1 uid=$2 gid=$3 home=$4 shell=$5 old
  if old=$(getent group "$name" | cut -d: -f3) && [[ -n $old ]]; then
    if [[ $old != "$gid" ]]; then
      groupmod -g "$gid" "$name"
      find / -xdev -gid "$old" -exec chgrp -h "$gid" {} +
    fi
  else
    groupadd --system --gid "$gid" "$name"
  fi
  if old=$(id -u "$name" 2>/dev/null); then
    if [[ $old != "$uid" ]]; then
      usermod -u "$uid" "$name"
      find / -xdev -uid "$old" -exec chown -h "$uid" {} +
    fi
    usermod -g "$gid" -d "$home" -s "$shell" "$name"
  else
    useradd --system --uid "$uid" --gid "$gid" --home-dir "$home" --no-create-home --shell "$shell" "$name"
  fi
}

PACKAGES=()
pre() { :; }
post() { :; }
# shellcheck source=/dev/null
. /tmp/recipe/recipe.sh

pre
if ((${#PACKAGES[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
fi
post

# No apt-get clean: /var/cache/apt/archives is build.sh's package cache, bind
# mounted, and left out of every layer anyway.
rm -rf /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log /var/log/bootstrap.log \
  /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/cache/ldconfig/aux-cache
