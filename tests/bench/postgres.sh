#!/usr/bin/env bash
# Benchmark (not a timed test): converge the postgres role on a fresh node (one database, two
# users, privileges), then twice again (no-ops, which must change nothing), and print cold and
# no-op wall times, task counts and changes; the runs' per-role JSON, logs and the table go to
# tests/output/bench/postgres/. Fails only when a run fails or a no-op changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
inv=tests/bench/inventory
out=tests/output/bench/postgres
cleanup() {
  ansible-playbook -i "$inv" playbooks/provision.yml -e '{"provision_state": "absent", "provision_confirm_absent": true}' >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
rm -rf "$out" && mkdir -p "$out"
bench_log "provisioning a fresh node (bench-db1)..."
ansible-playbook -i "$inv" playbooks/provision.yml -e "{\"provision_environment\": \"$BENCH_ENVIRONMENT\"}" >"$out/provision.log" 2>&1 \
  || { tail -n 40 "$out/provision.log" >&2; exit 1; }

bench_run "$out" cold any -i "$inv" playbooks/postgres.yml
bench_run "$out" noop1 noop -i "$inv" playbooks/postgres.yml
bench_run "$out" noop2 noop -i "$inv" playbooks/postgres.yml

python tests/bench/report.py postgres "$out" >"$out/table.md"
cat "$out/table.md"
