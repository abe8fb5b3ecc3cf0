#!/usr/bin/env bash
# Shared by the benchmark scripts (sourced; run from the repository root): the same Ansible
# set-up as the Makefile (Mitogen unless SCIOPS_MITOGEN=0, the job-queue archive), the
# benchmark callback (tests/bench/callback_plugins/sciops_bench.py), and bench_run, which runs
# one playbook and keeps its log and per-role JSON.
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0
export SCIOPS_NMPI_ARCHIVE="${SCIOPS_NMPI_ARCHIVE:-$(cd .. && pwd)/shared/upstream/ebrains-neuromorphic-job-queue-api-59c92ce.tar.gz}"
if [ -z "${ANSIBLE_STRATEGY:-}" ] && [ "${SCIOPS_MITOGEN:-1}" = 1 ]; then
  for dir in "$PWD"/.venv/lib/python3*/site-packages/ansible_mitogen/plugins/strategy; do
    if [ -d "$dir" ]; then
      export ANSIBLE_STRATEGY_PLUGINS=$dir ANSIBLE_STRATEGY=mitogen_linear
      break
    fi
  done
fi
export ANSIBLE_CALLBACK_PLUGINS="$PWD/tests/bench/callback_plugins"
export ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks,sciops_bench"
# An inventory that does not parse (a wrong SCIOPS_BENCH_APP_NODES) stops the run instead of a warning.
# (tests/bench/platform/hosts.py is the inventory's script: a __pycache__ beside it is no source.)
export ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=true ANSIBLE_INVENTORY_IGNORE_REGEX=__pycache__
# The nodes' containers and network carry this environment label (not "local": the local
# environment's checks count the containers labelled local).
export BENCH_ENVIRONMENT=bench

bench_log() { printf '[bench] %s\n' "$*" >&2; }

# bench_run OUTDIR LABEL EXPECT ansible-playbook-arguments...: one run, timed; OUTDIR/LABEL.log
# and OUTDIR/LABEL.json (the callback's figures plus the process's own wall time). EXPECT is
# "noop" (fail when anything changed) or "any". Fails with the log's tail when the run fails.
bench_run() {
  local outdir=$1 label=$2 expect=$3 start end rc=0
  shift 3
  mkdir -p "$outdir"
  start=$(date +%s.%N)
  SCIOPS_BENCH_JSON="$outdir/$label.json" ansible-playbook "$@" >"$outdir/$label.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$outdir/$label.log" >&2
    bench_log "FAIL: $label: ansible-playbook $* exited $rc (log: $outdir/$label.log)"
    return 1
  fi
  python tests/bench/report.py stamp "$outdir/$label.json" --label "$label" --expect "$expect" \
    --wall "$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.3f", e - s}')" || {
    bench_log "FAIL: $label (log: $outdir/$label.log)"
    return 1
  }
}
