# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# Apache httpd as the official httpd image runs it: root at start, workers as
# an unprivileged user (official: daemon; Debian: www-data 33:33), port 80,
# logs to stdout/stderr, httpd-foreground as the command, STOPSIGNAL SIGWINCH
# (graceful stop). Debian's apache2 2.4 keeps its config in /etc/apache2 (the
# official image: /usr/local/apache2/conf) and serves /var/www/html.
PACKAGES=(apache2)

post() {
  # As the official httpd.conf: errors to the container's stderr, access log to stdout.
  sed -ri 's!^(\s*ErrorLog)\s+\S+!\1 /proc/self/fd/2!' /etc/apache2/apache2.conf /etc/apache2/sites-available/000-default.conf
  sed -ri 's!^(\s*CustomLog)\s+\S+!\1 /proc/self/fd/1!' /etc/apache2/sites-available/000-default.conf
  grep -q '^ErrorLog /proc/self/fd/2' /etc/apache2/apache2.conf
  install -D -m 0755 /tmp/recipe/files/httpd-foreground /usr/local/bin/httpd-foreground
}
