"""Helpers shared by the molecule scenarios' testinfra tests.

They run the project's playbooks against a scenario's nodes (through molecule's inventory)
and reach other nodes of the scenario, so tests can check behaviour from the outside.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import testinfra

PROJECT = Path(__file__).resolve().parents[2]
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
    r"\s+failed=(?P<failed>\d+)",
    re.M,
)


def inventory() -> str:
    return os.environ["MOLECULE_INVENTORY_FILE"]


def node(name: str):
    """A testinfra host for another node of the scenario."""
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory()}")


def journal_cursor(host) -> str:
    """The cursor of the node's newest journal entry (journal_after reads what comes after it)."""
    return host.check_output("journalctl -n 0 --show-cursor | tail -1").split("cursor: ", 1)[1]


def journal_after(host, cursor: str, unit: str | None = None) -> str:
    """The messages logged after cursor, one a line: all of them, or those of unit (its processes' lines and
    systemd's lines about it).

    It reads every entry after the cursor and filters here. journalctl 252 (Debian 12) given --after-cursor and a
    match (-u, -t or FIELD=) can miss entries written after the cursor: on a gpu_worker node a line that a plain
    `journalctl --after-cursor` showed was missing from the same read with `-u` or `-t` (and a CI run failed on it)."""
    out = host.check_output(f"journalctl --after-cursor '{cursor}' --no-pager -o json "
                            "--output-fields=_SYSTEMD_UNIT,UNIT,MESSAGE")
    lines = []
    for raw in out.splitlines():
        entry = json.loads(raw)
        if unit is None or unit in (entry.get("_SYSTEMD_UNIT"), entry.get("UNIT")):
            message = entry.get("MESSAGE") or ""
            lines.append(bytes(message).decode(errors="replace") if isinstance(message, list) else message)
    return "\n".join(lines)


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        return {
            m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(self.output)
        }

    def total(self, key: str) -> int:
        return sum(host[key] for host in self.recap().values())


def _playbook_env() -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / "collections"),
        "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    })
    return env


def _playbook_cmd(playbook: str | Path, args, extra_vars: dict | None) -> list:
    cmd = ["ansible-playbook", "-i", inventory(), str(PROJECT / playbook), *args]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", f"{key}={value}"]
    return cmd


def start_playbook(playbook: str | Path, *args: str, extra_vars: dict | None = None) -> subprocess.Popen:
    """Start a playbook against the scenario and return at once (to interrupt it)."""
    return subprocess.Popen(_playbook_cmd(playbook, args, extra_vars), env=_playbook_env(), cwd=PROJECT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_playbook(playbook: str | Path, *args: str, extra_vars: dict | None = None,
                 timeout: int = 900) -> PlaybookRun:
    """Run a playbook (path relative to the project root, or absolute) against the scenario."""
    proc = subprocess.run(_playbook_cmd(playbook, args, extra_vars), env=_playbook_env(), cwd=PROJECT,
                          capture_output=True, text=True, timeout=timeout)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)
