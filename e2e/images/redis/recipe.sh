# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# redis as the official redis image packages it: root at start; the entry point
# chowns /data to redis (999:999) and drops to it (official: gosu; here util-linux
# setpriv); WORKDIR and VOLUME /data, port 6379. Debian's redis 7.0.
PACKAGES=(redis-server)

post() {
  ensure_user redis 999 999 /home/redis /usr/sbin/nologin
  mkdir -p /data
  chown redis:redis /data
  install -D -m 0755 /tmp/recipe/files/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
}
