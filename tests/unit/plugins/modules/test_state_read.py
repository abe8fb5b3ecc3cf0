"""state_read through real ansible-playbook runs: its attribute lines are the ones stat prints, and
directories_to_fix reads them as it reads stat's; files and listings as a role uses them."""
from __future__ import annotations

import os
import subprocess
import time

from ansible_collections.sciops.platform.plugins.filter.files import directories_to_fix, directory_stat_argv


def read(playbook, check=False, **args):
    return playbook([{"name": "read", "sciops.platform.state_read": args}], check=check)


def test_attributes_are_the_lines_stat_prints(tmp_path, playbook):
    (tmp_path / "dir").mkdir(mode=0o750)
    os.chmod(tmp_path / "dir", 0o2750)
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    paths = [str(tmp_path / name) for name in ("dir", "file", "empty", "link", "missing")] + [str(tmp_path / "file" / "below")]
    r = read(playbook, stat=paths)
    assert r.rc == 0 and r.last["changed"] is False, r
    stat = subprocess.run(directory_stat_argv([{"path": p} for p in paths]), capture_output=True, text=True, check=False)
    assert r.last["stat"] == stat.stdout
    assert r.last["stat"].count("\n") == 4, "missing paths print nothing"


def test_directories_to_fix_reads_its_lines(tmp_path, playbook):
    (tmp_path / "ok").mkdir(mode=0o755)
    os.chmod(tmp_path / "ok", 0o755)
    (tmp_path / "drifted").mkdir()
    os.chmod(tmp_path / "drifted", 0o777)
    items = [{"path": str(tmp_path / n), "mode": "0755"} for n in ("ok", "drifted", "missing")]
    r = read(playbook, stat=[i["path"] for i in items])
    assert [i["path"].rsplit("/", 1)[1] for i in directories_to_fix(r.last["stat"], items)] == ["drifted", "missing"]


def test_files_come_back_as_text_or_null(tmp_path, playbook):
    (tmp_path / "record.json").write_text('{"version": "v3"}\n')
    (tmp_path / "bytes").write_bytes(b"ok \xff\n")
    r = read(playbook, files={"record": str(tmp_path / "record.json"), "gone": str(tmp_path / "gone"),
                              "below_a_file": str(tmp_path / "record.json" / "x"), "bytes": str(tmp_path / "bytes")})
    assert r.rc == 0, r
    assert r.last["files"] == {"record": '{"version": "v3"}\n', "gone": None, "below_a_file": None, "bytes": "ok \ufffd\n"}


def test_a_file_over_max_size_fails_with_the_option_named(tmp_path, playbook):
    (tmp_path / "big").write_text("x" * 100)
    r = read(playbook, files={"big": str(tmp_path / "big")}, max_size=99)
    assert r.rc != 0 and "files.big" in r.last["msg"] and "max_size" in r.last["msg"], r
    assert read(playbook, files={"big": str(tmp_path / "big")}, max_size=100).last["files"]["big"] == "x" * 100


def test_listings_match_the_pattern_with_type_and_mtime(tmp_path, playbook):
    releases = tmp_path / "releases"
    for name in ("blue-v1", "blue-v2", "green-v1"):
        (releases / name).mkdir(parents=True)
    (releases / "blue-notes").write_text("")
    old = time.time() - 3600
    os.utime(releases / "blue-v1", (old, old))
    r = read(playbook, listings={"releases": {"path": str(releases), "pattern": "blue-*"},
                                 "none": {"path": str(tmp_path / "missing"), "pattern": "*"}})
    got = r.last["listings"]
    assert [(e["path"].rsplit("/", 1)[1], e["type"]) for e in got["releases"]] == [
        ("blue-notes", "file"), ("blue-v1", "directory"), ("blue-v2", "directory")]
    assert abs(got["releases"][1]["mtime"] - old) < 1 and got["none"] == []


def test_relative_paths_and_bad_listings_are_refused_before_reading(playbook):
    r = read(playbook, files={"x": "relative/path"})
    assert r.rc != 0 and "files.x" in r.last["msg"] and "absolute" in r.last["msg"], r
    r = read(playbook, listings={"releases": {"path": "/tmp"}})
    assert r.rc != 0 and "listings.releases" in r.last["msg"] and "pattern" in r.last["msg"], r


def test_check_mode_reads_too(tmp_path, playbook):
    (tmp_path / "f").write_text("v1\n")
    r = read(playbook, check=True, files={"f": str(tmp_path / "f")})
    assert r.rc == 0 and r.last["changed"] is False and r.last["files"]["f"] == "v1\n", r
