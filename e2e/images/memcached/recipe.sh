# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# memcached as the official memcached image packages it: USER memcache (a
# name, not a number: 11211:11211), port 11211. Debian's memcached 1.6.
PACKAGES=(memcached)

post() {
  ensure_user memcache 11211 11211 /home/memcache /usr/sbin/nologin
  install -D -m 0755 /tmp/recipe/files/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
}
