"""docs/runbooks/: every playbook, variable, inventory, AWX template and schedule a page names exists."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
RUNBOOKS = ROOT / "docs" / "runbooks"
PAGES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
ENVIRONMENTS = ("staging", "production")


def _unsafe(loader, node):
    return loader.construct_scalar(node)


class Loader(yaml.SafeLoader):
    """awx/controller.yml carries Ansible's !unsafe tag."""


Loader.add_constructor("!unsafe", _unsafe)


def names(key, name):
    return {item["name"] for item in yaml.load((ROOT / "awx" / name).read_text(), Loader=Loader)[key]}


TEMPLATES = names("controller_templates", "templates.yml")
SCHEDULES = names("controller_schedules", "controller.yml")


def expand(text):
    return [text.replace("<env>", env) for env in ENVIRONMENTS] if "<env>" in text else [text]


def specs():
    spec = importlib.util.spec_from_file_location("awx_templates", ROOT / "scripts" / "awx-templates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_specs()


def commands(text):
    """The ansible-playbook command lines of the page's code blocks."""
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if "ansible-playbook" in line]


def test_the_index_lists_every_page():
    index = (RUNBOOKS / "README.md").read_text()
    assert {p.name for p in PAGES} == set(re.findall(r"\]\(([a-z-]+\.md)\)", index))
    assert len(PAGES) >= 9


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_a_runbook_names_real_playbooks_templates_schedules_and_variables(page):
    text = page.read_text()
    head = text.split("\n\n")[1]
    assert re.search(r"Playbooks?: `playbooks/", head) and "AWX template" in head, "%s: say its playbooks and AWX templates first" % page.name
    for path in set(re.findall(r"playbooks/[a-z_<>]+\.yml", text)):
        for one in expand(path):
            assert (ROOT / one).is_file(), "%s names %s" % (page.name, one)
    for name in set(re.findall(r"`((?:<env>|staging|production) \| [a-z ]+(?:\s*\(check\))?)`", text.replace("\n", " "))):
        name = " ".join(name.split())
        for one in expand(name):
            assert one in TEMPLATES, "%s names the AWX template %r, which awx/templates.yml does not define" % (page.name, one)
    for name in set(re.findall(r"`(<env> [a-z ]+)` ", text)) | set(re.findall(r"schedule\s+`([^`]+)`", text)):
        for one in expand(name):
            assert one in SCHEDULES or one in TEMPLATES, "%s names %r" % (page.name, one)
    known = specs()
    for line in commands(text):
        words = shlex.split(line.replace("<env>", "staging"))
        assert any(re.fullmatch(r"playbooks/[a-z_]+\.yml", w) for w in words), line
        for flag, value in zip(words, words[1:]):
            if flag == "-i" and value != "localhost,":
                assert (ROOT / value / "hosts.yml").is_file(), line
            if flag == "-e":
                given = json.loads(value) if value.startswith("{") else {value.split("=", 1)[0]: None}
                for variable in given:
                    declared = variable in known or variable in (ROOT / "playbooks" / "awx_configure.yml").read_text()
                    assert declared, "%s: -e %s is declared by no argument spec" % (page.name, variable)
