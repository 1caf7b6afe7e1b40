# shellcheck shell=bash
# A small application that writes into a path inside its image, running as
# root (no USER), as many images do: /srv/app/data is root's, 0755.
post() {
  install -D -m 0755 /tmp/common/app.sh /srv/app/app.sh
  install -d -m 0755 /srv/app/data
}
