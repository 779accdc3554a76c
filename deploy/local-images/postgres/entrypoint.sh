#!/bin/sh
# The official image's first start, in short: an empty data directory gets a cluster whose superuser is
# POSTGRES_USER (password POSTGRES_PASSWORD, required from other hosts) and a database POSTGRES_DB.
set -eu
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    initdb --username="$user" --pwfile="$password_file" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    database=${POSTGRES_DB:-$user}
    if [ "$database" != postgres ]; then
        pg_ctl --wait --silent --options="-c listen_addresses=''" start
        createdb --username="$user" "$database"
        pg_ctl --wait --silent --mode=fast stop
    fi
fi
exec postgres -c listen_addresses='*'
