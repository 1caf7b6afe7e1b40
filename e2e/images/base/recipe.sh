# shellcheck shell=bash
# The base layer every server image shares: Debian bookworm minbase (debootstrap),
# trimmed the way debian:bookworm-slim is (no docs, man pages or locales).
# build.sh runs debootstrap; this runs in the result.

pre() {
  # As debian:bookworm-slim: dpkg skips documentation from now on...
  cat >/etc/dpkg/dpkg.cfg.d/docker-slim <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
CFG
  # ...and what is already there goes.
  find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete
  find /usr/share/doc -mindepth 1 -type d -empty -delete
  rm -rf /usr/share/man/* /usr/share/groff/* /usr/share/info/* /usr/share/lintian/* /usr/share/locale/*
  # Packages must not start services in a build (as in Debian's container images).
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  # Point releases and security updates too, as Debian's own images have.
  rm -f /etc/apt/sources.list
  cat >/etc/apt/sources.list.d/debian.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  # The package lists stay in the base rootfs for the image builds (build.sh
  # leaves them out of every layer).
  apt-get update -qq
  apt-get upgrade -y -qq >/dev/null
}
