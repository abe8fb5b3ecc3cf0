#!/usr/bin/env bash
# Benchmark (not a timed test): the whole platform (playbooks/local.yml) on nodes of its own,
# with N app nodes (default 1; at most 8), on the local environment's configuration
# (tests/bench/platform/: its group_vars linked, its own names, addresses and network
# sciops-bench-platform 172.30.45.0/24). Removes leftovers, provisions (twice: creating, then
# a no-op), converges cold, then twice more (no-ops, which must change nothing), prints the
# per-role table and writes it with the runs' JSON and logs to tests/output/bench/platform-N/.
# Removes its nodes and network at the end. Fails only when a run fails or a no-op changes.
# SCIOPS_BENCH_CORE=1: without the hub and the forum (the three-node platform before them), in
# tests/output/bench/platform-core-N/.
#   tests/bench/platform.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
nodes=${1:-1}
[[ "$nodes" =~ ^[1-8]$ ]] || { echo "usage: $0 [N app nodes, 1-8]" >&2; exit 2; }
inv=tests/bench/platform
core=${SCIOPS_BENCH_CORE:-0}
variant=$nodes others=" bench-hub1, bench-forum1,"
if [ "$core" = 1 ]; then variant=core-$nodes others=""; fi
out=tests/output/bench/platform-$variant
export SCIOPS_BENCH_APP_NODES=$nodes SCIOPS_BENCH_CORE=$core

cleanup() {  # every node a run of this benchmark may have made (8 app nodes), and the network
  SCIOPS_BENCH_APP_NODES=8 SCIOPS_BENCH_CORE=0 ansible-playbook -i "$inv" playbooks/provision.yml \
    -e '{"provision_state": "absent", "provision_confirm_absent": true}' >/dev/null 2>&1 || true
}
trap cleanup EXIT
bench_log "platform, $nodes app node(s): removing leftovers of an earlier run"
cleanup
rm -rf "$out" && mkdir -p "$out"
env_arg="{\"provision_environment\": \"$BENCH_ENVIRONMENT\"}"

bench_log "provisioning bench-ca1, bench-db1,$others bench-app1..$nodes (network sciops-bench-platform)"
bench_run "$out" provision-cold any -i "$inv" playbooks/provision.yml -e "$env_arg"
bench_log "cold converge of the whole platform (playbooks/local.yml)"
bench_run "$out" cold any -i "$inv" playbooks/local.yml
bench_log "no-op runs (each must change nothing)"
bench_run "$out" provision-noop noop -i "$inv" playbooks/provision.yml -e "$env_arg"
bench_run "$out" noop1 noop -i "$inv" playbooks/local.yml
bench_run "$out" noop2 noop -i "$inv" playbooks/local.yml

python tests/bench/report.py platform "$out" >"$out/table.md"
cat "$out/table.md"
