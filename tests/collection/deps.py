#!/usr/bin/env python3
"""Collection dependencies of sciops.platform, checked against what the content really uses.

  deps.py check TARBALL           the dependencies the built collection declares (galaxy.yml, as
                                  its MANIFEST.json carries them) are exactly the collections its
                                  shipped content references; requirements.yml is exactly the
                                  collections the whole project references (the collection's own
                                  plus what molecule, inventories, ansible.cfg and tests use), with
                                  floors no lower than galaxy.yml's; the pinned `ansible` package
                                  satisfies every floor.
  deps.py sources TARBALL         the directories of the declared dependencies, and of their own
                                  dependencies, in the pinned `ansible` package (Galaxy may be out of
                                  reach): the sources for `ansible-galaxy collection install --offline`.
  deps.py resolve COLLECTION_DIR  run where only the installed collection and its dependencies are
                                  on the collections path: every FQCN the installed content
                                  references resolves (modules in dynamically included task files,
                                  filters and tests are not looked up by --syntax-check).

A reference is an FQCN (namespace.collection.name) of a known collection in a YAML, Jinja or
Python file of the shipped content (roles/, playbooks/, plugins/, meta/), an
`ansible_collections.<namespace>.<collection>` import, or an entry of a `collections:` keyword.
Full-line comments do not count.
"""

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

SELF = "sciops.platform"
CORE = {"ansible.builtin", "ansible.legacy"}
CONTENT_DIRS = ("roles/", "playbooks/", "plugins/", "meta/", "extensions/")
TEXT_SUFFIXES = {".yml", ".yaml", ".j2", ".py", ".json", ".cfg", ".ini", ".toml", ".sh", ".conf"}
FQCN = re.compile(r"(?<![\w.])([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_]+(?:\.[a-z0-9_]+)*)")
IMPORT = re.compile(r"\bansible_collections\.([a-z0-9_]+)\.([a-z0-9_]+)")
# `from ansible.utils.x import y` is ansible-core's Python package, not the ansible.utils collection.
CORE_IMPORT = re.compile(r"^\s*(from|import)\s+ansible\.")
COMMENT = re.compile(r"^\s*#")
# The project's files that are not references (prose, and this checker).
PROJECT_SKIP = re.compile(r"(\.md$|\.rst$|^CHANGELOG|^tests/collection/deps\.py$|^galaxy\.yml$|^requirements\.yml$)")


def log(msg):
    print(f"[deps] {msg}", flush=True)


def bundle_root():
    """The ansible_collections folder of the pinned `ansible` package (beside ansible-core)."""
    import ansible

    root = Path(ansible.__file__).resolve().parent.parent / "ansible_collections"
    if not root.is_dir():
        sys.exit(f"[deps] ERROR: no ansible_collections beside {Path(ansible.__file__).parent}: is the `ansible` package installed?")
    return root


def bundle_manifest(name):
    path = bundle_root().joinpath(*name.split("."), "MANIFEST.json")
    return json.loads(path.read_text())["collection_info"] if path.is_file() else None


def bundle_names():
    return {f"{p.parent.parent.name}.{p.parent.name}" for p in bundle_root().glob("*/*/MANIFEST.json")}


def meets(version, spec):
    from ansible.galaxy.dependency_resolution.versioning import meets_requirements

    return meets_requirements(version, spec)


def floor(spec):
    m = re.fullmatch(r"\s*>=\s*([0-9][^,\s]*)\s*", str(spec))
    return m.group(1) if m else None


def version_key(version):
    from ansible.utils.version import SemanticVersion

    return SemanticVersion(version)


