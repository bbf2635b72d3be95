#!/bin/sh
# Third init step of the compose file's `postgres` service, after the Cogni
# schema (10-schema-2026-03.sql) and the least-privilege role
# (20-monitoring-role.sql, i.e. sql/monitoring-role.sql): give that role the
# password from its secret file, so the exporter can log in as it.
# The official postgres image runs this once, when the data volume is empty.
set -eu
password_file="${EXPORTER_DB_PASSWORD_FILE:-/run/secrets/exporter_db_password}"
password="$(cat "$password_file")"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set=password="$password" <<'SQL'
ALTER ROLE governance_exporter PASSWORD :'password';
SQL
