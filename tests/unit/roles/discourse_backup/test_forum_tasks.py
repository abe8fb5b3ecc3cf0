"""The role's forum tasks (tasks/discourse.yml) through ansible-playbook on this machine, against a
copy of a standard install's app.yml and the stand-in forum's rails runner: only the env keys
change, a second run and check mode change nothing, the keys never appear in the output, and the
site settings are set (a dry run in check mode)."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
SAMPLE = ROOT / "tests" / "fixtures" / "discourse" / "app.yml.sample"
STANDIN = ROOT / "tests" / "discourse" / "standin_forum.py"
SECRET = "forum-secret-never-printed"


@pytest.fixture
def forum(playbook, tmp_path):
    install = tmp_path / "discourse"
    (install / "containers").mkdir(parents=True)
    shutil.copy(SAMPLE, install / "containers" / "app.yml")
    state = tmp_path / "standin"

    def run(check=False, **extra):
        role_vars = {"discourse_backup_mode": "discourse", "discourse_backup_bucket": "forum-backups",
                     "discourse_backup_prefix": "prod", "discourse_backup_s3_access_key": "forum-key",
                     "discourse_backup_s3_secret_key": SECRET, "discourse_backup_discourse_dir": str(install),
                     "discourse_backup_container_running_command": [sys.executable, str(STANDIN), "running"],
                     "discourse_backup_rails_runner_command": [sys.executable, str(STANDIN), "rails-runner"], **extra}
        tasks = [{"name": "forum", "ansible.builtin.include_role": {
            "name": "sciops.platform.discourse_backup", "tasks_from": "discourse.yml"}, "vars": role_vars}]
        return playbook(tasks, check=check, env={"SCIOPS_STANDIN_STATE": str(state)}, extra_args=("-v",))

    return install / "containers" / "app.yml", state / "site_settings.json", run


def changed(result):
    return [task for task in result.results if task.get("changed")]


def test_the_discourse_way_edits_the_env_keys_and_sets_the_site_settings_once(forum):
    app_yml, settings, run = forum
    check = run(check=True)
    assert check.rc == 0, check
    assert app_yml.read_text() == SAMPLE.read_text() and not settings.exists()
    assert len(changed(check)) == 2, check  # app.yml and the settings, neither written
    assert SECRET not in check.stdout + check.stderr

    result = run()
    assert result.rc == 0, result
    assert SECRET not in result.stdout + result.stderr
    before, after = SAMPLE.read_text().splitlines(), app_yml.read_text().splitlines()
    assert [line for line in before if line not in after] == []
    assert [line for line in after if line not in before] == [
        "  DISCOURSE_BACKUP_LOCATION: 's3'", "  DISCOURSE_S3_BACKUP_BUCKET: 'forum-backups/prod'",
        "  DISCOURSE_S3_REGION: 'us-east-1'", "  DISCOURSE_S3_ACCESS_KEY_ID: 'forum-key'",
        f"  DISCOURSE_S3_SECRET_ACCESS_KEY: '{SECRET}'"]
    assert "./launcher rebuild app" in result.stdout
    assert json.loads(settings.read_text()) == {"automatic_backups_enabled": True, "backup_frequency": 1,
                                                "backup_time_of_day": "3:30", "maximum_backups": 7,
                                                "s3_disable_cleanup": True}
    again = run()
    assert again.rc == 0 and changed(again) == [], again
    assert run(check=True).rc == 0 and changed(run(check=True)) == []

    # The host way takes Discourse's own S3 backups out again (two lines), keeps the keys.
    host = run(discourse_backup_mode="host")
    assert host.rc == 0 and len(changed(host)) == 1, host
    assert "DISCOURSE_BACKUP_LOCATION" not in app_yml.read_text() and "DISCOURSE_S3_ACCESS_KEY_ID" in app_yml.read_text()


def test_a_missing_install_is_one_clear_message(forum, tmp_path):
    _app_yml, _settings, run = forum
    result = run(discourse_backup_discourse_dir=str(tmp_path / "nowhere"))
    assert result.rc != 0
    assert "does not exist" in result.stdout and "standard Discourse install" in result.stdout
