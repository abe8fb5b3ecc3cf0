"""Every playbook validates its inputs first (playbooks/validate.yml) and stops every host on a
failure; the validation refuses the finding's bad inputs in one line before anything runs."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
PLAYBOOKS = ROOT / "playbooks"
VALIDATE = "validate.yml"

# Files of playbooks/ that do not start with the validation, and why.
EXCEPTIONS = {
    "validate.yml": "the validation itself",
    "service_target.yml": "imported only as a part, after the validation, by the service playbooks "
                          "(deploy_service, switch_colour, rollback, terminate_service, service_maintenance, service_logs)",
}


def playbooks():
    return sorted(path.name for path in PLAYBOOKS.glob("*.yml"))


def load(name):
    return yaml.safe_load((PLAYBOOKS / name).read_text())


def plays(name, seen=None):
    """The plays of a playbook, those of the playbooks it imports included (each file once)."""
    seen = set() if seen is None else seen
    if name in seen:
        return []
    seen.add(name)
    found = []
    for item in load(name):
        imported = item.get("ansible.builtin.import_playbook") or item.get("import_playbook")
        if imported:
            found += plays(imported, seen)
        else:
            found.append((name, item))
    return found


def test_the_exceptions_exist():
    assert set(EXCEPTIONS) <= set(playbooks())
    # An exception must really be imported by another playbook (or be the validation).
    imported = {item.get("ansible.builtin.import_playbook") for name in playbooks() for item in load(name)}
    assert all(name in imported for name in EXCEPTIONS)


@pytest.mark.parametrize("name", [name for name in playbooks() if name not in EXCEPTIONS])
def test_every_playbook_starts_with_the_validation(name):
    first = load(name)[0]
    assert first.get("ansible.builtin.import_playbook") == VALIDATE, (
        "playbooks/%s must start with\n- name: Validate the inputs first (every playbook; once a run)\n"
        "  ansible.builtin.import_playbook: validate.yml\n(or be listed, with its reason, in EXCEPTIONS)" % name)
    assert "when" not in first, "the validation of %s must not be conditional" % name


@pytest.mark.parametrize("name", playbooks())
def test_every_play_stops_all_hosts_on_the_first_failure(name):
    for where, play in plays(name):
        assert play.get("any_errors_fatal") is True, "play '%s' of playbooks/%s: any_errors_fatal: true" % (play.get("name"), where)


def test_the_validation_play_never_connects():
    (play,) = load(VALIDATE)
    assert play["hosts"] == "all:!localhost" and play["gather_facts"] is False and play["any_errors_fatal"] is True
    local = ("ansible.builtin.assert", "ansible.builtin.set_fact", "ansible.builtin.meta", "ansible.builtin.include_role")
    connecting = [task["name"] for task in play["tasks"] if not any(key in task for key in local)]
    assert connecting == []
    # It runs once however often an entry point imports it (local.yml -> site.yml -> common.yml ...).
    assert play["tasks"][0]["ansible.builtin.meta"] == "end_play" and play["tasks"][-1]["ansible.builtin.set_fact"] == {
        "__validate_done": True}


def run(*args):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/local"] + list(args)
    proc = subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


# The finding's commands (issue 11): each must stop in the validation, before a play of the
# playbook runs (no node needs to be up: the validation connects to none).
BAD = [
    (["-e", "postgres_prot=5433"], "unknown variable postgres_prot; did you mean postgres_port?"),
    (["-e", "postgres_ssl=false"], "postgres_ssl must be a boolean; got the string 'false' (with -e key=value every value"
                                   " is a string: pass JSON, -e '{\"postgres_ssl\": false}')"),
    (["-e", "postgres_port=5433"], "postgres_port must be an integer; got the string '5433' (with -e key=value every value"
                                   " is a string: pass JSON, -e '{\"postgres_port\": 5433}')"),
    (["-e", "postgres_backup_enabled=false"], "postgres_backup_enabled must be a boolean; got the string 'false'"),
]


def test_postgres_playbook_refuses_the_findings_inputs_before_it_runs():
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda bad: run("playbooks/postgres.yml", *bad[0]), BAD))
    for (args, message), (rc, out) in zip(BAD, results):
        assert rc != 0, out
        assert "[ERROR]: Task failed: Action failed: " + message in out, out
        assert "PLAY [PostgreSQL servers]" not in out, out
        assert len([line for line in out.splitlines() if line.startswith("[ERROR]")]) == 1, out
