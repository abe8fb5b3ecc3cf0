"""pytest plugin: no silent skip. A skipped or xfailed test fails the run unless tests/skips.yml
lists it with a reason. Every skip taken is appended to tests/output/skips.log (or
$SCIOPS_SKIP_LOG), which the `make test` summary prints.

Loaded by the unit tests (tests/unit/run.sh) and by every molecule scenario's testinfra run
(.config/molecule/config.yml: PYTEST_ADDOPTS=-p skip_policy).
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
POLICY = Path(os.environ.get("SCIOPS_SKIPS", str(ROOT / "tests" / "skips.yml")))


def load_policy(path: Path = POLICY) -> list[dict]:
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("skips") or []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("test") or not str(entry.get("reason", "")).strip():
            raise pytest.UsageError(f"{path}: every skips entry needs a 'test' and a non-empty 'reason': {entry!r}")
    return entries


def listed(nodeid: str, entries: list[dict]) -> dict | None:
    """The policy entry that allows nodeid to skip (matched on the id, with or without its folder)."""
    for entry in entries:
        pattern = entry["test"]
        if fnmatch.fnmatchcase(nodeid, pattern) or fnmatch.fnmatchcase(nodeid, "*/" + pattern.lstrip("*/")):
            return entry
    return None


def _reason(report) -> str:
    if hasattr(report, "wasxfail"):
        return "xfail: " + (report.wasxfail or "no reason given")
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    def __init__(self):
        self.entries = load_policy()
        self.taken: list[tuple[str, str, dict | None]] = []

    @pytest.hookimpl
    def pytest_report_header(self, config):
        return f"skip policy: only the {len(self.entries)} tests listed in {POLICY.name} may skip"

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        if report.skipped and (report.when in ("setup", "call") or hasattr(report, "wasxfail")):
            self.taken.append((report.nodeid, _reason(report), listed(report.nodeid, self.entries)))

    @pytest.hookimpl
    def pytest_collectreport(self, report):
        if report.skipped:  # a whole module skipped at import (pytest.skip(allow_module_level=True))
            self.taken.append((report.nodeid, _reason(report), listed(report.nodeid, self.entries)))

    @property
    def unlisted(self):
        return [(nodeid, reason) for nodeid, reason, entry in self.taken if entry is None]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        log = Path(os.environ.get("SCIOPS_SKIP_LOG", str(ROOT / "tests" / "output" / "skips.log")))
        if self.taken:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as fh:
                for nodeid, reason, entry in self.taken:
                    state = "listed" if entry else "UNLISTED"
                    fh.write(f"{state}\t{nodeid}\t{reason}\n")
        if self.unlisted and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if not self.unlisted:
            return
        terminalreporter.section("skips not allowed by tests/skips.yml", sep="=", red=True, bold=True)
        for nodeid, reason in self.unlisted:
            terminalreporter.line(f"UNLISTED SKIP {nodeid}: {reason}")
        terminalreporter.line(
            "A test that cannot run here fails the run: install what it needs (make setup), or list it "
            "in tests/skips.yml with the reason it cannot run here.")


def pytest_configure(config):
    config.pluginmanager.register(SkipPolicy(), "sciops-skip-policy")


if __name__ == "__main__":  # scripts/run-checks.sh prints the policy in its summary
    ALLOWED = load_policy()
    for allowed in ALLOWED:
        print(f"  {allowed['test']}: {allowed['reason']}")
    if not ALLOWED:
        print("  (none)")
