"""The forum's backups on the stand-in forum (tests/discourse/standin_forum.py, a test double of a
Discourse install) against a real S3 endpoint (moto on mol-fb-s3): the bucket's properties read
back, the uploader (identical checksum, a second run uploads nothing), the monitor (fresh passes;
stale, truncated, shrunken and unversioned fail, time injected), the OnFailure hook, the drill
(row counts and posts checksum equal the source's at backup time; a corrupt object fails with one
line and touches nothing), the status and restore playbooks, the discourse way's app.yml edit,
check mode and no key in any output. Tests run in file order: later ones build on earlier ones."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import time

import boto3
import pytest
from botocore.config import Config

from sciops_testing import journal_after, journal_cursor, run_playbook

testinfra_hosts = ["mol-fb-forum"]

ENDPOINT = "http://172.30.48.20:5000"
BUCKET = "deepchem-forum-backups"
PREFIX = "molecule/default/"
LOCAL = "/var/discourse/shared/standalone/backups/default"
SECRETS = ("molecule-admin-secret-never-printed", "molecule-forum-secret-never-printed")
SCRIPT = "/usr/local/sbin/sciops-discourse-backup --env-file /etc/sciops/discourse-backup.env"
CONVERGE = "molecule/discourse_backup/converge.yml"


@pytest.fixture(scope="module")
def s3():
    os.environ.update(AWS_ACCESS_KEY_ID="molecule-admin", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1",
                      AWS_REQUEST_CHECKSUM_CALCULATION="when_required", AWS_RESPONSE_CHECKSUM_VALIDATION="when_required")
    return boto3.client("s3", endpoint_url=ENDPOINT, config=Config(s3={"addressing_style": "path"}))


def objects(s3):
    return {item["Key"][len(PREFIX):]: item for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX).get("Contents", [])}


def newest_object(s3):
    """The newest backup as the role's script picks it (by the time S3 received it, then by name)."""
    return max(objects(s3).values(), key=lambda item: (item["LastModified"], item["Key"]))


def standin(host, *args):
    return json.loads(host.check_output("/usr/local/bin/standin-forum " + " ".join(args)).splitlines()[-1])


def start(host, job):
    """Start a job's unit and wait for it; its exit status and its journal lines of this run."""
    cursor = journal_cursor(host)
    rc = host.run(f"systemctl start sciops-discourse-backup-{job}.service").rc
    journal = journal_after(host, cursor, f"sciops-discourse-backup-{job}.service")
    return rc, journal


def flat(text):
    """The output with its line folding undone (long messages are folded in the YAML results)."""
    return " ".join(text.split())


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text


# --- the bucket --------------------------------------------------------------------------------
def test_bucket_is_private_encrypted_versioned_with_a_lifecycle(host, s3):
    block = s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    assert s3.get_bucket_ownership_controls(Bucket=BUCKET)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    rules = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    assert (rule["Filter"]["Prefix"], rule["Expiration"]["Days"], rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]) == (
        PREFIX, 30, 1)
    # No bucket policy here (discourse_backup_require_tls false): moto would refuse every object
    # request under the plain-HTTP deny (the unit tests set it and read it back, and show the refusal).
    policy = json.loads(open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "forum-iam-policy.json")).read())
    assert policy["Statement"][1]["Resource"] == f"arn:aws:s3:::{BUCKET}/{PREFIX}*"


# --- the node ----------------------------------------------------------------------------------
def test_the_timers_are_scheduled_with_a_next_run(host):
    for job in ("upload", "monitor", "drill"):
        timer = host.service(f"sciops-discourse-backup-{job}.timer")
        assert timer.is_enabled and timer.is_running, job
        assert host.check_output(f"systemctl show -p NextElapseUSecRealtime --value sciops-discourse-backup-{job}.timer"), job
        on_failure = host.check_output(f"systemctl show -p OnFailure --value sciops-discourse-backup-{job}.service")
        assert on_failure == f"sciops-discourse-backup-alert@sciops-discourse-backup-{job}.service.service"


def test_the_forums_key_is_root_only(host):
    env = host.file("/etc/sciops/discourse-backup.env")
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)
    assert_no_secret(host.file("/etc/sciops/discourse-backup.json").content_string)


