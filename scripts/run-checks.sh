#!/usr/bin/env bash
# Runs the named checks one after the other, shows each one's time, keeps going after a
# failure so one run reports everything, and ends with one line: "checks: N passed, M failed".
#   scripts/run-checks.sh lint collection molecule:postgres local-e2e
# A check named plain:<check> runs without Mitogen (Ansible's own linear strategy), so the plain
# path stays tested while the others use the accelerator.
set -uo pipefail
passed=0; failed=0; report=()
root=$(cd "$(dirname "$0")/.." && pwd)
# Every pytest run (unit, molecule verifiers) appends the skips it took to this log
# (tests/lib/skip_policy.py); an unlisted skip already failed its check.
export SCIOPS_SKIP_LOG="$root/tests/output/skips.log"
mkdir -p "$root/tests/output" && : >"$SCIOPS_SKIP_LOG"
for step in "$@"; do
  printf '\n===== check: %s =====\n' "$step"
  start=$(date +%s)
  check=$step; plain=()
  if [ "${step#plain:}" != "$step" ]; then
    check=${step#plain:}; plain=(env -u ANSIBLE_STRATEGY -u ANSIBLE_STRATEGY_PLUGINS SCIOPS_MITOGEN=0)
  fi
  case "$check" in
    molecule:*) "${plain[@]}" molecule test -s "${check#molecule:}" ;;
    *) "${plain[@]}" make --no-print-directory "$check" ;;
  esac
  rc=$?
  took=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); report+=("  PASS  $step (${took}s)")
  else failed=$((failed + 1)); report+=("  FAIL  $step (${took}s, exit $rc)"); fi
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
