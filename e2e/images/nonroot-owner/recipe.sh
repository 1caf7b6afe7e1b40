# shellcheck shell=bash
# Identity pattern (a): the image names its own non-root numeric USER
# (10001:10001), which owns the application's files. Charts deploy it with
# only runAsNonRoot: true; a different runAsUser or runAsGroup breaks its writes.
post() {
  groupadd --system --gid 10001 app
  useradd --system --uid 10001 --gid 10001 --home-dir /srv/app --no-create-home --shell /usr/sbin/nologin app
  install -D -m 0755 -o 10001 -g 10001 /tmp/common/app.sh /srv/app/app.sh
  install -d -m 0755 -o 10001 -g 10001 /srv/app /srv/app/data
}