# --- upload ------------------------------------------------------------------------------------
def test_a_backup_reaches_the_bucket_with_an_identical_checksum_and_a_second_run_uploads_nothing(host, s3):
    made = standin(host, "backup")
    rc, journal = start(host, "upload")
    assert rc == 0, journal
    print(journal)
    assert f"uploaded s3://{BUCKET}/{PREFIX}{made['name']}" in journal
    local = host.check_output(f"sha256sum {LOCAL}/{made['name']}").split()[0]
    body = s3.get_object(Bucket=BUCKET, Key=PREFIX + made["name"])
    assert hashlib.sha256(body["Body"].read()).hexdigest() == local == body["Metadata"]["sha256"]
    local = host.check_output(f"ls {LOCAL}").split()
    assert {name for name in local if name.endswith(".tar.gz")} <= set(objects(s3))  # prepare's of yesterday too
    versions = s3.list_object_versions(Bucket=BUCKET)["Versions"]
    rc, journal = start(host, "upload")
    assert rc == 0 and "nothing to upload" in journal, journal
    assert s3.list_object_versions(Bucket=BUCKET)["Versions"] == versions


# --- monitor -----------------------------------------------------------------------------------
def monitor(host, now=None):
    env = f"SCIOPS_DISCOURSE_BACKUP_NOW={now} " if now else ""
    return host.run(f"{env}{SCRIPT} monitor")


def test_the_monitor_passes_on_the_fresh_backup_and_writes_its_metrics(host):
    rc, journal = start(host, "monitor")
    assert rc == 0, journal
    metrics = host.file("/var/lib/prometheus/node-exporter/discourse_backup_monitor.prom").content_string
    assert "discourse_backup_monitor_ok 1" in metrics and "discourse_backup_newest_size_bytes " in metrics


def test_the_monitor_fails_on_a_stale_backup_and_the_hook_reports_it(host):
    result = monitor(host, time.time() + 30 * 3600)
    assert result.rc == 1 and "h old (limit 26 h: a backup every 24 h + 2 h margin)" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # The unit itself, time injected through the manager's environment: it fails, its hook runs.
    host.run_expect([0], f"systemctl set-environment SCIOPS_DISCOURSE_BACKUP_NOW={time.time() + 30 * 3600:.0f}")
    try:
        rc, journal = start(host, "monitor")
    finally:
        host.run_expect([0], "systemctl unset-environment SCIOPS_DISCOURSE_BACKUP_NOW")
    assert rc != 0 and "h old (limit 26 h" in journal, journal
    assert host.run("systemctl is-failed sciops-discourse-backup-monitor.service").stdout.strip() == "failed"
    for _ in range(50):
        hook = host.run("journalctl -u 'sciops-discourse-backup-alert@*' -o cat").stdout
        if "sciops-discourse-backup-monitor.service failed: newest backup" in hook:
            break
        time.sleep(0.2)
    assert "sciops-discourse-backup-monitor.service failed: newest backup" in hook
    host.run_expect([0], "systemctl reset-failed sciops-discourse-backup-monitor.service")


@pytest.mark.parametrize(("name", "body", "message"), [
    ("deepchem-forum-2099-01-01-000000-v20241126124358.tar.gz", gzip.compress(os.urandom(2000), 0),
     "bytes, below the floor of 10000 bytes (truncated or empty?)"),
    ("deepchem-forum-2099-01-01-000000-v20241126124358.tar.gz", gzip.compress(os.urandom(12000), 0),
     "% of the one before"),
    ("deepchem-forum-2099-01-01-000000.tar.gz", None, "has no schema version (-v<14 digits>) in its name"),
])
def test_the_monitor_fails_on_a_truncated_shrunken_or_unversioned_backup(host, s3, name, body, message):
    newest = newest_object(s3)
    data = body or s3.get_object(Bucket=BUCKET, Key=newest["Key"])["Body"].read()
    put = s3.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=data)
    try:
        result = monitor(host)
        assert result.rc == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        s3.delete_object(Bucket=BUCKET, Key=PREFIX + name, VersionId=put["VersionId"])
    assert monitor(host).rc == 0


# --- drill -------------------------------------------------------------------------------------
def databases(host):
    return host.check_output("runuser -u postgres -- psql -XAt -d postgres -c 'SELECT datname FROM pg_database'").split()


