#!/usr/bin/env bash
# ansible-test sanity for the collection's plugins, offline.
#   tests/sanity/run.sh [ansible-test sanity arguments and targets; default: plugins/ tests/servers/ tests/unit/ tests/sanity/]
# ansible-test only runs inside .../ansible_collections/<namespace>/<name>, and the repository
# root is not there, so the collection is copied (as git tracks it) into a temporary tree.
# ansible-test bootstraps pip in its virtual environments with a script it downloads from
# ci-files.testing.ansible.com (unreachable from build machines); a stand-in that uses
# ensurepip and pip from PyPI is put in its cache first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${SCIOPS_VENV:-$root/.venv}
[ -x "$venv/bin/ansible-test" ] || { echo "ansible-test not found (set SCIOPS_VENV to the project's virtualenv)" >&2; exit 2; }
export PATH="$venv/bin:$PATH"

# The pip version ansible-test bootstraps, read from its own source.
pip_version=$("$venv/bin/python" - <<'PY'
import ansible_test, os, re
src = open(os.path.join(os.path.dirname(ansible_test.__file__), '_internal', 'python_requirements.py')).read()
print(re.search(r"default_packages = dict\(\s*pip='([^']+)'", src).group(1))
PY
)
cache=~/.ansible/test/cache
mkdir -p "$cache"
stand_in="$cache/get_pip_${pip_version//./_}.py"
cert=${SCIOPS_PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
cat >"$stand_in" <<PY
# Stand-in for get-pip.py (written by sciops.platform tests/sanity/run.sh): ensurepip, then
# pip install with the arguments ansible-test gives (pip==$pip_version ...).
import os, subprocess, sys
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
extra = ['--cert', '$cert'] if os.path.exists('$cert') else []
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet'] + extra + args)
PY

work=${SCIOPS_SANITY_DIR:-$root/tests/output/sanity-tree}
dest="$work/ansible_collections/sciops/platform"
rm -rf "$dest" && mkdir -p "$dest"
# Tracked and new (not ignored) files, without the development-only folders.
(cd "$root" && git ls-files -co --exclude-standard -z -- . ':!collections' ':!molecule' ':!inventories' ':!.ci' ) \
  | (cd "$root" && xargs -0 -I{} sh -c 'test -e "{}" && cp --parents -P "{}" "'"$dest"'"' )
cd "$dest"
git init -q .
git add -A >/dev/null 2>&1 || true
# Default targets: the plugins and the tests that go with them (other content has its own checks).
if [ $# -eq 0 ]; then set -- plugins/ tests/servers/ tests/unit/ tests/sanity/; fi
# No silent skip: ansible-test only warns when a test's program is missing (shellcheck), and
# skips that test; that fails here (make setup installs it).
log=$(mktemp); trap 'rm -f "$log"' EXIT
rc=0
ansible-test sanity --venv --python 3.11 --color no "$@" 2>&1 | tee "$log" || rc=$?
if grep -E "WARNING: (Required program|Skipping)" "$log"; then
  echo "FAIL: a sanity test was skipped (above). Install what it needs (make setup) and re-run." >&2
  [ "$rc" -ne 0 ] || rc=1
fi
exit "$rc"
