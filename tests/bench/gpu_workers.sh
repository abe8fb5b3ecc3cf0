#!/usr/bin/env bash
# Benchmark (not a timed test): playbooks/gpu_workers.yml on N nodes (default 1; at most 8), each
# with 4 fake GPUs and 2 compute services per GPU: the molecule scenario's test doubles
# (tests/gpu/: fake nvidia-smi, the stand-in compute service, the compute API on each node's
# loopback), on nodes of its own (tests/bench/gpu/, network sciops-bench-gpu 172.30.51.0/24).
# Provisions, installs the test doubles (molecule/gpu_worker/prepare.yml), runs in check mode on
# the fresh nodes (it must not fail and must write nothing), converges cold with
# every node at once, then twice more (no-ops, which must change nothing); with 2 nodes or more,
# rolls a new worker version (another loglevel) through the nodes in batches of 2 and reads from
# the nodes' journals how long each node was left without a running worker. Writes the runs'
# JSON and logs to tests/output/bench/gpu-N/. Removes its nodes and network at the end.
#   tests/bench/gpu_workers.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/bench/lib.sh
source tests/bench/lib.sh
nodes=${1:-1}
[[ "$nodes" =~ ^[1-8]$ ]] || { echo "usage: $0 [N nodes, 1-8]" >&2; exit 2; }
inv=tests/bench/gpu
out=tests/output/bench/gpu-$nodes
export SCIOPS_BENCH_GPU_NODES=$nodes

cleanup() {  # every node a run of this benchmark may have made, and the network
  SCIOPS_BENCH_GPU_NODES=8 ansible-playbook -i "$inv" playbooks/provision.yml \
    -e '{"provision_state": "absent", "provision_confirm_absent": true}' >/dev/null 2>&1 || true
}
trap cleanup EXIT
bench_log "gpu workers, $nodes node(s): removing leftovers of an earlier run"
cleanup
rm -rf "$out" && mkdir -p "$out"

bench_log "provisioning bench-gpu1..$nodes (network sciops-bench-gpu) and their test doubles"
# (The role waits for systemd in each node; wait_for_connection under Mitogen timed out on fresh nodes here.)
bench_run "$out" provision any -i "$inv" playbooks/provision.yml \
  -e "{\"provision_environment\": \"$BENCH_ENVIRONMENT\", \"provision_wait_for_connection\": false}"
MOLECULE_PROJECT_DIRECTORY=$PWD ansible-playbook -i "$inv" molecule/gpu_worker/prepare.yml >"$out/doubles.log" 2>&1 \
  || { tail -n 40 "$out/doubles.log" >&2; exit 1; }

# Upstream's intervals (the scenario's short ones would load the machine with 8 services a node).
settings='"scopes": ["*-*-*"], "sleep_interval": 30, "heartbeat_interval": 60, "client_max_retries": 0'
all="{\"gpu_worker_serial\": $nodes, \"gpu_worker_settings\": {$settings, \"loglevel\": \"INFO\"}}"
bench_log "check mode on the fresh nodes (must not fail, must change nothing)"
bench_run "$out" check-fresh any -i "$inv" playbooks/gpu_workers.yml -e "$all" --check
for i in $(seq 1 "$nodes"); do
  if docker exec "bench-gpu$i" test -e /etc/sciops/gpu-worker; then
    bench_log "FAIL: check mode wrote /etc/sciops/gpu-worker on bench-gpu$i"; exit 1
  fi
done
bench_log "cold converge, every node at once"
bench_run "$out" cold any -i "$inv" playbooks/gpu_workers.yml -e "$all"
bench_log "no-op runs (each must change nothing)"
bench_run "$out" noop1 noop -i "$inv" playbooks/gpu_workers.yml -e "$all"
bench_run "$out" noop2 noop -i "$inv" playbooks/gpu_workers.yml -e "$all"

if [ "$nodes" -ge 2 ]; then
  bench_log "rolling a new worker version (loglevel DEBUG) through the nodes, 2 at a time"
  since=$(date -u +'%Y-%m-%d %H:%M:%S')
  bench_run "$out" rolling any -i "$inv" playbooks/gpu_workers.yml \
    -e "{\"gpu_worker_serial\": 2, \"gpu_worker_settings\": {$settings, \"loglevel\": \"DEBUG\"}}"
  # From systemd's own journal lines on each node (UTC seconds): the node's restart window (its first
  # worker stopping to its last one started again) and the most of its workers down at the same moment.
  for i in $(seq 1 "$nodes"); do
    docker exec "bench-gpu$i" journalctl --utc --since "$since" -o short-unix -u 'sciops-gpu-worker@*' --no-pager \
      | python tests/bench/report.py windows "bench-gpu$i"
  done >"$out/rolling-windows.jsonl"
fi
python tests/bench/report.py gpu "$nodes=$out" | tee "$out/table.md"
