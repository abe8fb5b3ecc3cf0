#!/usr/bin/env bash
# Checks that set-up can proceed on this machine; prints one message naming what is missing
# and how to provide it, and exits non-zero, when it cannot.
set -uo pipefail
die() { printf '[preflight] ERROR: %s\n' "$*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || die "python3 is missing. Install Python 3.11 (Debian: apt-get install python3 python3-venv) and re-run."
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python $(python3 -c 'import platform; print(platform.python_version())') is too old; ansible-core 2.19 needs Python 3.11 or newer."
python3 -c 'import venv, ensurepip' 2>/dev/null \
  || die "Python's venv/ensurepip is missing. Debian: apt-get install python3-venv."

if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" -eq 0 ] || die "no Docker engine answers and this user is not root. Start Docker and make it usable by this user (docker group), or run set-up as root so it installs and starts Docker itself."
  [ -r /etc/debian_version ] || die "no Docker engine answers and this is not a Debian-family host, so set-up cannot install it. Install and start Docker Engine, then re-run."
fi
if [ "$(id -u)" -ne 0 ] && ! docker image inspect "${SCIOPS_NODE_IMAGE:-sciops/node:debian12}" >/dev/null 2>&1; then
  die "building the node image needs root (debootstrap). Run 'make image' once as root, then re-run."
fi

if [ ! -x .venv/bin/ansible-playbook ]; then
  python3 - <<'PY' || die "cannot reach the Python package index (PyPI) to build .venv. Provide network access to PyPI (or set PIP_INDEX_URL to a mirror) and re-run."
import os, urllib.request
index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
urllib.request.urlopen(index + "/pip/", timeout=20).read(1)
PY
fi
exit 0
