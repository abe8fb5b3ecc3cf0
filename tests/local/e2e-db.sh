#!/usr/bin/env bash
# shellcheck shell=bash
# The database's TLS rule against the live local environment (sourced by tests/local/e2e.sh
# after `make up`; runs on its own too): from this machine (the docker network's gateway) the
# app user is refused without TLS and let in with sslmode=require; only the app nodes have a
# plain rule (the job-queue API connects with ssl=false upstream).
# Uses e2e.sh's log/fail and its $password (the app user's, from the local vault) when sourced.
if ! declare -F log >/dev/null; then log() { printf '[local-e2e-db] %s\n' "$*"; }; fi
if ! declare -F fail >/dev/null; then fail() { printf '[local-e2e-db] FAIL: %s\n' "$*" >&2; exit 1; }; fi

e2e_db_password=${password:-}
if [ -z "$e2e_db_password" ]; then
  e2e_db_password=$(ansible-inventory -i inventories/local --host local-db1 2>/dev/null \
    | python -c 'import json, sys; print(json.load(sys.stdin).get("vault_postgres_nmpi_dbadmin_password", ""))' || true)
fi
[ -n "$e2e_db_password" ] || fail "could not read the local vault"

e2e_db_login() {  # e2e_db_login SSLMODE: log in as nmpi_dbadmin from this machine; prints "ssl=<bool>" or the error
  PGPASSWORD="$e2e_db_password" python - "$1" <<'PY'
import os, sys, psycopg2
try:
    conn = psycopg2.connect(host="172.30.40.11", port=5432, dbname="nmpi", user="nmpi_dbadmin",
                            password=os.environ["PGPASSWORD"], sslmode=sys.argv[1], connect_timeout=10)
except psycopg2.OperationalError as exc:
    print(str(exc).strip().replace("\n", " "))
    sys.exit(1)
with conn.cursor() as cur:
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    print(f"ssl={str(cur.fetchone()[0]).lower()}")
PY
}

log "TLS is required from this machine: sslmode=disable refused, sslmode=require accepted"
if e2e_db_plain=$(e2e_db_login disable); then
  fail "a plain (sslmode=disable) login as nmpi_dbadmin from this machine was accepted ($e2e_db_plain)"
fi
grep -q 'no pg_hba.conf entry for host "172.30.40.1", user "nmpi_dbadmin", database "nmpi", no encryption' \
  <<<"$e2e_db_plain" || fail "the plain login failed for another reason than the TLS rule: $e2e_db_plain"
e2e_db_tls=$(e2e_db_login require) || fail "a TLS (sslmode=require) login as nmpi_dbadmin failed: $e2e_db_tls"
[ "$e2e_db_tls" = "ssl=true" ] || fail "the sslmode=require login is not encrypted: $e2e_db_tls"

# The only plain rule is for the app nodes' own addresses.
e2e_db_hba=$(docker exec local-db1 sh -c 'grep -E "^host[[:space:]]" /etc/postgresql/*/main/pg_hba.conf') \
  || fail "could not read pg_hba.conf on local-db1"
e2e_db_hba_bad=$(awk '$4 !~ /^(127\.0\.0\.1\/32|::1\/128|172\.30\.40\.21\/32)$/' <<<"$e2e_db_hba")
[ -z "$e2e_db_hba_bad" ] || fail "pg_hba.conf allows plain logins from more than the app node: $e2e_db_hba_bad"
log "database: TLS required from this machine; a plain login only from the app node (172.30.40.21)"
