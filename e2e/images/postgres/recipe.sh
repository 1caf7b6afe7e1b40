# shellcheck shell=bash disable=SC2034 # PACKAGES is read by chroot-setup.sh
# PostgreSQL as the official postgres image packages it: root at start; the entry
# point makes PGDATA (/var/lib/postgresql/data) and /var/run/postgresql
# postgres-owned, drops to postgres (999:999; official: gosu, here setpriv),
# initdb's an empty PGDATA and runs postgres on 5432. Debian's PostgreSQL 15.
PACKAGES=(postgresql-common postgresql-15)

pre() {
  # As the official image: no cluster at build time, the entry point makes one.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/docker.conf
}

post() {
  ensure_user postgres 999 999 /var/lib/postgresql /bin/bash
  sed -ri "s!^#?(listen_addresses)\s*=\s*\S+.*!\1 = '*'!" /usr/share/postgresql/15/postgresql.conf.sample
  grep -F "listen_addresses = '*'" /usr/share/postgresql/15/postgresql.conf.sample
  mkdir -p /var/run/postgresql /var/lib/postgresql/data /docker-entrypoint-initdb.d
  chown -R postgres:postgres /var/run/postgresql /var/lib/postgresql
  chmod 3777 /var/run/postgresql
  chmod 1777 /var/lib/postgresql/data
  install -D -m 0755 /tmp/recipe/files/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
}
