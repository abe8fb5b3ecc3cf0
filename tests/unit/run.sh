#!/usr/bin/env bash
# Unit and module tests of the collection's plugins (offline; the test servers listen on 127.0.0.1).
#   tests/unit/run.sh [pytest arguments]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${SCIOPS_VENV:-$root/.venv}
cd "$root"
# skip_policy: a skipped test fails the run unless tests/skips.yml lists it with its reason.
export PYTHONPATH="$root/tests/lib${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/python" -m pytest -p no:cacheprovider -p skip_policy -rs tests/unit "$@"
