"""playbooks/awx_configure.yml against the AWX API test double (tests/servers/awx.py).

The first run creates every object of awx/ (surveys, credentials' associations and schedules
included); a second run reports changed=0 and sends no write; --check with changed data reports
the changes and sends no write either. The two last runs go side by side (both must write
nothing), which keeps the check about a minute shorter on two cores.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.servers.awx import AwxServer

ROOT = Path(__file__).resolve().parents[3]
VAULT_PASSWORD = "s3cret-vault-password-from-the-environment"


def unsafe(loader, node):
    return loader.construct_scalar(node)


class DataLoader(yaml.SafeLoader):
    """Reads the awx/ files (their !unsafe tags are Ansible's)."""


DataLoader.add_constructor("!unsafe", unsafe)


def data():
    out = {}
    for name in ("controller.yml", "templates.yml"):
        out.update(yaml.load((ROOT / "awx" / name).read_text(), Loader=DataLoader))
    return out


def run(server, *args, env=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CONTROLLER_", "TOWER_", "SCIOPS_AWX_", "ANSIBLE_"))}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", no_proxy="127.0.0.1", NO_PROXY="127.0.0.1",
                   CONTROLLER_HOST=server.url, CONTROLLER_OAUTH_TOKEN=server.token, **(env or {}))
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "playbooks/awx_configure.yml", *args]
    return subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=400, check=False)


def recap(stdout):
    line = next(x for x in stdout.splitlines() if x.startswith("localhost ") and "changed=" in x)
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


@pytest.fixture(scope="module")
def awx():
    server = AwxServer(project_dir=ROOT).start()
    yield server
    server.stop()
    assert server.violations == [], "requests or responses outside the AWX API contract"


def test_configure_creates_everything_then_changes_nothing_and_check_mode_writes_nothing(awx, tmp_path):
    want = data()
    first = run(awx, env={"SCIOPS_AWX_STAGING_VAULT_PASSWORD": VAULT_PASSWORD})
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-2000:]
    assert VAULT_PASSWORD not in first.stdout + first.stderr
    assert awx.violations == []

    # Everything is there, as the data says.
    for resource, key in (("organizations", "controller_organizations"), ("credential_types", "controller_credential_types"),
                          ("credentials", "controller_credentials"), ("execution_environments", "controller_execution_environments"),
                          ("projects", "controller_projects"), ("inventories", "controller_inventories"),
                          ("inventory_sources", "controller_inventory_sources"), ("job_templates", "controller_templates"),
                          ("schedules", "controller_schedules")):
        names = {o["name"] for o in awx.objects(resource)}
        assert {item["name"] for item in want[key]} <= names, resource
    for template in want["controller_templates"]:
        made = awx.find("job_templates", template["name"])
        assert made["playbook"] == template["playbook"] and made["job_type"] == template["job_type"], template["name"]
        assert json.loads(made["extra_vars"]) == template["extra_vars"]
        assert awx.surveys.get(made["id"], {}) == template.get("survey_spec", {}), template["name"]
        creds = sorted(awx.store["credentials"][c]["name"] for c in awx.jt_credentials.get(made["id"], []))
        assert creds == sorted(template["credentials"]), template["name"]
        # The environments' site templates get their webhook (and AWX its key); no other template has one.
        assert made["webhook_service"] == template.get("webhook_service", ""), template["name"]
        assert bool(awx.webhook_keys.get(made["id"])) == bool(template.get("webhook_service")), template["name"]
    vault = awx.find("credentials", "sciops staging vault")
    assert vault["inputs"] == {"vault_id": "staging", "vault_password": VAULT_PASSWORD}  # from the environment
    assert "vault_password" not in awx.find("credentials", "sciops production vault")["inputs"]  # none given: none made up
    drill = awx.find("schedules", "staging monthly forum restore drill")
    assert awx.store["job_templates"][drill["unified_job_template"]]["name"] == "staging | forum restore drill"
    assert drill["next_run"]

    # Data that differs from AWX: another survey default, a new template, another rrule.
    changed = data()
    template = next(t for t in changed["controller_templates"] if t["name"] == "staging | service logs")
    next(q for q in template["survey_spec"]["spec"] if q["variable"] == "lines")["default"] = 200
    changed["controller_templates"].append(dict(template, name="staging | service logs (copy)"))
    changed["controller_schedules"][0]["rrule"] = changed["controller_schedules"][0]["rrule"].replace("T030000", "T020000")
    extra = tmp_path / "changed.json"
    extra.write_text(json.dumps({"controller_templates": changed["controller_templates"],
                                 "controller_schedules": changed["controller_schedules"]}))

    awx.reset_log()
    with ThreadPoolExecutor(2) as pool:
        again_job = pool.submit(run, awx)  # no SCIOPS_AWX_* secret given: AWX keeps its own
        check_job = pool.submit(run, awx, "--check", "-e", "@%s" % extra)
        again, check = again_job.result(), check_job.result()
    assert awx.writes() == [], ["%s %s" % (c.method, c.path) for c in awx.writes()]
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-2000:]
    assert recap(again.stdout)["changed"] == 0, [x for x in again.stdout.splitlines() if x.startswith("changed")]
    assert check.returncode == 0, check.stdout[-6000:] + check.stderr[-2000:]
    changed_items = sorted(x for x in check.stdout.splitlines() if x.startswith("changed: [localhost] => (item="))
    assert changed_items == ["changed: [localhost] => (item=staging nightly drift check)",
                             "changed: [localhost] => (item=staging | service logs (copy))",
                             "changed: [localhost] => (item=staging | service logs)"], check.stdout[-4000:]
    assert awx.find("credentials", "sciops staging vault")["inputs"]["vault_password"] == VAULT_PASSWORD
    assert awx.surveys[awx.find("job_templates", "staging | service logs")["id"]]["spec"][2]["default"] == 500
    assert awx.find("job_templates", "staging | service logs (copy)") is None
