# shellcheck shell=bash
# Sourced by tests/local/e2e.sh against the live local environment (its log and fail, the
# repository root as the working directory). Every playbook validates its inputs before anything
# else (playbooks/validate.yml): run with a misspelt role variable, a string where a boolean
# belongs and a string where a number belongs, each exits non-zero with its one-line message, and
# the managed trees of every node are unchanged afterwards; each service playbook refuses an
# unknown service (and a missing one) naming the known services. The runs go two at a time.
# Standalone (nodes up with `make up`, SCIOPS_NMPI_ARCHIVE set):
#   bash tests/local/e2e-validate.sh
# SCIOPS_VALIDATE_NO_NODES=1 runs it without nodes (the runs only; no tree is compared).
if ! declare -F fail >/dev/null; then
  set -euo pipefail
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  export PATH="$PWD/.venv/bin:$PATH"
  log() { printf '[local-e2e] %s\n' "$*"; }
  fail() { printf '[local-e2e] FAIL: %s\n' "$*" >&2; exit 1; }
fi

log "every playbook refuses bad input before it runs (misspelt, string boolean, string number; unknown service)"
validate_started=$(date +%s)
validate_dir=$(mktemp -d)
# Playbooks that do not start with the validation (as in tests/unit/plugins/filter/test_playbook_validation.py):
# validate.yml is the validation; service_target.yml is imported only as a part, after it.
mapfile -t validate_playbooks < <(find playbooks -maxdepth 1 -name '*.yml' ! -name validate.yml ! -name service_target.yml | sort)
[ "${#validate_playbooks[@]}" -gt 10 ] || fail "found only ${#validate_playbooks[@]} playbooks"
validate_known="known services: nmpi_queue, splash, docs"

# One case a line: playbook|expected message|-e argument... ('|'-separated; no '|' in them).
validate_cases="$validate_dir/cases"
for playbook in "${validate_playbooks[@]}"; do
  printf '%s|%s|%s\n' "$playbook" "unknown variable postgres_prot; did you mean postgres_port?" "postgres_prot=5433"
  printf '%s|%s|%s\n' "$playbook" "postgres_ssl must be a boolean; got the string 'false' (with -e key=value every value is a string: pass JSON, -e '{\"postgres_ssl\": false}')" "postgres_ssl=false"
  printf '%s|%s|%s\n' "$playbook" "postgres_port must be an integer; got the string '5433' (with -e key=value every value is a string: pass JSON, -e '{\"postgres_port\": 5433}')" "postgres_port=5433"
done >"$validate_cases"
# The service playbooks, with valid other inputs: a misspelt service; and a missing one for
# deploy_service.yml (the same check, service_target.yml, serves them all; each run costs two
# catalogues, so one is enough).
for spec in "deploy_service|colour=green" "switch_colour|colour=green" "rollback|" "terminate_service|colour=green" \
            "service_maintenance|status=down" "service_logs|colour=green" "service_status|"; do
  IFS='|' read -r name extra <<<"$spec"
  printf '%s|%s|%s\n' "playbooks/$name.yml" "Unknown service 'nmpi'; $validate_known." "service=nmpi${extra:+|$extra}"
  [ "$name" != deploy_service ] || printf '%s|%s%s\n' "playbooks/$name.yml" "Set -e service=NAME; $validate_known." "${extra:+|$extra}"
done >>"$validate_cases"

# What the nodes hold under the trees the playbooks manage: path, size and mtime of every file.
validate_nodes=()
if [ "${SCIOPS_VALIDATE_NO_NODES:-0}" != 1 ]; then
  mapfile -t validate_nodes < <(docker ps --filter label=org.sciops.environment=local --format '{{.Names}}' | sort)
  [ "${#validate_nodes[@]}" -gt 0 ] || fail "no node of the local environment is up (make up first, or SCIOPS_VALIDATE_NO_NODES=1)"
fi
validate_trees() {
  local node
  for node in "${validate_nodes[@]}"; do
    printf '%s %s\n' "$node" "$(docker exec "$node" sh -c \
      "find /etc /srv /var/lib/sciops -xdev -type f -printf '%p %s %T@\n' 2>/dev/null | sort | md5sum" | cut -d' ' -f1)"
  done
}
validate_before=$(validate_trees)

# One run: exits 0 when the playbook failed with the expected message on an error line, and (for
# the validation's refusals) with that one error line only.
validate_case() {
  local fields out rc=0 errors arg args=()
  IFS='|' read -r -a fields <<<"$1"
  for arg in "${fields[@]:2}"; do args+=(-e "$arg"); done
  out=$(ansible-playbook -i inventories/local "${fields[0]}" "${args[@]}" 2>&1) || rc=$?
  errors=$(grep -c '^\[ERROR\]' <<<"$out" || true)
  if [ "$rc" -ne 0 ] && grep -qF "[ERROR]: Task failed: Action failed: ${fields[1]}" <<<"$out" \
     && { [ "$errors" = 1 ] || [[ ${fields[1]} = *" service"* ]]; }; then
    return 0
  fi
  printf '%s %s: rc=%s, %s error lines, expected "%s"\n%s\n' "${fields[0]}" "${args[*]}" "$rc" "$errors" "${fields[1]}" \
    "$(grep -E '^\[ERROR\]|^PLAY |fatal' <<<"$out" | head -20)" >&2
  return 1
}
export -f validate_case
# shellcheck disable=SC2016  # $1 is the inner bash's argument, expanded there, not here
if ! tr '\n' '\0' <"$validate_cases" | xargs -0 -P 2 -I{} bash -c 'validate_case "$1"' _ {} 2>"$validate_dir/failures"; then
  cat "$validate_dir/failures" >&2
  fail "a playbook accepted bad input, or refused it without its one-line message (see above)"
fi
validate_after=$(validate_trees)
[ "$validate_before" = "$validate_after" ] || fail "the bad-input runs changed files on the nodes: $(diff <(echo "$validate_before") <(echo "$validate_after") || true)"
log "$(wc -l <"$validate_cases") bad-input runs over ${#validate_playbooks[@]} playbooks refused in one line each," \
    "nodes unchanged (${#validate_nodes[@]} compared), in $(( $(date +%s) - validate_started )) s"
rm -rf "$validate_dir"
