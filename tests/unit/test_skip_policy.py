"""The no-silent-skip plugin (tests/lib/skip_policy.py): an unlisted skip or xfail fails the run,
a listed one passes and is logged with its reason."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LIB = Path(__file__).resolve().parents[1] / "lib"

SAMPLE = '''
import pytest

def test_runs():
    assert True

def test_needs_tool():
    pytest.skip("the tool is not installed")

@pytest.mark.xfail(reason="known bug")
def test_known_bug():
    assert False
'''


def run(tmp_path, policy):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "skips.yml").write_text(policy)
    env = dict(os.environ, PYTHONPATH=str(LIB), SCIOPS_SKIPS=str(tmp_path / "skips.yml"),
               SCIOPS_SKIP_LOG=str(tmp_path / "skips.log"))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "skip_policy",
                           "-rs", str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    log = (tmp_path / "skips.log").read_text() if (tmp_path / "skips.log").exists() else ""
    return proc, log


def test_unlisted_skip_and_xfail_fail_the_run(tmp_path):
    proc, log = run(tmp_path, "skips: []\n")
    assert proc.returncode == 1, proc.stdout
    assert "UNLISTED SKIP test_sample.py::test_needs_tool: the tool is not installed" in proc.stdout
    assert "UNLISTED SKIP test_sample.py::test_known_bug: xfail: known bug" in proc.stdout
    assert "UNLISTED\ttest_sample.py::test_needs_tool\tthe tool is not installed" in log


def test_listed_skips_pass_and_are_logged(tmp_path):
    proc, log = run(tmp_path, "skips:\n"
                              "  - {test: 'test_sample.py::test_needs_tool', reason: needs the tool}\n"
                              "  - {test: '*::test_known_bug', reason: upstream bug 1}\n")
    assert proc.returncode == 0, proc.stdout
    assert "listed\ttest_sample.py::test_needs_tool\tthe tool is not installed" in log
    assert "listed\ttest_sample.py::test_known_bug\txfail: known bug" in log


def test_an_entry_without_reason_is_refused(tmp_path):
    proc = run(tmp_path, "skips:\n  - {test: 'test_sample.py::test_needs_tool'}\n")[0]
    assert proc.returncode != 0
    assert "needs a 'test' and a non-empty 'reason'" in proc.stdout + proc.stderr


def test_the_project_policy_lists_reasons():
    sys.path.insert(0, str(LIB))
    try:
        import skip_policy
        entries = skip_policy.load_policy(Path(__file__).resolve().parents[1] / "skips.yml")
    finally:
        sys.path.remove(str(LIB))
    assert all(e["reason"].strip() for e in entries)
