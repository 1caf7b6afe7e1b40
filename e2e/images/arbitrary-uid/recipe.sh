# shellcheck shell=bash
# Identity pattern (b): arbitrary uid (OpenShift style). USER 1001 with no
# group, so the process runs with gid 0; the data paths belong to group 0 and
# are group-writable (chgrp -R 0, chmod -R g=u), so any uid in group 0 can
# write them. Charts deploy it with only a pinned runAsUser; a runAsGroup other
# than 0 breaks its writes.
post() {
  install -D -m 0775 -o 1001 -g 0 /tmp/common/app.sh /srv/app/app.sh
  install -d -m 0775 -o 1001 -g 0 /srv/app /srv/app/data
}
