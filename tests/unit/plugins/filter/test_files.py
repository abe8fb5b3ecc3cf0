"""plugins/filter/files.py: one stat for a list of directories, and the file module only for
the ones that are missing or differ (drift is found, a converged list yields nothing)."""
from __future__ import annotations

import grp
import hashlib
import os
import pwd
import subprocess

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sciops.platform.plugins.filter.files import (
    FilterModule, directories_to_fix, directory_stat_argv, file_stat_argv, files_to_write)


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
    assert set(FilterModule().filters()) == {"directory_stat_argv", "directories_to_fix", "file_stat_argv", "files_to_write"}


# --- files: one command for the checksums, owners and modes of a list of files -------------------
def _file_stat(items):
    return subprocess.run(file_stat_argv(items), capture_output=True, text=True, check=False).stdout


def _sha1(text):
    return hashlib.sha1(text.encode()).hexdigest()


def _file(tmp_path, name, text, mode):
    path = tmp_path / name
    path.write_text(text)
    path.chmod(int(mode, 8))
    return path


def test_converged_files_need_nothing(tmp_path, me):
    owner, group = me
    items = []
    for name, text, mode in (("a.yaml", '{"key": 1}\n', "0600"), ("with|bar|in|the|name", "x\n", "0644"),
                             ("empty", "", "0644")):
        path = _file(tmp_path, name, text, mode)
        items.append({"path": str(path), "checksum": _sha1(text), "owner": owner, "group": group, "mode": mode})
    assert files_to_write(_file_stat(items), items) == []


def test_missing_changed_and_drifted_files_are_written(tmp_path, me):
    owner, group = me
    same = _file(tmp_path, "same", "a\n", "0644")
    edited = _file(tmp_path, "edited", "b by hand\n", "0644")
    mode = _file(tmp_path, "mode", "c\n", "0666")
    (tmp_path / "dir").mkdir()
    items = [
        {"path": str(same), "checksum": _sha1("a\n"), "owner": owner, "group": group, "mode": "0644"},
        {"path": str(edited), "checksum": _sha1("b\n"), "owner": owner, "group": group, "mode": "0644"},
        {"path": str(mode), "checksum": _sha1("c\n"), "mode": "0644"},
        {"path": str(tmp_path / "missing"), "checksum": _sha1("d\n")},
        {"path": str(tmp_path / "dir"), "checksum": _sha1("e\n")},
        {"path": str(same), "checksum": _sha1("a\n"), "owner": "nobody-else"},
    ]
    assert [item["path"] for item in files_to_write(_file_stat(items), items)] == [
        str(edited), str(mode), str(tmp_path / "missing"), str(tmp_path / "dir"), str(same)]


def test_file_items_need_a_sha1(tmp_path):
    with pytest.raises(AnsibleFilterError, match="checksum must be the SHA-1"):
        files_to_write("", [{"path": str(tmp_path / "a"), "checksum": "abc"}])
    with pytest.raises(AnsibleFilterError, match="absolute path"):
        file_stat_argv([{"path": "relative"}])
