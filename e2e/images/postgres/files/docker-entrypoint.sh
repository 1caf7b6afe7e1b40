#!/usr/bin/env bash
# The official postgres image's entry point, shortened: the same checks,
# ownership fixes, privilege drop and first-start initdb; no nss_wrapper (an
# arbitrary uid without a passwd entry fails at initdb) and no init scripts.
set -Eeo pipefail

if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

if [ "$1" = 'postgres' ]; then
	if [ "$(id -u)" = '0' ]; then
		mkdir -p "$PGDATA"
		chmod 00700 "$PGDATA" || :
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		mkdir -p /var/run/postgresql
		chmod 03775 /var/run/postgresql || :
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
		exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
	fi

	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "${POSTGRES_HOST_AUTH_METHOD:-}" != 'trust' ]; then
			echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
			echo >&2 '       Set POSTGRES_PASSWORD, or POSTGRES_HOST_AUTH_METHOD=trust.'
			exit 1
		fi
		mkdir -p "$PGDATA"
		chmod 00700 "$PGDATA" || :
		initdb --username="${POSTGRES_USER:-postgres}" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") >&2
		printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
		echo >&2 'PostgreSQL init process complete; ready for start up.'
	fi
fi

exec "$@"
