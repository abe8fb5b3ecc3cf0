#!/usr/bin/env bash
# Build the execution environment locally from Debian (make ee): the same dependency lists as
# execution-environment.yml (ee/bindep.txt, ee/requirements.txt, requirements.yml, the ansible-core
# and ansible-runner pins), FROM the local node image, where ansible-builder's `build` needs an RPM
# base image and registries. ee/Containerfile.debian is the recipe. The collections of
# requirements.yml are copied from the pinned `ansible` package in .venv (Galaxy is not reachable
# from every build machine), each checked against requirements.yml's version range.
# What those pull in is held to requirements-dev.txt's versions (pip constraints). The image
# carries a label with the hash of what went into it (this script, the recipe, the lists, the
# pins, requirements-dev.txt, the collections' versions and the base image's id, which covers the
# CA certificates baked into it); it is rebuilt only when that hash changes.
#
# Usage: scripts/build-ee-image.sh [IMAGE]   (default: sciops/ee:local)
#        SCIOPS_EE_NO_CACHE=1 builds without Docker's layer cache (a cold build, to time it).
set -euo pipefail

IMAGE="${1:-${SCIOPS_EE_IMAGE:-sciops/ee:local}}"
BASE="${SCIOPS_NODE_IMAGE:-sciops/node:debian12}"
root="$(cd "$(dirname "$0")/.." && pwd)"
python="$root/.venv/bin/python"

log() { printf '[ee-image] %s\n' "$*"; }
die() { printf '[ee-image] ERROR: %s\n' "$*" >&2; exit 1; }

base_id="$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null)" || die "no image $BASE: run make image first."

# The pins and the collections, one line each: what the image is made of.
inputs="$("$python" - "$root" <<'PY'
import json, re, sys, sysconfig
from pathlib import Path
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

root = Path(sys.argv[1])
ee = yaml.safe_load((root / "execution-environment.yml").read_text())
deps = ee["dependencies"]
dev = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (root / "requirements-dev.txt").read_text(), re.M))
print(f"ANSIBLE_CORE={deps['ansible_core']['package_pip']}")
print(f"ANSIBLE_RUNNER={deps['ansible_runner']['package_pip']}")
print(f"BINDEP=bindep=={dev['bindep']}")
site = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections"  # the pinned ansible package's
for item in yaml.safe_load((root / deps["galaxy"]).read_text())["collections"]:
    namespace, name = item["name"].split(".")
    path = site / namespace / name
    manifest = path / "MANIFEST.json"
    if not manifest.is_file():
        sys.exit(f"collection {item['name']} is not in .venv's ansible package ({path})")
    version = json.loads(manifest.read_text())["collection_info"]["version"]
    wanted = item.get("version", "*")
    if wanted != "*" and Version(version) not in SpecifierSet(wanted.replace(" ", "")):
        sys.exit(f"collection {item['name']} {version} in .venv does not satisfy requirements.yml's {wanted}")
    print(f"COLLECTION={item['name']}={version}={path}")
PY
)" || die "could not read the dependency lists (above)."

recipe_hash="$(
  {
    cat "$root/scripts/build-ee-image.sh" "$root/ee/Containerfile.debian" "$root/ee/bindep.txt" "$root/ee/requirements.txt" \
      "$root/requirements-dev.txt"
    grep -v '^COLLECTION=' <<<"$inputs"
    grep '^COLLECTION=' <<<"$inputs" | cut -d= -f2,3
    echo "$base_id"
  } | sha256sum | cut -c1-16
)"
current="$(docker image inspect -f '{{ index .Config.Labels "org.sciops.recipe" }}' "$IMAGE" 2>/dev/null || true)"
if [ "$current" = "$recipe_hash" ]; then
  log "$IMAGE is up to date (recipe $recipe_hash)."
  exit 0
fi

work="$(mktemp -d /var/tmp/sciops-ee.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cp "$root/ee/Containerfile.debian" "$root/ee/bindep.txt" "$root/ee/requirements.txt" "$work/"
# What ansible-core, ansible-runner and ee/requirements.txt pull in, held to the development pins.
grep -E '^[A-Za-z0-9_.-]+==' "$root/requirements-dev.txt" >"$work/constraints.txt"
mkdir -p "$work/collections/ansible_collections"
while IFS='=' read -r key name version path; do
  [ "$key" = COLLECTION ] || continue
  mkdir -p "$work/collections/ansible_collections/${name%%.*}"
  cp -a "$path" "$work/collections/ansible_collections/${name%%.*}/${name#*.}"
  log "collection $name $version (from .venv's ansible package)"
done <<<"$inputs"
find "$work/collections" -name __pycache__ -type d -prune -exec rm -rf {} +
build_args=()
while IFS='=' read -r key value; do
  case "$key" in ANSIBLE_CORE|ANSIBLE_RUNNER|BINDEP) build_args+=(--build-arg "$key=$value"); log "$value" ;; esac
done <<<"$inputs"

previous="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
log "Building $IMAGE (recipe $recipe_hash) FROM $BASE..."
started=$(date +%s)
# The legacy builder: this Docker client has no buildx, and the build needs nothing BuildKit adds.
DOCKER_BUILDKIT=0 docker build ${SCIOPS_EE_NO_CACHE:+--no-cache} -f "$work/Containerfile.debian" --build-arg "BASE_IMAGE=$BASE" "${build_args[@]}" \
  --label "org.sciops.recipe=$recipe_hash" -t "$IMAGE" "$work" >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; die "docker build failed (above). Are PyPI and the Debian mirrors reachable?"; }
grep -E '^bindep: ' "$work/build.log" | sed 's/^/[ee-image] /' || true
versions="$(docker run --rm "$IMAGE" sh -c 'ansible --version | head -1; ansible-runner --version; ssh -V 2>&1; git --version')" \
  || die "the image does not run ansible, ansible-runner, ssh and git"
log "$IMAGE built in $(( $(date +%s) - started )) s (recipe $recipe_hash): $(tr '\n' ';' <<<"$versions")"
# The image this one replaces (now untagged), unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect -f '{{.Id}}' "$IMAGE")" ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi
