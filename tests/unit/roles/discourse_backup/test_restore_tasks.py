"""The role's restore entry point (tasks/restore.yml, playbooks/forum_restore.yml's work) on this
machine against the stand-in forum (a real PostgreSQL database): refused without the
confirmation, for a name outside Discourse's grammar and for a newer schema; a confirmed restore
runs Discourse's enable_restore, restore and disable_restore and brings the forum back."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
STANDIN = ROOT / "tests" / "discourse" / "standin_forum.py"
PSQL = "runuser -u postgres -- psql"


@pytest.fixture
def forum(playbook, tmp_path, postgres_server, monkeypatch):
    db = "forum_" + uuid.uuid4().hex[:8]
    local = tmp_path / "backups" / "default"
    env = {"PGHOST": postgres_server["PGHOST"], "PGPORT": postgres_server["PGPORT"], "PGUSER": "postgres",
           "SCIOPS_STANDIN_STATE": str(tmp_path / "standin"), "SCIOPS_STANDIN_BACKUPS": str(local),
           "SCIOPS_STANDIN_UPLOADS": str(tmp_path / "uploads"), "SCIOPS_STANDIN_DB": db, "SCIOPS_STANDIN_PSQL": PSQL}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    standin_argv = [sys.executable, str(STANDIN)]

    def standin(*args):
        proc = subprocess.run(standin_argv + list(args), capture_output=True, text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def run(**extra):
        role_vars = {"discourse_backup_bucket": "forum-backups", "discourse_backup_local_dir": str(local),
                     "discourse_backup_rails_runner_command": standin_argv + ["rails-runner"],
                     "discourse_backup_cli_command": standin_argv + ["cli"],
                     "discourse_backup_discourse_dir": str(tmp_path), **extra}
        tasks = [{"name": "restore", "ansible.builtin.include_role": {
            "name": "sciops.platform.discourse_backup", "tasks_from": "restore.yml"}, "vars": role_vars}]
        return playbook(tasks, env=env)

    return standin, run, tmp_path


def messages(result):
    return " ".join(str(task.get("msg", "")) for task in result.results)


def test_restore_refusals_then_a_confirmed_restore(forum):
    standin, run, tmp_path = forum
    standin("init", "--users", "5", "--topics", "2", "--posts-per-topic", "2", "--uploads", "1", "--upload-bytes", "100")
    backup = standin("backup")
    standin("post", "after the backup")
    assert standin("stats")["posts"] == backup["posts"] + 1

    refused = run(discourse_backup_restore_backup=backup["name"])
    assert refused.rc != 0 and "add -e '{\"discourse_backup_restore_confirm\": true}' to go on" in messages(refused), refused
    refused = run(discourse_backup_restore_backup="forum.tar.gz", discourse_backup_restore_confirm=True)
    assert refused.rc != 0 and "discourse_backup_restore_backup must be a backup's file name" in messages(refused), refused
    newer = "deepchem-forum-2099-01-01-000000-v29991231235959.tar.gz"
    refused = run(discourse_backup_restore_backup=newer, discourse_backup_restore_confirm=True)
    assert refused.rc != 0, refused
    assert f"{newer} has schema version 29991231235959, newer than the forum's 20241126124358" in messages(refused), refused
    assert standin("stats")["posts"] == backup["posts"] + 1  # nothing restored

    done = run(discourse_backup_restore_backup=backup["name"], discourse_backup_restore_confirm=True)
    assert done.rc == 0, done
    after = standin("stats")
    assert (after["posts"], after["posts_md5"]) == (backup["posts"], backup["posts_md5"])
    assert not (tmp_path / "standin" / "restore_enabled").exists()  # disable_restore ran
