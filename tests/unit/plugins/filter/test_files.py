"""plugins/filter/files.py: one stat for a list of directories, and the file module only for
the ones that are missing or differ (drift is found, a converged list yields nothing)."""
from __future__ import annotations

import grp
import os
import pwd
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sciops.platform.plugins.filter.files import FilterModule, directories_to_fix, directory_stat_argv


def _stat(items):
    return subprocess.run(directory_stat_argv(items), capture_output=True, text=True, check=False).stdout


@pytest.fixture
def me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def test_converged_directories_need_nothing(tmp_path, me):
    owner, group = me
    items = []
    for name, mode in (("a", "0755"), ("b", "0750"), ("with|bar", "0700")):
        path = tmp_path / name
        path.mkdir()
        path.chmod(int(mode, 8))
        items.append({"path": str(path), "owner": owner, "group": group, "mode": mode})
    assert directories_to_fix(_stat(items), items) == []


def test_missing_file_instead_of_directory_and_drift_are_fixed(tmp_path, me):
    owner, group = me
    (tmp_path / "ok").mkdir(mode=0o755)
    (tmp_path / "ok").chmod(0o755)
    (tmp_path / "mode").mkdir()
    (tmp_path / "mode").chmod(0o777)
    (tmp_path / "file").write_text("x")
    items = [
        {"path": str(tmp_path / "ok"), "mode": "0755"},
        {"path": str(tmp_path / "mode"), "mode": "0750"},
        {"path": str(tmp_path / "file"), "mode": "0755"},
        {"path": str(tmp_path / "missing"), "mode": "0755"},
        {"path": str(tmp_path / "ok"), "owner": "nobody-" + owner},
        {"path": str(tmp_path / "ok"), "group": "nogroup-" + group},
    ]
    assert [i["path"].rsplit("/", 1)[1] for i in directories_to_fix(_stat(items), items)] == [
        "mode", "file", "missing", "ok", "ok"]


def test_what_an_item_leaves_out_is_not_compared(tmp_path):
    (tmp_path / "d").mkdir()
    items = [{"path": str(tmp_path / "d")}]
    assert directories_to_fix(_stat(items), items) == []


def test_mode_as_number_and_as_string_compare_alike():
    out = "directory|root|root|750|/srv/x\n"
    assert directories_to_fix(out, [{"path": "/srv/x", "mode": "0750"}]) == []
    assert directories_to_fix(out, [{"path": "/srv/x", "mode": "750"}]) == []


@pytest.mark.parametrize("bad", ["/srv", [{"path": "relative"}], [{"mode": "0755"}], ["/srv"]])
def test_bad_items_are_refused(bad):
    with pytest.raises(AnsibleFilterError, match="directory item|absolute path"):
        directory_stat_argv(bad)


def test_a_mode_that_is_not_octal_is_named():
    with pytest.raises(AnsibleFilterError, match="mode must be octal"):
        directories_to_fix("directory|root|root|755|/a\n", [{"path": "/a", "mode": "rwx"}])


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {"directory_stat_argv", "directories_to_fix"}
