#!/bin/sh
# Run once by the official postgres image on an empty data directory (mounted into
# /docker-entrypoint-initdb.d): one database per node, named in $MIRA_DATABASES
# (space-separated), owned by $POSTGRES_USER.
set -eu
for db in ${MIRA_DATABASES:-}; do
  echo "postgres-init.sh: creating database $db"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
