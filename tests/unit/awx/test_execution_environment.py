"""execution-environment.yml: ansible-builder's own schema and `ansible-builder create` (the build
context; `build` needs registries and an RPM base image, see README "AWX"), and the one dependency
list it shares with the development pins."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
BUILDER = Path(sys.executable).parent / "ansible-builder"  # requirements-dev.txt pins it


def pins(path):
    out = {}
    for line in path.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if found:
            out[found.group(1).lower()] = found.group(2)
    return out


def create(ee_file, context):
    return subprocess.run([str(BUILDER), "create", "--file", str(ee_file), "--context", str(context), "--output-filename", "Containerfile"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_ansible_builder_creates_the_build_context(tmp_path):
    done = create(ROOT / "execution-environment.yml", tmp_path / "context")
    assert done.returncode == 0, done.stdout + done.stderr
    build = tmp_path / "context" / "_build"
    assert (build / "requirements.txt").read_text() == (ROOT / "ee" / "requirements.txt").read_text()
    assert (build / "requirements.yml").read_text() == (ROOT / "requirements.yml").read_text()
    assert (build / "bindep.txt").read_text() == (ROOT / "ee" / "bindep.txt").read_text()
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    core = pins(ROOT / "requirements-dev.txt")["ansible-core"]
    assert 'ANSIBLE_INSTALL_REFS="ansible-core==%s ansible-runner==' % core in containerfile
    assert "quay.io/centos/centos:stream9" in containerfile


def test_ansible_builder_refuses_a_file_outside_its_schema(tmp_path):
    data = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    data["dependencies"]["pyhton"] = data["dependencies"].pop("python")
    bad = tmp_path / "execution-environment.yml"
    bad.write_text(yaml.safe_dump(data))
    for name in ("requirements.yml", "ee"):
        (tmp_path / name).symlink_to(ROOT / name)
    done = create(bad, tmp_path / "context")
    assert done.returncode != 0 and "pyhton" in done.stdout + done.stderr


def test_one_dependency_list_pinned_like_the_development_tools():
    dev = pins(ROOT / "requirements-dev.txt")
    ee_pins = pins(ROOT / "ee" / "requirements.txt")
    assert ee_pins and all(dev.get(name) == version for name, version in ee_pins.items()), \
        {n: (v, dev.get(n)) for n, v in ee_pins.items() if dev.get(n) != v}
    data = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert data["version"] == 3
    assert data["dependencies"]["ansible_core"]["package_pip"] == "ansible-core==%s" % dev["ansible-core"]
    assert data["dependencies"]["ansible_runner"]["package_pip"] == "ansible-runner==%s" % dev["ansible-runner"]
    assert data["dependencies"]["python"] == "ee/requirements.txt" and data["dependencies"]["galaxy"] == "requirements.yml"
    controller = yaml.safe_load(re.sub(r"!unsafe ", "", (ROOT / "awx" / "controller.yml").read_text()))
    assert [e["image"] for e in controller["controller_execution_environments"]] == data["options"]["tags"]
