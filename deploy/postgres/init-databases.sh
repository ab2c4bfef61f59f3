#!/bin/sh
# One database and one login role per service: each service owns its schema (Alembic migrates
# it on start) and cannot read another's tables. The postgres image runs this once, on an
# empty data directory (/docker-entrypoint-initdb.d). Passwords come from the environment:
# SEISAN_PG_INTAKE_PASSWORD, _CARDS_, _PAYOUTS_, _AUDIT_. Names are <prefix>_<service>
# (SEISAN_PG_PREFIX, default "seisan"): seisan_intake owns database seisan_intake, and so on.
set -eu
prefix="${SEISAN_PG_PREFIX:-seisan}"
for svc in intake cards payouts audit; do
  var="SEISAN_PG_$(echo "$svc" | tr a-z A-Z)_PASSWORD"
  eval "password=\${$var:?$var is required}"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
       -v role="${prefix}_$svc" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