class _Loader(yaml.SafeLoader):
    """Reads any tag (!vault, !unsafe) as a plain value: only the structure matters here."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _collections_keywords(data):
    """Entries of every `collections:` list (plays, blocks, role meta)."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            value = item.get("collections")
            if isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def references(files, known):
    """{collection: [(path, line, what)]} for (path, text) pairs, over the known collection names."""
    refs = {}
    for path, text in files:
        suffix = Path(path).suffix
        for number, line in enumerate(text.splitlines(), 1):
            if suffix in (".yml", ".yaml", ".py", ".cfg", ".ini", ".sh", ".toml", ".conf") and COMMENT.match(line):
                continue
            if suffix == ".py" and CORE_IMPORT.match(line):
                continue
            for m in FQCN.finditer(line):
                name = f"{m.group(1)}.{m.group(2)}"
                if name in known:
                    refs.setdefault(name, []).append((path, number, m.group(0)))
            for m in IMPORT.finditer(line):
                name = f"{m.group(1)}.{m.group(2)}"
                refs.setdefault(name, []).append((path, number, m.group(0)))
        if suffix in (".yml", ".yaml"):
            try:
                docs = list(yaml.load_all(text, Loader=_Loader))
            except yaml.YAMLError:
                docs = []
            for name in _collections_keywords(docs):
                number = next((i for i, line in enumerate(text.splitlines(), 1) if name in line), 0)
                refs.setdefault(name, []).append((path, number, f"collections: {name}"))
    return refs


def tarball_content(tarball):
    """(path, text) of the shipped content files in the built collection, and its MANIFEST."""
    files, manifest = [], None
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.name == "MANIFEST.json":
                manifest = json.load(tar.extractfile(member))["collection_info"]
            elif member.isfile() and member.name.startswith(CONTENT_DIRS) and Path(member.name).suffix in TEXT_SUFFIXES:
                files.append((member.name, tar.extractfile(member).read().decode("utf-8", "replace")))
    if manifest is None:
        sys.exit(f"[deps] ERROR: {tarball} has no MANIFEST.json")
    return files, manifest


def project_files(root):
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=root, check=True, capture_output=True, text=True).stdout
    files = []
    for rel in sorted(set(filter(None, out.split("\0")))):
        path = root / rel
        if PROJECT_SKIP.search(rel) or not path.is_file() or path.is_symlink():
            continue
        if Path(rel).suffix in TEXT_SUFFIXES or path.name in ("ansible.cfg",):
            files.append((rel, path.read_text(errors="replace")))
    return files


def first(ref_list, limit=3):
    ref_list = sorted(ref_list)
    shown = ", ".join(f"{p}:{n} ({w})" for p, n, w in ref_list[:limit])
    return shown + (f" and {len(ref_list) - limit} more" if len(ref_list) > limit else "")


def check(tarball):
    root = Path(__file__).resolve().parents[2]
    content, manifest = tarball_content(tarball)
    declared = dict(manifest.get("dependencies") or {})
    bundle = bundle_names()
    requirements = yaml.safe_load((root / "requirements.yml").read_text()) or {}
    required = {}
    for entry in requirements.get("collections") or []:
        entry = {"name": entry} if isinstance(entry, str) else entry
        required[entry["name"]] = str(entry.get("version", "*"))
    known = bundle | set(declared) | set(required)
    errors = []

    used = {n: r for n, r in references(content, known).items() if n not in CORE and n != SELF}
    log(f"the shipped content ({len(content)} files) uses: {', '.join(sorted(used)) or 'no other collection'}")
    log(f"galaxy.yml declares: {', '.join(f'{n} {s}' for n, s in sorted(declared.items())) or 'nothing'}")
    for name in sorted(set(used) - set(declared)):
        errors.append(f"{name} is used by the shipped content but not declared in galaxy.yml dependencies: {first(used[name])}")
    for name in sorted(set(declared) - set(used)):
        errors.append(f"{name} is declared in galaxy.yml dependencies but no shipped file (roles/, playbooks/, plugins/, meta/) uses it")

    project = {n: r for n, r in references(project_files(root), known).items() if n not in CORE and n != SELF}
    for name in sorted(set(project) - set(required)):
        errors.append(f"{name} is used by the project but missing from requirements.yml: {first(project[name])}")
    for name in sorted(set(required) - set(project)):
        errors.append(f"{name} is listed in requirements.yml but nothing in the project uses it")
    for name, spec in sorted(declared.items()):
        if name in required and floor(spec) and floor(required[name]) and \
                version_key(floor(required[name])) < version_key(floor(spec)):
            errors.append(f"requirements.yml asks {name} {required[name]}, lower than galaxy.yml's {spec}")

    for source, wanted in (("galaxy.yml", declared), ("requirements.yml", required)):
        for name, spec in sorted(wanted.items()):
            info = bundle_manifest(name)
            if info is None:
                errors.append(f"{source}: {name} is not in the pinned ansible package (requirements-dev.txt)")
            elif not meets(info["version"], spec):
                errors.append(f"{source}: {name} {spec} is not met by the pinned ansible package's {info['version']}")

    for error in errors:
        log(f"ERROR: {error}")
    if errors:
        return 1
    log("declared dependencies match the content: galaxy.yml for the collection, requirements.yml for the project")
    return 0


