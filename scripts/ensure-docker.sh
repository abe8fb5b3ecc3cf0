#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
# - If `docker info` already works (Docker Desktop, a systemd-managed engine, CI), use it as it is.
# - Otherwise, as root on a Debian-family host, install docker.io when missing and start dockerd
#   in the background (hosts without systemd, such as build containers).
# Prints one clear message and exits non-zero when neither is possible.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*"; }
die() { printf '[ensure-docker] ERROR: %s\n' "$*" >&2; exit 1; }

if docker info >/dev/null 2>&1; then
  log "Docker engine answers; using it."
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  die "no Docker engine answers and this user is not root. Start Docker (or add this user to the 'docker' group), or re-run as root so set-up can install and start it."
fi

if ! command -v dockerd >/dev/null 2>&1; then
  [ -r /etc/debian_version ] || die "dockerd is missing and this is not a Debian-family host. Install Docker Engine for your distribution, start it, and re-run."
  log "Installing docker.io from the distribution (apt-get)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed: no network to the Debian package mirrors. Provide network access (or a mirror) and re-run."
  apt-get install -y -qq docker.io iptables >/dev/null || die "apt-get install docker.io failed. See the apt output above."
fi

log "Starting dockerd in the background (log: /var/log/sciops-dockerd.log)..."
setsid nohup dockerd >/var/log/sciops-dockerd.log 2>&1 </dev/null &
for i in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker engine is up (after ${i}s)."
    exit 0
  fi
  sleep 1
done
tail -n 20 /var/log/sciops-dockerd.log >&2 || true
die "dockerd did not answer within 60 s; its log is above."
