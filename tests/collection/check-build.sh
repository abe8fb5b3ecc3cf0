#!/usr/bin/env bash
# The collection as users get it: build the tarball, install it into an empty collections
# path apart from this clone, and use its content by FQCN from there (docs, playbooks, the
# roles' argument validation), with this clone's collections/ link out of the way.
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf '[collection] %s\n' "$*"; }

rm -rf build && mkdir -p build
ansible-galaxy collection build --force --output-path build . >/dev/null
tarball=$(ls build/sciops-platform-*.tar.gz)
log "built $tarball ($(du -h "$tarball" | cut -f1))"
if tar -tzf "$tarball" | grep -qE '^(collections|inventories|molecule|\.venv)/'; then
  log "ERROR: the tarball carries development-only folders"; exit 1
fi

# From outside the clone, with only the installed copy (and the pinned community collections).
project=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
printf '[defaults]\ncollections_path = %s/collections\n' "$work" >"$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1
unset ANSIBLE_COLLECTIONS_PATH
ansible-galaxy collection install --no-deps -p "$work/collections" "$project/$tarball" >/dev/null
[ -f "$work/collections/ansible_collections/sciops/platform/MANIFEST.json" ] || { log "ERROR: install failed"; exit 1; }
log "installed into $work/collections"
installed=$(ansible-galaxy collection list sciops.platform 2>&1 | awk '/sciops.platform/ {print $2}')
[ "$installed" = "$(awk '/^version:/ {print $2}' "$project/galaxy.yml")" ] || { log "ERROR: installed version '$installed'"; exit 1; }

for role in common postgres provision webservice frontdoor nmpi_queue letsencrypt acme_test_ca; do
  ansible-doc -t role "sciops.platform.$role" | grep -qE "ENTRY POINT: \*?main\*? - " \
    || { log "ERROR: ansible-doc cannot read role sciops.platform.$role"; exit 1; }
done
log "ansible-doc renders the roles' argument specs"

ansible-playbook -i localhost, sciops.platform.postgres --syntax-check >/dev/null 2>&1
ansible-playbook -i localhost, sciops.platform.site --syntax-check >/dev/null 2>&1
log "collection playbooks (sciops.platform.postgres, sciops.platform.site) parse"

cat > bad-input.yml <<'YAML'
- name: The installed role validates its input before doing anything
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: sciops.platform.postgres
      postgres_port: not-a-port
YAML
if out=$(ansible-playbook -i localhost, bad-input.yml 2>&1); then
  log "ERROR: bad input was accepted"; exit 1
fi
grep -q "Validating arguments against arg spec" <<<"$out" && grep -q "postgres_port" <<<"$out" || { log "ERROR: the validation message does not name postgres_port"; echo "$out"; exit 1; }
log "argument validation of the installed role names the bad variable"
log "OK"