def sources(tarball):
    """The pinned ansible package's copies of the declared dependencies and of their own dependencies.

    They are source directories for `ansible-galaxy collection install` (it rebuilds each from its
    MANIFEST.json; the copies lack files their FILES.json lists, so they cannot be re-tarred as they are).
    """
    _, manifest = tarball_content(tarball)
    pending = [(n, s, SELF) for n, s in (manifest.get("dependencies") or {}).items()]
    done, errors = {}, []
    while pending:
        name, spec, wanted_by = pending.pop(0)
        info = bundle_manifest(name)
        if info is None:
            errors.append(f"{wanted_by} depends on {name}, which the pinned ansible package does not carry")
        elif not meets(info["version"], spec):
            errors.append(f"{wanted_by} wants {name} {spec}, the pinned ansible package carries {info['version']}")
        elif name not in done:
            done[name] = bundle_root().joinpath(*name.split("."))
            pending.extend((n, s, name) for n, s in (info.get("dependencies") or {}).items())
    for error in errors:
        log(f"ERROR: {error}")
    for name in sorted(done):
        print(done[name])
    return 1 if errors else 0


def resolve(collection_dir):
    from ansible.plugins import loader as plugin_loader

    plugin_loader.init_plugin_loader()
    from ansible.collections.list import list_collection_dirs

    installed = {}
    for path in list_collection_dirs():
        path = Path(path.decode() if isinstance(path, bytes) else path)
        installed[f"{path.parent.name}.{path.name}"] = path
    collection_dir = Path(collection_dir)
    files = [(str(p.relative_to(collection_dir)), p.read_text(errors="replace"))
             for p in sorted(collection_dir.rglob("*"))
             if p.is_file() and str(p.relative_to(collection_dir)).startswith(CONTENT_DIRS) and p.suffix in TEXT_SUFFIXES]
    known = set(installed) | bundle_names() | CORE
    loaders = [getattr(plugin_loader, n) for n in dir(plugin_loader)
               if n.endswith("_loader") and isinstance(getattr(plugin_loader, n), plugin_loader.PluginLoader)]

    def found(fqcn):
        namespace, collection, rest = fqcn.split(".", 2)
        where = installed.get(f"{namespace}.{collection}")
        if where is not None and ((where / "roles" / rest).is_dir()
                                  or (where / "playbooks" / (rest.replace(".", "/") + ".yml")).is_file()):
            return True
        for loader in loaders:
            try:
                if isinstance(loader, plugin_loader.Jinja2Loader):
                    if loader.get(fqcn) is not None:
                        return True
                elif loader.find_plugin_with_context(fqcn).resolved:
                    return True
            except Exception:  # noqa: BLE001 - a loader that cannot load it has not found it
                continue
        return False

    errors, count = [], 0
    for name, refs in sorted(references(files, known).items()):
        if name not in installed and name not in CORE:
            errors.append(f"{name} is not installed (not a declared dependency?), used by {first(refs)}")
            continue
        for fqcn in sorted({w for _, _, w in refs if not w.startswith(("ansible_collections.", "collections: "))}):
            count += 1
            if not found(fqcn):
                at = [r for r in refs if r[2] == fqcn]
                errors.append(f"{fqcn} does not resolve in the installed collections, used by {first(at)}")
    for error in errors:
        log(f"ERROR: {error}")
    if errors:
        return 1
    log(f"all {count} FQCNs the installed content references resolve with only "
        f"{', '.join(sorted(n for n in installed if n != SELF and not n.startswith('ansible._')))} installed beside it")
    return 0


def main(argv):
    commands = {"check": (check, 1), "sources": (sources, 1), "resolve": (resolve, 1)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.exit(__doc__)
    function, _ = commands[argv[1]]
    return function(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
