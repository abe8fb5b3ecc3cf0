#!/usr/bin/env bash
# Runs the named checks one after the other, shows each one's time, keeps going after a
# failure so one run reports everything, and ends with one line: "checks: N passed, M failed".
#   scripts/run-checks.sh lint collection molecule:postgres local-e2e
set -uo pipefail
passed=0; failed=0; report=()
for step in "$@"; do
  printf '\n===== check: %s =====\n' "$step"
  start=$(date +%s)
  case "$step" in
    molecule:*) molecule test -s "${step#molecule:}" ;;
    *) make --no-print-directory "$step" ;;
  esac
  rc=$?
  took=$(( $(date +%s) - start ))
  if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); report+=("  PASS  $step (${took}s)")
  else failed=$((failed + 1)); report+=("  FAIL  $step (${took}s, exit $rc)"); fi
done
printf '\n===== summary =====\n'
printf '%s\n' "${report[@]}"
printf 'checks: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
