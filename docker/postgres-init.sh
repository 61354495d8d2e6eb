#!/bin/sh
# Runs once, when the postgres container initialises an empty volume: the login role the
# fieldsync service connects as. The schema's owner (POSTGRES_USER) runs the migrations and
# grants this role its rights at every start; it may not UPDATE or DELETE audit events.
set -eu
psql -v ON_ERROR_STOP=1 -v pw="$APP_DB_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE fieldsync_app LOGIN PASSWORD :'pw';
SQL
