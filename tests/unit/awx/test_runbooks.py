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
    # Fences paired from the start of their line, so a yaml block's closing fence is not taken for a shell block's opening.
    fenced = re.findall(r"^[ \t]*```([a-z]*)\n(.*?)^[ \t]*```[ \t]*$", text, flags=re.S | re.M)
    blocks = [body for language, body in fenced if language in ("", "sh", "bash")]
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if "ansible-playbook" in line]


def test_commands_are_read_from_shell_blocks_only_also_after_a_yaml_block():
    text = "x\n\n```yaml\na: 1\n```\n\n   ```sh\n   ansible-playbook playbooks/site.yml \\\n     -e x=1\n   ```\n\n```yaml\nansible-playbook no\n```\n"
    assert [" ".join(line.split()) for line in commands(text)] == ["ansible-playbook playbooks/site.yml -e x=1"]


def test_the_index_lists_every_page():
    index = (RUNBOOKS / "README.md").read_text()
    assert {p.name for p in PAGES} == set(re.findall(r"\]\(([a-z-]+\.md)\)", index))
    assert len(PAGES) >= 10


# The runbooks issue 16 asks for, by task: each must have its page.
REQUIRED = {
    "deploy a new version": "deploy.md",
    "switch and roll back": "switch-and-rollback.md",
    "restore the database": "restore-database.md",
    "restore the forum": "restore-forum.md",
    "renew and rotate certificates": "renew-certificates.md",
    "rotate a secret": "rotate-secret.md",
    "add a user to the admin group": "add-admin-user.md",
    "add a GPU worker": "add-gpu-worker.md",
    "recover a lost node": "recover-lost-node.md",
    "bring up a new environment from nothing": "new-environment.md",
}


def test_every_runbook_of_the_issue_has_its_page():
    assert {name for name in REQUIRED.values() if not (RUNBOOKS / name).is_file()} == set()


def test_the_certificates_page_covers_rotation():
    text = (RUNBOOKS / "renew-certificates.md").read_text()
    assert "## Rotate a certificate's key" in text and "-e renew_new_key=true" in text


def check_page(name, text):
    """Every playbook, AWX template, schedule, inventory and -e variable the page names exists."""
    head = text.split("\n\n")[1]
    assert re.search(r"Playbooks?: `playbooks/", head) and "AWX template" in head, "%s: say its playbooks and AWX templates first" % name
    for path in set(re.findall(r"playbooks/[a-z_<>]+\.yml", text)):
        for one in expand(path):
            assert (ROOT / one).is_file(), "%s names %s" % (name, one)
    for template in set(re.findall(r"`((?:<env>|staging|production) \| [a-z ]+(?:\s*\(check\))?)`", text.replace("\n", " "))):
        template = " ".join(template.split())
        for one in expand(template):
            assert one in TEMPLATES, "%s names the AWX template %r, which awx/templates.yml does not define" % (name, one)
    for schedule in set(re.findall(r"`(<env> [a-z ]+)` ", text)) | set(re.findall(r"schedule\s+`([^`]+)`", text)):
        for one in expand(schedule):
            assert one in SCHEDULES or one in TEMPLATES, "%s names %r" % (name, one)
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
                    assert declared, "%s: -e %s is declared by no argument spec" % (name, variable)


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_a_runbook_names_real_playbooks_templates_schedules_and_variables(page):
    check_page(page.name, page.read_text())


GOOD = (RUNBOOKS / "add-gpu-worker.md").read_text()


@pytest.mark.parametrize("broken, message", [
    (GOOD.replace("playbooks/gpu_worker_status.yml", "playbooks/gpu_worker_state.yml"), "names playbooks/gpu_worker_state.yml"),
    (GOOD.replace("`<env> | gpu worker status`", "`<env> | gpu workers status`"), "gpu workers status"),
    (GOOD.replace("-e gpu_worker_serial=1", "-e gpu_workers_serial=1"), "-e gpu_workers_serial is declared by no argument spec"),
    (GOOD.replace('{"gpu_worker_allow_reboot": true}', '{"gpu_worker_allow_reboots": true}'), "-e gpu_worker_allow_reboots"),
    (GOOD.replace("-i inventories/<env>", "-i inventories/<env>-old"), "inventories/staging-old"),
    (GOOD.replace("AWX templates:", "Templates:"), "say its playbooks and AWX templates first"),
], ids=["playbook", "template", "variable", "json variable", "inventory", "head"])
def test_the_check_refuses_a_page_that_names_what_does_not_exist(broken, message):
    check_page("add-gpu-worker.md", GOOD)
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_page("add-gpu-worker.md", broken)
