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

log "the services answer through the front door over HTTPS with certificates from the local ACME CA"
root=$(mktemp)
docker exec local-ca1 python3 -c 'import ssl, urllib.request
print(urllib.request.urlopen("https://127.0.0.1:15000/roots/0", context=ssl._create_unverified_context()).read().decode())' \
  >"$root" || fail "could not read the local ACME CA's root"
get() {  # get NAME PATH: the body over verified HTTPS (chain and name against the CA's root, no -k)
  curl -sS --fail --cacert "$root" --resolve "$1:443:172.30.40.21" "https://$1$2"
}
# name, path, text the answer must contain: the real applications from upstream's repository
checks=(
  "nmpi.local.sciops.test|/|This is the EBRAINS Neuromorphic Computing Job Queue API."
  "nmpi.local.sciops.test|/docs|swagger-ui"
  "nmpi.local.sciops.test|/statistics/queue-length|queue_name"
  "quotas.local.sciops.test|/statistics/queue-length|queue_name"
  "www.local.sciops.test|/|</html>"
  "docs.local.sciops.test|/|Developers"
  "docs.local.sciops.test|/deployment.html|</html>"
  "hub.local.sciops.test|/hub/api/|\"version\""
  "lab.local.sciops.test|/hub/api/|\"version\""
)
for check in "${checks[@]}"; do
  IFS='|' read -r name path text <<<"$check"
  grep -qE "(Service +[a-z_]+|JupyterHub +local-hub1 +[a-z]+:) +https://$name/" "$out" || fail "the summary does not show $name"
  body=$(get "$name" "$path") || fail "$name$path: no verified HTTPS answer"
  grep -qF "$text" <<<"$body" || fail "$name$path does not contain '$text'"
done
for name in nmpi.local.sciops.test quotas.local.sciops.test www.local.sciops.test docs.local.sciops.test \
            hub.local.sciops.test lab.local.sciops.test; do
  # HTTP redirects to HTTPS; HSTS and the security headers are sent; no version token.
  redirect=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' --resolve "$name:80:172.30.40.21" "http://$name/x")
  [ "$redirect" = "301 https://$name/x" ] || fail "$name: plain HTTP answered $redirect"
  headers=$(curl -sS -D - -o /dev/null --cacert "$root" --resolve "$name:443:172.30.40.21" "https://$name/")
  for header in 'strict-transport-security: max-age=' 'x-content-type-options: nosniff' 'x-frame-options: SAMEORIGIN' \
                'referrer-policy: ' 'server: nginx\s*$'; do
    grep -qiE "^$header" <<<"$headers" || fail "$name: no '$header' header"
  done
done
log "nmpi, quotas (routed to the job-queue API, which serves projects and quotas), www (splash), docs (Sphinx) and the hubs verified"

# The hubs (on local-hub1) through the front door on local-app1: logins, servers, kernels.
PYTHONPATH="$PWD/tests/lib:$PWD" python tests/local/e2e-hubs.py 172.30.40.21 hub.local.sciops.test lab.local.sciops.test \
  local-hub1 || fail "the hubs do not serve their users (above)"

# The job-queue's download folder: writable by the service, served by the front door at /tmp_download/.
probe="e2e-$RANDOM$RANDOM"
docker exec local-app1 systemd-run --quiet --wait --pipe --collect --property=User=nmpi_queue \
  --property=ReadWritePaths=/var/lib/sciops/nmpi_queue/tmp_download \
  /bin/sh -c "echo $probe > /var/lib/sciops/nmpi_queue/tmp_download/$probe.txt" || fail "the service user cannot write its download folder"
[ "$(get nmpi.local.sciops.test "/tmp_download/$probe.txt")" = "$probe" ] || fail "the download folder is not served at /tmp_download/"
log "the download folder is written by the service user and served at /tmp_download/"

docker exec local-app1 systemctl is-active --quiet certbot.timer || fail "the renewal timer is not active"
next=$(docker exec local-app1 systemctl show certbot.timer -p NextElapseUSecRealtime --value)
serial() { openssl s_client -connect 172.30.40.21:443 -servername nmpi.local.sciops.test </dev/null 2>/dev/null | openssl x509 -noout -serial; }
pubkey() { openssl s_client -connect 172.30.40.21:443 -servername nmpi.local.sciops.test </dev/null 2>/dev/null | openssl x509 -noout -pubkey | sha256sum; }
before=$(serial)
key_before=$(pubkey)
workers=$(docker exec local-app1 pgrep -d, nginx)
# Local certificates live 20 days, inside certbot's 30-day window: the timer's own service renews
# them, and nginx serves the new certificate without a reload (it reads ACME certificates at each
# TLS handshake), so keep-alive clients during the renewal see no failed request.
renewal=$(python - <<'PY'
import subprocess, sys
sys.path.insert(0, "tests/lib")
from http_load import Load
with Load("172.30.40.21", "nmpi.local.sciops.test", clients=4, keepalive=True, period=0.05) as kept, \
        Load("172.30.40.21", "nmpi.local.sciops.test", clients=2, keepalive=False, period=0.05) as fresh:
    run = subprocess.run(["docker", "exec", "local-app1", "systemctl", "start", "certbot.service"], check=False)
print(f"rc={run.returncode} failed={len(kept.failed()) + len(fresh.failed())} keep-alive: {kept.summary()}; {fresh.summary()}"
      f"; failures: {(kept.failed() + fresh.failed())[:5]}")
PY
)
grep -q '^rc=0 ' <<<"$renewal" || fail "certbot.service (the timer's job) failed: $renewal"
grep -q ' failed=0 ' <<<"$renewal" || fail "requests failed during the renewal: $renewal"
after=$(serial)
if [ -z "$before" ] || [ "$before" = "$after" ]; then fail "the timer's renewal did not replace the served certificate ($before -> $after)"; fi
[ "$(docker exec local-app1 pgrep -d, nginx)" = "$workers" ] || fail "the renewal reloaded nginx (its workers changed)"
# The renewal keeps the key (certbot --reuse-key): nginx opens the certificate and the key apart
# at each handshake, so a new key would fail the handshakes that pair the new certificate with it.
[ "$(pubkey)" = "$key_before" ] || fail "the renewal changed the certificate's key"
log "certificates renew by themselves: certbot.timer (next run $next) renewed nmpi.local.sciops.test ($before -> $after), served without a reload; under load: $renewal"

