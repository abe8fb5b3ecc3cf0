#!/usr/bin/env bash
# The README's front door, end to end: `make up` deploys the local environment, the database
# answers from this machine with the app user's password (and refuses a wrong one), a second
# `make up` changes nothing, and `make down` leaves no container or network behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH"
log() { printf '[local-e2e] %s\n' "$*"; }
fail() { printf '[local-e2e] FAIL: %s\n' "$*" >&2; exit 1; }
# A local environment that was up before the test (a user's `make up`) is left up afterwards.
preexisting=$(docker ps -aq --filter label=org.sciops.environment=local)
if [ -z "$preexisting" ]; then
  trap 'make --no-print-directory down >/dev/null 2>&1 || true' EXIT
else
  log "the local environment is already up: testing against it and leaving it up"
fi

out=$(mktemp)
log "make up (first run)"
make --no-print-directory up 2>&1 | tee "$out" | grep -E '^(PLAY|TASK|ok:|changed:|fatal|failed|  - |    msg|localhost|local-)' || true
grep -qE "PostgreSQL +local-db1 +172.30.40.11:5432" "$out" || fail "the summary does not show the database node"

password=$(ansible-inventory -i inventories/local --host local-db1 2>/dev/null \
  | python -c 'import json, sys; print(json.load(sys.stdin).get("vault_postgres_nmpi_dbadmin_password", ""))' || true)
[ -n "$password" ] || fail "could not read the local vault"
log "connecting from this machine to 172.30.40.11:5432 as nmpi_dbadmin"
sql() {  # sql PASSWORD STATEMENT: from this machine over TCP (psycopg2 in .venv), TLS required
  PGPASSWORD="$1" python - "$2" <<'PY'
import os, sys, psycopg2
conn = psycopg2.connect(host="172.30.40.11", port=5432, dbname="nmpi", user="nmpi_dbadmin",
                        password=os.environ["PGPASSWORD"], sslmode="require", connect_timeout=10)
conn.autocommit = True
with conn.cursor() as cur:
    cur.execute(sys.argv[1])
    print(cur.fetchone()[0])
PY
}
answer=$(sql "$password" "CREATE TABLE IF NOT EXISTS e2e (id int); INSERT INTO e2e VALUES (1); SELECT current_user || '@' || current_database()")
[ "$answer" = "nmpi_dbadmin@nmpi" ] || fail "unexpected answer: $answer"
if sql wrong-password "SELECT 1" >/dev/null 2>&1; then
  fail "a wrong password was accepted"
fi
log "the app user logs in over TCP; a wrong password is refused"

log "the services answer through the front door (https://nmpi.local.sciops.test, https://quotas.local.sciops.test)"
grep -qE "Service +nmpi_queue +https://nmpi.local.sciops.test/" "$out" || fail "the summary does not show the job-queue service"
python - <<'PY' || fail "a service did not answer through the front door"
import json, ssl, urllib.request
tls = ssl.create_default_context()
tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE  # self-signed placeholder until a certificate exists
for name in ("nmpi.local.sciops.test", "quotas.local.sciops.test"):
    for method, path, body, expect in (("GET", "/", None, 200), ("POST", "/jobs", b"{}", 201)):
        req = urllib.request.Request("https://172.30.40.21" + path, data=body, method=method, headers={"Host": name})
        with urllib.request.urlopen(req, timeout=10, context=tls) as resp:
            assert resp.status == expect, (name, path, resp.status)
            answer = json.loads(resp.read())
    print(name, "->", answer)
PY

log "the validation play refuses a misspelled variable and a string where a boolean belongs"
v=$(ansible-playbook -i inventories/local playbooks/local.yml -e postgres_lisen_addresses=x 2>&1) && fail "a misspelled variable was accepted"
grep -q "unknown variable(s) postgres_lisen_addresses" <<<"$v" || fail "no clear message for a misspelled variable: $v"
v=$(ansible-playbook -i inventories/local playbooks/local.yml -e postgres_ssl=no 2>&1) && fail "a string boolean was accepted"
grep -q "postgres_ssl must be true or false" <<<"$v" || fail "no clear message for a string boolean: $v"
v=$(ansible-playbook -i inventories/local playbooks/staging.yml 2>&1) && fail "staging.yml ran against the local inventory"
grep -q "runs only against inventories/staging" <<<"$v" || fail "no clear message for the wrong inventory: $v"

log "make up (second run: must change nothing)"
make --no-print-directory up >"$out" 2>&1 || { cat "$out"; fail "second make up failed"; }
changed=$(grep -E '^[a-z0-9-]+ +: ok=' "$out" | sed -E 's/.*changed=([0-9]+).*/\1/' | awk '{s += $1} END {print s + 0}')
[ "$changed" = "0" ] || { grep -E 'changed:' "$out" || true; fail "second make up changed $changed things"; }
log "second run: changed=0"

if [ -n "$preexisting" ]; then
  log "OK (make down not exercised: the environment was up before the test)"
  exit 0
fi
log "make down"
make --no-print-directory down >/dev/null
[ -z "$(docker ps -aq --filter label=org.sciops.environment=local)" ] || fail "containers left after make down"
! docker network inspect sciops-local >/dev/null 2>&1 || fail "network sciops-local left after make down"
trap - EXIT
log "OK"
