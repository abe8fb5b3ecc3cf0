#!/usr/bin/env bash
# Creates .venv with the pinned tools of requirements-dev.txt.
#
# Fast path for fresh clones: the virtualenv is built once per requirements-dev.txt (and Python
# version) in a cache outside the checkout, $SCIOPS_CACHE_DIR/venv-<key> (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/sciops), and .venv is a link to it; a second clone with the same
# requirements reuses it in a second instead of installing for two minutes. A changed
# requirements-dev.txt gets a new key, so a stale environment is never reused. SCIOPS_VENV_CACHE=0
# (or an existing .venv directory) builds .venv inside the checkout as before.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=.venv

install_into() {  # install_into DIR
  test -x "$1/bin/python" || "$python" -m venv "$1"
  "$1/bin/python" -m pip install -q --upgrade pip
  "$1/bin/python" -m pip install -q -r requirements-dev.txt
  touch "$1/.installed"
}

if [ "${SCIOPS_VENV_CACHE:-1}" = 0 ] || { [ -d "$venv" ] && [ ! -L "$venv" ]; }; then
  echo "[setup] Creating $venv with the pinned tools (requirements-dev.txt)..."
  install_into "$venv"
  exit 0
fi

key=$({ cat requirements-dev.txt; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
cache=${SCIOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sciops}
target=$cache/venv-$key
mkdir -p "$cache"
# One builder per key: a second clone set up at the same time waits for the first.
exec 9>"$target.lock"
flock 9
if [ -f "$target/.installed" ]; then
  echo "[setup] Reusing the virtualenv for this requirements-dev.txt ($target)"
else
  echo "[setup] Creating the virtualenv with the pinned tools (requirements-dev.txt) in $target..."
  rm -rf "$target"
  install_into "$target"
fi
ln -sfn "$target" "$venv"
touch "$venv/.installed"
