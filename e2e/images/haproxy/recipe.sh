# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# haproxy as the official haproxy image packages it: USER haproxy (a name, 99:99),
# WORKDIR /var/lib/haproxy, config at /usr/local/etc/haproxy/haproxy.cfg,
# STOPSIGNAL SIGUSR1. Debian's haproxy 2.6. The official image ships no config;
# this one has a small one that listens on 8080 (non-root can bind it).
PACKAGES=(haproxy)

post() {
  ensure_user haproxy 99 99 /var/lib/haproxy /usr/sbin/nologin
  mkdir -p /var/lib/haproxy
  chown haproxy:haproxy /var/lib/haproxy
  install -D -m 0644 /tmp/recipe/files/haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg
  install -D -m 0755 /tmp/recipe/files/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
}
