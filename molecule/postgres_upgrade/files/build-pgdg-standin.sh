#!/usr/bin/env bash
# TEST DOUBLE of apt.postgresql.org (PGDG) for the postgres_upgrade scenario; never for real hosts.
#
# PGDG is not reachable from the test machines, so this builds a local repository with the same
# layout (dists/bookworm-pgdg/main, signed InRelease, an ASCII signing key) and serves it on the
# node's loopback. Its packages are Debian 13's postgresql-17 and the exact set of .debs apt needs
# to install it on this node, downloaded (not installed) with trixie's sources enabled for a
# moment. Two differences from the real PGDG, both for the node's sake:
#   - libc6 is repackaged without its "Breaks: base-files (<< 13.3~)": installing trixie's
#     base-files would turn the node's identity into Debian 13 (facts, suites), which a real PGDG
#     install on Debian 12 never does; base-files itself is left out of the repository.
#   - the key is a throwaway one made here, with no passphrase.
# Usage: build-pgdg-standin.sh ROOT PORT PACKAGE...
set -euo pipefail
root="$1"; port="$2"; shift 2
suite=bookworm-pgdg
work="$(mktemp -d)"
trap 'rm -rf "$work" /etc/apt/sources.list.d/sciops-trixie-standin.sources; apt-get update -qq || true' EXIT
export DEBIAN_FRONTEND=noninteractive

apt-get install -y -qq --no-install-recommends apt-utils >/dev/null

# 1. The packages: what apt would install for PACKAGE... from trixie, downloaded only.
cat >/etc/apt/sources.list.d/sciops-trixie-standin.sources <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt-get update -qq
chmod 0755 "$work"; mkdir -p "$work/debs/partial" "$root/pub/repos/apt/pool/main" "$root/pub/repos/apt/dists/$suite/main/binary-amd64"
chown _apt "$work/debs/partial"
apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives="$work/debs" "$@" >/dev/null
rm -f "$work"/debs/base-files_*.deb
for deb in "$work"/debs/libc6_*.deb; do
  dpkg-deb -R "$deb" "$work/libc6"
  sed -i -E 's/^(Breaks:.*)base-files \(<< [^)]*\), /\1/' "$work/libc6/DEBIAN/control"
  if grep -q 'base-files' "$work/libc6/DEBIAN/control"; then
    echo "libc6 still names base-files: $(grep base-files "$work/libc6/DEBIAN/control")" >&2
    exit 1
  fi
  dpkg-deb -Zxz -z1 -b "$work/libc6" "$deb" >/dev/null
done
mv "$work"/debs/*.deb "$root/pub/repos/apt/pool/main/"

# 2. The index, signed with a throwaway key.
cd "$root/pub/repos/apt"
apt-ftparchive packages pool >"dists/$suite/main/binary-amd64/Packages"
apt-ftparchive \
  -o APT::FTPArchive::Release::Origin="sciops PGDG stand-in" \
  -o APT::FTPArchive::Release::Label="sciops PGDG stand-in (test double)" \
  -o APT::FTPArchive::Release::Suite="$suite" -o APT::FTPArchive::Release::Codename="$suite" \
  -o APT::FTPArchive::Release::Architectures=amd64 -o APT::FTPArchive::Release::Components=main \
  release "dists/$suite" >"$work/Release"
mv "$work/Release" "dists/$suite/Release"
export GNUPGHOME="$work/gnupg"
mkdir -m 0700 "$GNUPGHOME"
gpg --batch -q --passphrase '' --quick-gen-key "sciops PGDG stand-in (test double) <pgdg-standin@sciops.test>" ed25519 sign never
gpg --batch -q --yes --clearsign -o "dists/$suite/InRelease" "dists/$suite/Release"
gpg --batch -q --armor --export >"$root/ACCC4CF8.asc"

# 3. Served on the loopback, like https://apt.postgresql.org/pub/repos/apt.
systemd-run --unit sciops-pgdg-standin --description "PGDG stand-in (test double)" \
  python3 -m http.server --bind 127.0.0.1 --directory "$root" "$port" >/dev/null
for _ in $(seq 1 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/ACCC4CF8.asc')" 2>/dev/null && exit 0
  sleep 0.2
done
echo "the stand-in did not answer on 127.0.0.1:$port" >&2
exit 1
