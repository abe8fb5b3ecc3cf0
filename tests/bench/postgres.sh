#!/usr/bin/env bash
# Benchmark (not a timed test): converge the postgres role on a fresh node (one database, two
# users, privileges), then again, and print cold and no-op wall times, task counts and changes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_NOCOLOR=1
inv=tests/bench/inventory
cleanup() {
  ansible-playbook -i "$inv" playbooks/provision.yml -e '{"provision_state": "absent", "provision_confirm_absent": true}' >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
echo "[bench] provisioning a fresh node (bench-db1)..."
ansible-playbook -i "$inv" playbooks/provision.yml >/dev/null

run() {  # run LABEL: converge, print wall time, tasks and changed from the recap
  local label=$1 log start end
  log=$(mktemp)
  start=$(date +%s.%N)
  ansible-playbook -i "$inv" playbooks/postgres.yml >"$log" 2>&1 || { cat "$log"; exit 1; }
  end=$(date +%s.%N)
  local recap tasks
  recap=$(grep -E '^bench-db1 +: ok=' "$log")
  tasks=$(grep -cE '^TASK \[' "$log")
  printf '[bench] %-8s wall %6.1f s   tasks %3d   %s\n' "$label" "$(echo "$end - $start" | awk '{print $1 - $3}')" "$tasks" \
    "$(sed -E 's/^.*(ok=[0-9]+ +changed=[0-9]+).*$/\1/' <<<"$recap")"
  rm -f "$log"
}
run cold
run no-op
run no-op
