#!/usr/bin/env bash
# The collection as users get it: build the tarball, check that its declared dependencies are
# exactly what its content uses, install it WITH those dependencies only (from the pinned `ansible`
# package's copies: Galaxy may be out of reach) into an empty collections path apart from this
# clone, and use its content by FQCN from there (docs, every playbook's syntax, every referenced
# FQCN, and playbooks run on localhost), with this clone's collections/ link and the `ansible`
# package's own ansible_collections out of the way. A dependency missing from galaxy.yml fails here.
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf '[collection] %s\n' "$*"; }
fail() { log "ERROR: $*"; exit 1; }
here=$PWD/tests/collection

rm -rf build && mkdir -p build
ansible-galaxy collection build --force --output-path build . >/dev/null
tarball=$PWD/$(ls build/sciops-platform-*.tar.gz)
log "built ${tarball#"$PWD"/} ($(du -h "$tarball" | cut -f1))"
if tar -tzf "$tarball" | grep -qE '^(collections|inventories|molecule|logs|backups|\.venv)/'; then
  fail "the tarball carries development-only folders"
fi

# Declared (galaxy.yml, requirements.yml) against used (the shipped content, the project).
python "$here/deps.py" check "$tarball"
mapfile -t sources < <(python "$here/deps.py" sources "$tarball")

# From outside the clone, with only the installed copy and its declared dependencies.
project=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf '[defaults]\ncollections_path = %s/collections\ncollections_scan_sys_path = false\n' "$work" >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_COLLECTIONS_PATH="$work/collections" \
  ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false ANSIBLE_LOCAL_TEMP="$work/tmp" ANSIBLE_HOME="$work/home"
unset ANSIBLE_COLLECTIONS_PATHS ANSIBLE_ROLES_PATH ANSIBLE_INVENTORY
# --offline: no server; the dependencies sciops.platform declares must be among the given sources.
if ! out=$(ansible-galaxy collection install --offline -p "$work/collections" "$tarball" "${sources[@]}" 2>&1); then
  echo "$out"; fail "the collection does not install with its declared dependencies"
fi
[ -f "$work/collections/ansible_collections/sciops/platform/MANIFEST.json" ] || { echo "$out"; fail "install failed"; }
list=$(ansible-galaxy collection list --format json 2>/dev/null)
# ansible._protomatter is ansible-core's own, always there.
read -r version installed < <(python -c '
import json, sys
found = {n: v["version"] for p in json.load(sys.stdin).values() for n, v in p.items() if not n.startswith("ansible._")}
print(found.get("sciops.platform", "none"), " ".join(sorted(found)))' <<<"$list")
expected=$(printf '%s\n' sciops/platform "${sources[@]}" | awk -F/ '{print $(NF-1) "." $NF}' | sort | xargs)
[ "$installed" = "$expected" ] || fail "installed '$installed', expected sciops.platform and its dependencies '$expected'"
log "installed into $work/collections: $installed (nothing else is on the collections path)"
[ "$version" = "$(awk '/^version:/ {print $2}' "$project/galaxy.yml")" ] || fail "installed version '$version'"

roles=$(tar -tzf "$tarball" | sed -nE 's#^roles/([^/]+)/meta/argument_specs\.yml$#\1#p' | sort)
# shellcheck disable=SC2086  # one word per role
# shellcheck disable=SC2046  # one argument per role name: the names are plain words
docs=$(ansible-doc -t role $(printf 'sciops.platform.%s ' $roles) 2>&1) || { echo "$docs"; fail "ansible-doc failed"; }
for role in $roles; do
  awk -v r="sciops.platform.$role" '$1 == ">" && $2 == "ROLE:" { on = ($3 == r || $3 == "*" r "*") }
    on && /^ENTRY POINT: \*?main\*? - / { found = 1 } END { exit !found }' <<<"$docs" \
    || { echo "$docs"; fail "ansible-doc cannot read role sciops.platform.$role (no main entry point)"; }
done
log "ansible-doc renders the argument specs of the $(wc -w <<<"$roles") roles"

# Every FQCN the installed content references resolves (modules of dynamically included task
# files, filters and tests are not looked up by --syntax-check).
python "$here/deps.py" resolve "$work/collections/ansible_collections/sciops/platform"

cp "$here"/runtime/*.yml "$work/"
playbooks=$(tar -tzf "$tarball" | sed -nE 's#^playbooks/([^/]+)\.yml$#\1#p' | sort)
# shellcheck disable=SC2086  # one word per playbook
# shellcheck disable=SC2046  # one argument per playbook name: the names are plain words
out=$(ansible-playbook -i inventory.yml --syntax-check $(printf 'sciops.platform.%s ' $playbooks) 2>&1) \
  || { echo "$out"; fail "a collection playbook does not parse (see above)"; }
log "all $(wc -w <<<"$playbooks") collection playbooks parse (sciops.platform.<name> --syntax-check)"

# Run content on localhost: filters, tests and lookups resolve only at run time.
out=$(ansible-playbook -i inventory.yml sciops.platform.validate 2>&1) \
  || { echo "$out"; fail "sciops.platform.validate failed on a valid inventory"; }
grep -qE 'ok=[1-9].*failed=0' <<<"$out" || { echo "$out"; fail "sciops.platform.validate ran no task"; }
log "sciops.platform.validate runs on localhost (community.general.filetree lookup, sciops.platform filters, webservice catalogue)"

out=$(ansible-playbook -i inventory.yml bad-input.yml 2>&1) \
  || { echo "$out"; fail "the installed roles did not refuse bad input with their own messages (see above)"; }
log "the installed roles refuse bad input: postgres by its argument spec, acme_test_ca by its ansible.utils.ipv4 check"
log "OK"
