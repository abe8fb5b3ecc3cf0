"""Fixtures for the unit and module tests: local test servers and an ansible-playbook runner."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "collections"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.servers.digitalocean import DigitalOceanServer  # noqa: E402  (needs the path above)
from tests.servers.dns import DnsServer  # noqa: E402
from tests.servers.godaddy import GoDaddyServer  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def audit_log_apart(tmp_path_factory):
    """The project's ansible.cfg enables the audit callback (README "Audit trail"): the playbook runs of the
    tests write their records to a file of the test session, not to the checkout's logs/audit.jsonl."""
    if "SCIOPS_AUDIT_LOG" not in os.environ:
        os.environ["SCIOPS_AUDIT_LOG"] = str(tmp_path_factory.mktemp("audit") / "audit.jsonl")
    yield


@pytest.fixture
def godaddy():
    server = GoDaddyServer().start()
    yield server
    server.stop()
    assert server.violations == [], "requests or responses outside the API contract"


@pytest.fixture
def godaddy_dns(godaddy):
    """The GoDaddy test server's DNS face (UDP and TCP on 127.0.0.1), serving its live zones."""
    server = DnsServer(godaddy).start()
    yield server
    server.stop()


@pytest.fixture
def digitalocean():
    server = DigitalOceanServer().start()
    yield server
    server.stop()
    assert server.violations == [], "requests or responses outside the API contract"


class PlaybookResult:
    def __init__(self, proc, data):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.data = data
        self.results = []
        for play in (data or {}).get("plays", []):
            for task in play.get("tasks", []):
                self.results.append(task["hosts"].get("localhost", {}))

    @property
    def last(self):
        return self.results[-1]

    def __repr__(self):
        return "rc=%s\n%s\n%s" % (self.rc, self.stdout[-4000:], self.stderr[-2000:])


@pytest.fixture
def playbook(tmp_path):
    """Run tasks (a list of dicts) as a playbook on localhost through ansible-playbook."""

    def run(tasks, check=False, diff=True, env=None, extra_args=()):
        play = [{"name": "test", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": tasks}]
        path = tmp_path / "playbook.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("GODADDY_", "DIGITALOCEAN_", "ANSIBLE_"))}
        environ.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                       ANSIBLE_CALLBACKS_ENABLED="ansible.posix.json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
                       no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
        environ.update(env or {})
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", str(path),
               "-e", "ansible_python_interpreter=%s" % sys.executable]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        cmd += list(extra_args)
        proc = subprocess.run(cmd, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300, check=False)
        try:
            data = json.loads(proc.stdout[proc.stdout.index("{"):])
        except ValueError:
            data = None
        return PlaybookResult(proc, data)

    return run