def test_the_drill_restores_the_newest_backup_with_the_sources_rows_and_posts(host):
    source = standin(host, "stats")  # the forum as it was at the last backup (nothing written since)
    standin(host, "post", "'written after the backup'")
    rc, journal = start(host, "drill")
    assert rc == 0, journal
    print(journal)
    run = run_playbook("playbooks/forum_restore_drill.yml", "-v")
    assert run.rc == 0, run.output
    assert_no_secret(run.output)
    result = json.loads(host.check_output(f"{SCRIPT} drill").splitlines()[-1])
    assert result["rows"] == {k: source[k] for k in ("users", "topics", "posts")}
    assert result["posts_md5"] == source["posts_md5"]
    assert not [db for db in databases(host) if db.startswith("sciops_drill_")]
    metrics = host.file("/var/lib/prometheus/node-exporter/discourse_backup_drill.prom").content_string
    assert "discourse_backup_drill_ok 1" in metrics


def test_a_corrupt_object_fails_the_drill_in_one_line_and_touches_nothing(host, s3):
    newest = newest_object(s3)
    good = s3.get_object(Bucket=BUCKET, Key=newest["Key"])
    data = bytearray(good["Body"].read())
    data[len(data) // 2] ^= 0xFF
    corrupt = "deepchem-forum-2099-12-31-000000-v" + newest["Key"].rsplit("-v", 1)[1]
    put = s3.put_object(Bucket=BUCKET, Key=PREFIX + corrupt, Body=bytes(data), Metadata=good["Metadata"])
    before_objects = sorted(objects(s3))
    before_dbs = databases(host)
    try:
        run = run_playbook("playbooks/forum_restore_drill.yml", extra_vars={"discourse_backup_drill_backup": corrupt})
        assert run.rc != 0
        errors = [line for line in run.output.splitlines() if line.startswith("[ERROR]")]
        assert len(errors) == 1 and f"{corrupt}: SHA-256" in flat(run.output) and "the object is corrupt" in flat(run.output), run.output
        assert sorted(objects(s3)) == before_objects and databases(host) == before_dbs
        assert host.run(f"ls {LOCAL}/{corrupt}").rc != 0
    finally:
        s3.delete_object(Bucket=BUCKET, Key=PREFIX + corrupt, VersionId=put["VersionId"])


# --- status and restore ------------------------------------------------------------------------
def test_the_status_playbook_shows_the_newest_backup(host, s3):
    newest = newest_object(s3)
    run = run_playbook("playbooks/forum_backup_status.yml", "--check")
    assert run.rc == 0, run.output
    assert f"newest {newest['Key'][len(PREFIX):]}" in flat(run.output) and "monitor ok" in flat(run.output)
    assert "last drill FAILED" in flat(run.output)  # the corrupt object's drill, just before
    assert run.total("changed") == 0


def test_a_restore_needs_the_confirmation_and_refuses_a_newer_schema(host, s3):
    newest = newest_object(s3)["Key"][len(PREFIX):]
    run = run_playbook("playbooks/forum_restore.yml", extra_vars={"discourse_backup_restore_backup": newest})
    assert run.rc != 0 and "discourse_backup_restore_confirm" in run.output
    newer = "deepchem-forum-2099-01-01-000000-v29991231235959.tar.gz"
    run = run_playbook("playbooks/forum_restore.yml", "-e", '{"discourse_backup_restore_confirm": true}',
                       extra_vars={"discourse_backup_restore_backup": newer})
    assert run.rc != 0 and "has schema version 29991231235959, newer than the forum's 20241126124358" in flat(run.output), run.output


def test_a_confirmed_restore_brings_the_forum_back_to_the_backup(host, s3):
    newest = newest_object(s3)["Key"][len(PREFIX):]
    host.run_expect([0], f"rm -f {LOCAL}/{newest}")  # fetched from the bucket
    before = standin(host, "stats")
    run = run_playbook("playbooks/forum_restore.yml", "-e", '{"discourse_backup_restore_confirm": true}',
                       extra_vars={"discourse_backup_restore_backup": newest})
    assert run.rc == 0, run.output
    after = standin(host, "stats")
    assert after["posts"] == before["posts"] - 1  # the post written after the backup is gone
    assert host.file(f"{LOCAL}/{newest}").exists
    assert not host.file("/var/lib/standin-forum/restore_enabled").exists  # disable_restore ran


# --- the discourse way, check mode, secrets ------------------------------------------------------
def test_the_discourse_way_edits_only_the_env_keys_of_app_yml_and_sets_the_site_settings(host):
    before = host.file("/var/discourse/containers/app.yml").content_string
    run = run_playbook(CONVERGE, "-e", '{"discourse_backup_mode": "discourse"}')
    assert run.rc == 0, run.output
    assert_no_secret(run.output)
    after = host.file("/var/discourse/containers/app.yml").content_string
    wanted = ["  DISCOURSE_BACKUP_LOCATION: 's3'", "  DISCOURSE_S3_BACKUP_BUCKET: 'deepchem-forum-backups/molecule'",
              "  DISCOURSE_S3_REGION: 'us-east-1'", "  DISCOURSE_S3_ACCESS_KEY_ID: 'molecule-forum'",
              "  DISCOURSE_S3_SECRET_ACCESS_KEY: 'molecule-forum-secret-never-printed'", f"  DISCOURSE_S3_ENDPOINT: '{ENDPOINT}'"]
    added = [line for line in after.splitlines() if line not in before.splitlines()]
    # The first time all six; after an earlier switch back (which keeps the keys) the two it removed.
    assert added in (wanted, wanted[:2]), added
    env = after.split("\nenv:\n", 1)[1].split("\nvolumes:", 1)[0].splitlines()
    assert sorted(env[env.index("  LETSENCRYPT_ACCOUNT_EMAIL: admin@example.org") + 1:][:6]) == sorted(wanted)  # after the last key
    assert [line for line in before.splitlines() if line not in after.splitlines()] == []
    assert "./launcher rebuild app" in flat(run.output)
    settings = json.loads(host.file("/var/lib/standin-forum/site_settings.json").content_string)
    assert (settings["backup_frequency"], settings["maximum_backups"], settings["s3_disable_cleanup"]) == (1, 7, True)
    assert not host.file("/etc/systemd/system/sciops-discourse-backup-upload.timer").exists
    again = run_playbook(CONVERGE, "-e", '{"discourse_backup_mode": "discourse"}')
    assert again.rc == 0 and again.total("changed") == 0, again.output
    back = run_playbook(CONVERGE)
    assert back.rc == 0, back.output
    assert host.file("/var/discourse/containers/app.yml").content_string.count("DISCOURSE_BACKUP_LOCATION") == 0
    assert host.service("sciops-discourse-backup-upload.timer").is_running


def test_check_mode_changes_nothing_and_verbose_output_has_no_key(host):
    run = run_playbook(CONVERGE, "--check", "--diff", "-v")
    assert run.rc == 0, run.output
    assert run.total("changed") == 0, run.output
    assert_no_secret(run.output)


# --- client-side encryption (last: it leaves an encrypted newest backup) --------------------------
def test_the_host_way_encrypts_with_age_before_the_upload(host, s3):
    host.run_expect([0], "test -f /root/forum-age.key || age-keygen -o /root/forum-age.key")
    public = host.check_output("age-keygen -y /root/forum-age.key")
    settings = json.dumps({"discourse_backup_encryption": "age", "discourse_backup_age_recipients": [public]})
    run = run_playbook(CONVERGE, "-e", settings)
    assert run.rc == 0, run.output
    made = standin(host, "backup")
    rc, journal = start(host, "upload")
    assert rc == 0 and f"{made['name']}.age" in journal, journal
    stored = s3.get_object(Bucket=BUCKET, Key=PREFIX + made["name"] + ".age")["Body"].read()
    assert stored.startswith(b"age-encryption.org/v1")
    host.run_expect([0], f"{SCRIPT} fetch {made['name']}.age")
    plain = host.check_output(f"age -d -i /root/forum-age.key {LOCAL}/{made['name']}.age | sha256sum").split()[0]
    assert plain == host.check_output(f"sha256sum {LOCAL}/{made['name']}").split()[0]
    assert monitor(host).rc == 0  # an encrypted newest backup is fresh and whole too
    back = run_playbook(CONVERGE)
    assert back.rc == 0, back.output
