# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# nginx as the official nginx image (Debian flavour) packages it: root at
# start, workers as nginx (101:101), /etc/nginx/nginx.conf and conf.d/default.conf,
# html in /usr/share/nginx/html, logs to stdout/stderr, port 80.
# The binary is Debian's nginx 1.22 (official: nginx.org's build).
PACKAGES=(nginx)

post() {
  ensure_user nginx 101 101 /nonexistent /bin/false
  rm -f /etc/nginx/sites-enabled/default
  install -m 0644 /tmp/recipe/files/nginx.conf /etc/nginx/nginx.conf
  install -D -m 0644 /tmp/recipe/files/default.conf /etc/nginx/conf.d/default.conf
  install -D -m 0644 /tmp/recipe/files/index.html /usr/share/nginx/html/index.html
  install -m 0755 /tmp/recipe/files/docker-entrypoint.sh /docker-entrypoint.sh
  mkdir -p /docker-entrypoint.d
  # Debian's build keeps request bodies and caches in /var/lib/nginx (root's,
  # 0755, as /var/cache/nginx in the official image): the master, as root,
  # creates the temp dirs there at start and chowns them to the worker user.
  ln -sf /dev/stdout /var/log/nginx/access.log
  ln -sf /dev/stderr /var/log/nginx/error.log
}