log "every node is hardened: default-deny firewall; PostgreSQL refuses a node that is not an app node"
for node in local-ca1 local-db1 local-app1 local-hub1; do
  # (output captured first: grep -q would end the pipe early under pipefail)
  rules=$(docker exec "$node" nft list chain inet sciops input) || fail "$node: no firewall table"
  grep -q 'policy drop' <<<"$rules" || fail "$node: no default-deny input chain"
  sshd=$(docker exec "$node" sshd -T 2>/dev/null) || fail "$node: sshd -T failed"
  grep -qx 'passwordauthentication no' <<<"$sshd" || fail "$node: sshd allows passwords"
done
docker exec local-ca1 python3 -c 'import socket; socket.create_connection(("172.30.40.11", 5432), timeout=3)' 2>/dev/null \
  && fail "the database answered a node that is not an app node"
docker exec local-app1 python3 -c 'import socket; socket.create_connection(("172.30.40.11", 5432), timeout=3)' \
  || fail "the database refused the app node"
log "firewalls: 5432 reachable from local-app1, not from local-ca1"
# The hubs' proxies listen on local-hub1's address for the front door only.
docker exec local-ca1 python3 -c 'import socket; socket.create_connection(("172.30.40.31", 8000), timeout=3)' 2>/dev/null \
  && fail "the public hub's proxy answered a node that is not the front door"
docker exec local-app1 python3 -c 'import socket; socket.create_connection(("172.30.40.31", 8000), timeout=3)' \
  || fail "the public hub's proxy refused the front door"
log "firewalls: the hubs' proxies (local-hub1:8000, 8010) reachable from the front door only"

# The forum's backups reach the S3 test endpoint, are fresh and restore (tests/local/e2e-forum.sh).
# shellcheck source=tests/local/e2e-forum.sh
source tests/local/e2e-forum.sh

# Every playbook refuses bad input before it changes anything (tests/local/e2e-validate.sh), and
# the database requires TLS where the summary says so (tests/local/e2e-db.sh).
# shellcheck source=tests/local/e2e-validate.sh
source tests/local/e2e-validate.sh
# shellcheck source=tests/local/e2e-db.sh
source tests/local/e2e-db.sh
v=$(ansible-playbook -i inventories/local playbooks/staging.yml 2>&1) && fail "staging.yml ran against the local inventory"
grep -q "runs only against inventories/staging" <<<"$v" || fail "no clear message for the wrong inventory: $v"

log "make up (second run: must change nothing)"
started=$(date +%s)
make --no-print-directory up >"$out" 2>&1 || { cat "$out"; fail "second make up failed"; }
took=$(( $(date +%s) - started ))
changed=$(grep -E '^[a-z0-9-]+ +: ok=' "$out" | sed -E 's/.*changed=([0-9]+).*/\1/' | awk '{s += $1} END {print s + 0}')
[ "$changed" = "0" ] || { grep -E 'changed:' "$out" || true; fail "second make up changed $changed things"; }
log "second run: changed=0 in ${took} s"
# A hand-edited file, mode, removed file or stopped timer is still repaired and reported.
# shellcheck source=tests/local/e2e-drift.sh
source tests/local/e2e-drift.sh

# AWX's job templates the way AWX runs them (ansible-runner; survey defaults and answers, check
# mode, diff, vault), each operation once against this environment, then one in the execution
# environment built from Debian by `make ee` (tests/local/e2e-awx.py).
log "AWX: every job template's playbook through ansible-runner (tests/local/e2e-awx.py)"
awx_started=$(date +%s)
python tests/local/e2e-awx.py || fail "an AWX job template's run failed or did not do what it should (above)"
log "AWX: the templates' jobs took $(( $(date +%s) - awx_started )) s"
ee_image=${SCIOPS_EE_IMAGE:-sciops/ee:local}
docker image inspect "$ee_image" >/dev/null 2>&1 || fail "no image $ee_image: run make ee (make local-e2e builds it)"
python tests/local/e2e-awx.py --ee "$ee_image" || fail "the template's job in the execution environment $ee_image failed (above)"

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
