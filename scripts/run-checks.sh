#!/usr/bin/env bash
# Runs the named checks one after the other (or side by side, below), shows each one's time, keeps going after a
# failure so one run reports everything, and ends with one line: "checks: N passed, M failed".
#   scripts/run-checks.sh lint collection molecule:postgres local-e2e
# Checks joined by & (a single argument, "lint&unit") run at the same time.
# A check named plain:<check> runs without Mitogen (Ansible's own linear strategy), so the plain
# path stays tested while the others use the accelerator.
set -uo pipefail
passed=0; failed=0; report=()
root=$(cd "$(dirname "$0")/.." && pwd)
# Every pytest run (unit, molecule verifiers) appends the skips it took to this log
# (tests/lib/skip_policy.py); an unlisted skip already failed its check.
export SCIOPS_SKIP_LOG="$root/tests/output/skips.log"
mkdir -p "$root/tests/output" && : >"$SCIOPS_SKIP_LOG"
run_check() {  # run_check STEP: one check in the foreground; its exit status
  local step=$1 check=$1 plain=()
  if [ "${step#plain:}" != "$step" ]; then
    check=${step#plain:}; plain=(env -u ANSIBLE_STRATEGY -u ANSIBLE_STRATEGY_PLUGINS SCIOPS_MITOGEN=0)
  fi
  case "$check" in
    molecule:*) "${plain[@]}" molecule test -s "${check#molecule:}" ;;
    *) "${plain[@]}" make --no-print-directory "$check" ;;
  esac
}
logs="$root/tests/output/checks"
mkdir -p "$logs"
checkfile() { echo "$logs/${1//[:\/]/_}.$2"; }  # checkfile STEP EXT: a check's log or exit status file
logfile() { checkfile "$1" log; }
# The lines of a failed check's log that say what failed (pytest's summary, Ansible's fatal tasks, molecule's
# and ansible-lint's errors), repeated under the summary: a CI page that keeps only the end of the output still
# shows why, and the whole log stays in tests/output/checks/.
failure_lines() {  # failure_lines LOGFILE
  grep -aE '^(FAILED|ERROR) |^E +[A-Za-z]|fatal: \[|^CRITICAL |ERROR!|^make(\[[0-9]+\])?: \*\*\*|^[^ ]+:[0-9]+(:[0-9]+)?: ' "$1" \
    | grep -avE '^(FAILED - RETRYING|ERROR: [0-9]+ (warnings?|errors?) ignored)' | tail -n 12 | cut -c1-400 || true
}
record() {  # record STEP RC SECONDS [NOTE]
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); report+=("  PASS  $1 (${3}s${4:+, $4})")
  else
    failed=$((failed + 1)); report+=("  FAIL  $1 (${3}s${4:+, $4}, exit $2); its log: tests/output/checks/$(basename "$(logfile "$1")")")
    while IFS= read -r line; do report+=("        | $line"); done < <(failure_lines "$(logfile "$1")")
  fi
}
# The machine's CPU use over a check or group (all processes, so a group's checks together): how much of the
# time the cores were busy tells a check that computes from one that waits, which is what regrouping needs.
cpu_now() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9; exit}' /proc/stat; }  # busy total
cpu_busy() {  # cpu_busy "BUSY TOTAL" (a cpu_now from the start): the percentage since then
  local b0 t0 b1 t1; read -r b0 t0 <<<"$1"; read -r b1 t1 <<<"$(cpu_now)"
  echo "cpu $(( (b1 - b0) * 100 / ((t1 - t0) > 0 ? (t1 - t0) : 1) )) % of $(nproc) cores"
}
for group in "$@"; do
  IFS='&' read -r -a steps <<<"$group"
  if [ "${#steps[@]}" -eq 1 ]; then
    printf '\n===== check: %s =====\n' "$group"
    start=$(date +%s); cpu_start=$(cpu_now)
    run_check "$group" 2>&1 | tee "$(logfile "$group")"
    rc=${PIPESTATUS[0]}
    record "$group" "$rc" $(( $(date +%s) - start )) "$(cpu_busy "$cpu_start")"
    continue
  fi
  # Checks joined by & run at the same time (each on its own nodes and network); each one's
  # output is shown whole when the group has finished.
  printf '\n===== checks at the same time: %s =====\n' "${steps[*]}"
  group_start=$(date +%s); cpu_start=$(cpu_now)
  for step in "${steps[@]}"; do
    ( start=$(date +%s); run_check "$step" >"$(logfile "$step")" 2>&1; rc=$?
      echo "$rc $(( $(date +%s) - start ))" >"$(checkfile "$step" rc)" ) &
  done
  wait
  for step in "${steps[@]}"; do
    printf '\n===== check: %s (ran beside the others of its group) =====\n' "$step"
    cat "$(logfile "$step")"
    read -r rc took <"$(checkfile "$step" rc)" || { rc=1; took=0; }
    record "$step" "$rc" "$took" "in parallel"
  done
  report+=("        group wall time $(( $(date +%s) - group_start ))s, $(cpu_busy "$cpu_start")")
done
printf '\n===== summary =====\n'
printf '%s\n' "${report[@]}"
printf 'skips allowed by tests/skips.yml (the only tests that may skip):\n'
"$root/.venv/bin/python" "$root/tests/lib/skip_policy.py" || true
taken=$(cut -f1 "$SCIOPS_SKIP_LOG" | sort | uniq -c | awk '{printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2}')
printf 'skips taken: %s\n' "${taken:-none}"
grep -P '^UNLISTED\t' "$SCIOPS_SKIP_LOG" | cut -f2,3 | sed 's/^/  UNLISTED SKIP /' || true
printf 'checks: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
