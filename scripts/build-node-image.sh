#!/usr/bin/env bash
# Build the local test-node image: Debian 12 (bookworm) with systemd as PID 1, Python 3 for
# Ansible, and the host's extra CA certificates (TLS-intercepting proxies) trusted.
# No image registry is needed: the root filesystem comes from debootstrap and is loaded
# with `docker import`. The image carries a label with the hash of its recipe (this file and
# the CA certificates it bakes in); it is rebuilt only when that hash changes.
#
# Usage: scripts/build-node-image.sh [IMAGE]   (default: sciops/node:debian12)
set -euo pipefail

IMAGE="${1:-${SCIOPS_NODE_IMAGE:-sciops/node:debian12}}"
MIRROR="${SCIOPS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
CA_DIR=/usr/local/share/ca-certificates
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-apt,python3-venv,sudo,ca-certificates,iproute2,procps,less,gnupg,curl,locales,apt-transport-https

log() { printf '[node-image] %s\n' "$*"; }
die() { printf '[node-image] ERROR: %s\n' "$*" >&2; exit 1; }

here="$(cd "$(dirname "$0")" && pwd)"
recipe_hash="$(
  {
    cat "$here/build-node-image.sh"
    find "$CA_DIR" -type f -name '*.crt' 2>/dev/null | sort | xargs -r cat
  } | sha256sum | cut -c1-16
)"

current="$(docker image inspect -f '{{ index .Config.Labels "org.sciops.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$current" = "$recipe_hash" ]; then
  log "$IMAGE is up to date (recipe $recipe_hash)."
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building the node image needs root (debootstrap). Re-run as root."
if ! command -v debootstrap >/dev/null 2>&1; then
  [ -r /etc/debian_version ] || die "debootstrap is missing and this is not a Debian-family host. Install debootstrap and re-run."
  log "Installing debootstrap..."
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; } \
    || die "could not install debootstrap (no network to the Debian mirrors?)."
fi

work="$(mktemp -d /var/tmp/sciops-node.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

log "Building $IMAGE (recipe $recipe_hash) with debootstrap from $MIRROR; this takes a few minutes..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above). Is $MIRROR reachable?"; }

log "Configuring the root filesystem..."
# Trust the host's extra CA certificates, so apt/pip/npm inside nodes work behind TLS proxies.
if compgen -G "$CA_DIR/*.crt" >/dev/null; then
  cp "$CA_DIR"/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null 2>&1
  # pip and npm carry their own CA lists; point them at the system store too.
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/npmrc"
  printf 'REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt\nNODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt\n' >>"$root/etc/environment"
fi
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SOURCES
# Containers: no kernel, no consoles, no udev; keep systemd quiet and quick to boot.
for unit in getty.target console-getty.service systemd-udevd.service systemd-udev-trigger.service \
            systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount \
            systemd-remount-fs.service systemd-journald-audit.socket apt-daily.timer apt-daily-upgrade.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
echo 'en_US.UTF-8 UTF-8' >"$root/etc/locale.gen"
chroot "$root" locale-gen >/dev/null 2>&1 || true
echo 'LANG=en_US.UTF-8' >"$root/etc/default/locale"
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Slim: the apt cache and docs are not needed in a test node.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/tmp/*
# An old mtime on the empty lists makes Ansible's apt cache_valid_time refresh them on first use.
touch -d @0 "$root/var/lib/apt/lists"

log "Importing into Docker..."
tar -C "$root" -c . | docker import \
  -c 'ENV container=docker' \
  -c 'ENV LANG=en_US.UTF-8' \
  -c 'CMD ["/lib/systemd/systemd"]' \
  -c "LABEL org.sciops.recipe=$recipe_hash" \
  - "$IMAGE" >/dev/null
log "$IMAGE built (recipe $recipe_hash)."
