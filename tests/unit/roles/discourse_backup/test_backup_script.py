"""roles/discourse_backup/files/sciops-discourse-backup.py against a real S3 endpoint (moto
server on 127.0.0.1): the uploader (identical checksum, multipart, a second run uploads nothing,
an object is never overwritten, retention), the freshness monitor (time injected: fresh, stale,
truncated, shrunken, unversioned), the drill's archive checks and the OnFailure hook's webhook."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
import time
import uuid

import boto3
import pytest
from botocore.config import Config

SCHEMA = "20241126124358"


def backup_name(stamp="2026-12-07-033000", site="deepchem-forum", schema=SCHEMA, ext="tar.gz"):
    return f"{site}-{stamp}-v{schema}.{ext}" if schema else f"{site}-{stamp}.{ext}"


def make_backup(path, upload_bytes=0, sql="SELECT 1;\n"):
    """A backup with Discourse's layout: dump.sql.gz and uploads/ (random bytes: incompressible)."""
    with tarfile.open(path, "w:gz") as archive:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
        add("dump.sql.gz", gzip.compress(sql.encode()))
        directory = tarfile.TarInfo("uploads/default")
        directory.type = tarfile.DIRTYPE
        archive.addfile(directory)
        add("uploads/default/original/1X/cafe.png", os.urandom(upload_bytes) if upload_bytes else b"png")
    return path


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(tmp_path, s3_env):
    """A fresh bucket (versioned, like the role makes it), a local backups folder and a config."""
    bucket = "forum-" + uuid.uuid4().hex[:12]
    client = boto3.client("s3", endpoint_url=s3_env, config=Config(s3={"addressing_style": "path"}))
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    local = tmp_path / "backups" / "default"
    local.mkdir(parents=True)
    cfg = {"bucket": bucket, "prefix": "prod", "endpoint_url": s3_env, "path_style": True, "region": "us-east-1",
           "local_dir": str(local), "min_age_seconds": 0, "multipart_chunk_mb": 5, "keep": 0,
           "state_dir": str(tmp_path / "state"), "textfile_dir": str(tmp_path / "textfile"),
           "monitor": {"frequency_hours": 24, "margin_hours": 2, "min_size_bytes": 1000, "min_ratio_to_previous": 0.5},
           "drill": {"psql_command": [str(tmp_path / "psql-called")]}}
    path = tmp_path / "discourse-backup.json"
    path.write_text(json.dumps(cfg))

    class Env:
        pass
    e = Env()
    e.cfg, e.config, e.client, e.bucket, e.local, e.tmp = cfg, str(path), client, bucket, local, tmp_path
    e.prefix = "prod/default/"
    return e


def run(script, env, *args, now=None):
    argv = ["--config", env.config] + (["--now", str(now)] if now is not None else []) + list(args)
    return script.main(argv)


def objects(env):
    listing = env.client.list_objects_v2(Bucket=env.bucket, Prefix=env.prefix).get("Contents", [])
    return {item["Key"][len(env.prefix):]: item for item in listing}


def metrics(env, name):
    text = (env.tmp / "textfile" / f"discourse_backup_{name}.prom").read_text()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if not line.startswith("#")}


def test_upload_multipart_with_identical_checksum_then_nothing_on_a_second_run(script, env, capsys):
    big = make_backup(env.local / backup_name(), upload_bytes=11 * 1024 * 1024)  # three 5 MiB parts
    small = make_backup(env.local / backup_name("2026-12-06-033000"))
    (env.local / "notes.txt").write_text("not a backup")
    assert run(script, env, "upload") == 0
    found = objects(env)
    assert sorted(found) == sorted([big.name, small.name])
    for path in (big, small):
        body = env.client.get_object(Bucket=env.bucket, Key=env.prefix + path.name)
        data = body["Body"].read()
        assert sha256(data) == sha256(path.read_bytes())
        assert body["Metadata"]["sha256"] == sha256(path.read_bytes())
    assert found[big.name]["ETag"].strip('"').endswith("-3")  # multipart, streamed in parts
    out = capsys.readouterr().out
    assert out.count("uploaded s3://") == 2
    assert metrics(env, "upload")["discourse_backup_upload_objects"] == 2

    versions_before = env.client.list_object_versions(Bucket=env.bucket)["Versions"]
    assert run(script, env, "upload") == 0
    assert "nothing to upload" in capsys.readouterr().out
    assert env.client.list_object_versions(Bucket=env.bucket)["Versions"] == versions_before


def test_an_existing_object_is_never_overwritten(script, env, capsys):
    path = make_backup(env.local / backup_name())
    env.client.put_object(Bucket=env.bucket, Key=env.prefix + path.name, Body=b"someone else's object")
    assert run(script, env, "upload") == 0
    assert env.client.get_object(Bucket=env.bucket, Key=env.prefix + path.name)["Body"].read() == b"someone else's object"
    assert len(env.client.list_object_versions(Bucket=env.bucket)["Versions"]) == 1
    assert "uploaded" not in capsys.readouterr().out.replace("nothing to upload", "")


def test_a_backup_still_being_written_waits_for_the_next_run(script, env, capsys):
    make_backup(env.local / backup_name())
    env.cfg["min_age_seconds"] = 300
    with open(env.config, "w") as handle:
        json.dump(env.cfg, handle)
    assert run(script, env, "upload") == 0
    assert objects(env) == {}
    assert "left for the next run" in capsys.readouterr().out


def test_retention_keeps_the_newest(script, env, capsys):
    for day in (3, 4, 5, 6):
        make_backup(env.local / backup_name(f"2026-12-0{day}-033000"))
        assert run(script, env, "upload") == 0
    env.cfg["keep"] = 2
    with open(env.config, "w") as handle:
        json.dump(env.cfg, handle)
    (env.local / backup_name("2026-12-03-033000")).unlink()
    (env.local / backup_name("2026-12-04-033000")).unlink()
    assert run(script, env, "upload") == 0
    assert sorted(objects(env)) == [backup_name("2026-12-05-033000"), backup_name("2026-12-06-033000")]
    assert capsys.readouterr().out.count("keeping the newest 2") == 2


def put(env, name, size):
    env.client.put_object(Bucket=env.bucket, Key=env.prefix + name, Body=gzip.compress(os.urandom(size), compresslevel=0))
    return objects(env)[name]["LastModified"].timestamp()


def test_monitor_passes_on_a_fresh_backup_and_writes_its_metrics(script, env, capsys):
    put(env, backup_name("2026-12-06-033000"), 5000)
    modified = put(env, backup_name("2026-12-07-033000"), 5000)
    assert run(script, env, "monitor", now=modified + 3600) == 0
    assert "1.0 h old" in capsys.readouterr().out
    figures = metrics(env, "monitor")
    assert figures["discourse_backup_monitor_ok"] == 1 and figures["discourse_backup_objects"] == 2
    assert figures["discourse_backup_newest_age_seconds"] == pytest.approx(3600, abs=1)
    assert figures["discourse_backup_monitor_last_success_timestamp_seconds"] == pytest.approx(modified + 3600)


def failure(script, env, capsys, now):
    assert run(script, env, "monitor", now=now) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_monitor_fails_on_a_stale_backup_and_keeps_the_last_success(script, env, capsys):
    modified = put(env, backup_name(), 5000)
    assert run(script, env, "monitor", now=modified + 60) == 0
    message = failure(script, env, capsys, modified + 27 * 3600)
    assert message == (f"monitor failed: newest backup s3://{env.bucket}/prod/default/{backup_name()} is 27.0 h old"
                       " (limit 26 h: a backup every 24 h + 2 h margin)")
    figures = metrics(env, "monitor")
    assert figures["discourse_backup_monitor_ok"] == 0
    assert figures["discourse_backup_monitor_last_success_timestamp_seconds"] == pytest.approx(modified + 60)
    state = json.loads((env.tmp / "state" / "monitor.json").read_text())
    assert state["ok"] is False and "27.0 h old" in state["message"]


def test_monitor_fails_on_a_truncated_backup(script, env, capsys):
    modified = put(env, backup_name(), 5000)
    data = env.client.get_object(Bucket=env.bucket, Key=env.prefix + backup_name())["Body"].read()
    env.client.put_object(Bucket=env.bucket, Key=env.prefix + backup_name("2026-12-08-033000"), Body=data[:500])
    message = failure(script, env, capsys, modified + 60)
    assert "is 500 bytes, below the floor of 1000 bytes (truncated or empty?)" in message
    assert "10% of the one before" in message


def test_monitor_fails_on_a_shrunken_backup(script, env, capsys):
    put(env, backup_name("2026-12-06-033000"), 20000)
    modified = put(env, backup_name("2026-12-07-033000"), 5000)
    message = failure(script, env, capsys, modified + 60)
    assert f"of the one before ({backup_name('2026-12-06-033000')}, " in message
    assert "the limit is 50%" in message and "below the floor" not in message


def test_monitor_fails_on_a_name_without_schema_version_and_on_no_gzip(script, env, capsys):
    modified = put(env, backup_name(schema=""), 5000)
    assert "has no schema version (-v<14 digits>) in its name" in failure(script, env, capsys, modified + 60)
    env.client.put_object(Bucket=env.bucket, Key=env.prefix + backup_name("2026-12-08-033000"), Body=b"x" * 5000)
    assert "is not a gzip stream" in failure(script, env, capsys, modified + 60)


def test_monitor_fails_on_an_empty_bucket(script, env, capsys):
    assert failure(script, env, capsys, time.time()) == f"monitor failed: no backup in s3://{env.bucket}/prod/default/"


def test_now_comes_from_the_environment_too(script, env, capsys, monkeypatch):
    modified = put(env, backup_name(), 5000)
    monkeypatch.setenv("SCIOPS_DISCOURSE_BACKUP_NOW", str(modified + 30 * 3600))
    assert run(script, env, "monitor") == 1
    assert "30.0 h old" in capsys.readouterr().err


def test_drill_refuses_a_corrupt_object_before_touching_a_database(script, env, capsys):
    path = make_backup(env.local / backup_name(), upload_bytes=200000)
    assert run(script, env, "upload") == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    # An object replaced behind the uploader's back (same name, its recorded SHA-256 kept).
    head = env.client.head_object(Bucket=env.bucket, Key=env.prefix + path.name)
    env.client.put_object(Bucket=env.bucket, Key=env.prefix + path.name, Body=bytes(data), Metadata=head["Metadata"])
    capsys.readouterr()
    assert run(script, env, "drill") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the object is corrupt" in err[0], err
    assert not (env.tmp / "psql-called").exists()
    assert metrics(env, "drill")["discourse_backup_drill_ok"] == 0
    # Without the recorded checksum, the gzip/tar check finds it.
    env.client.put_object(Bucket=env.bucket, Key=env.prefix + path.name, Body=bytes(data))
    assert run(script, env, "drill", path.name) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the archive is corrupt" in err[0], err
    assert list((env.tmp).glob("discourse-drill.*")) == []


def test_drill_refuses_an_archive_without_dump_or_uploads(script, env, capsys):
    path = env.local / backup_name()
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("dump.sql.gz")
        payload = gzip.compress(b"SELECT 1;")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    assert run(script, env, "upload") == 0
    assert run(script, env, "drill") == 1
    assert capsys.readouterr().err.strip().endswith("the archive has no uploads/ (not a Discourse backup)")
    assert run(script, env, "drill", "missing-2026-12-07-033000-v20241126124358.tar.gz") == 1
    assert "no backup named missing-" in capsys.readouterr().err


def test_fetch_downloads_a_named_backup_verified(script, env, capsys, tmp_path):
    path = make_backup(env.local / backup_name(), upload_bytes=1000)
    assert run(script, env, "upload") == 0
    original = path.read_bytes()
    path.unlink()
    assert run(script, env, "fetch", path.name) == 0
    assert path.read_bytes() == original
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"downloaded": True, "path": str(path)}


def test_alert_posts_the_failed_units_last_message_to_the_webhook(script, env, capsys):
    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env.cfg["webhook_url"] = f"http://127.0.0.1:{server.server_port}/hook"
        with open(env.config, "w") as handle:
            json.dump(env.cfg, handle)
        assert run(script, env, "monitor") == 1
        assert run(script, env, "alert", "sciops-discourse-backup-monitor.service") == 0
    finally:
        server.shutdown()
    (hook,) = received
    assert hook["unit"] == "sciops-discourse-backup-monitor.service"
    assert hook["text"] == f"sciops-discourse-backup-monitor.service failed: no backup in s3://{env.bucket}/prod/default/"


def test_an_unreachable_endpoint_is_one_line(script, env, capsys):
    env.cfg["endpoint_url"] = "http://127.0.0.1:9"
    with open(env.config, "w") as handle:
        json.dump(env.cfg, handle)
    assert run(script, env, "monitor") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("monitor failed: Could not connect to the endpoint URL"), err


def test_an_unreachable_webhook_is_one_line_and_the_hook_fails(script, env, capsys):
    env.cfg["webhook_url"] = "http://127.0.0.1:9/hook"
    with open(env.config, "w") as handle:
        json.dump(env.cfg, handle)
    assert run(script, env, "alert", "sciops-discourse-backup-drill.service") == 1
    captured = capsys.readouterr()
    assert "sciops-discourse-backup-drill.service failed" in captured.out
    assert captured.err.strip().startswith("alert failed: the webhook could not be reached") and len(captured.err.strip().splitlines()) == 1


def test_the_tls_only_policy_refuses_plain_http_and_a_private_ca_endpoint_works(script, env, capsys, moto_tls):
    """moto enforces the bucket policy's deny on object requests (it does not evaluate the
    aws:SecureTransport condition: it refuses them over HTTPS too, so the TLS part has no policy)."""
    deny = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyPlainHTTP", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{env.bucket}", f"arn:aws:s3:::{env.bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})
    make_backup(env.local / backup_name())
    env.client.put_bucket_policy(Bucket=env.bucket, Policy=deny)
    assert run(script, env, "upload") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(403)" in err[0] and "Forbidden" in err[0], err

    endpoint, ca = moto_tls
    tls = boto3.client("s3", endpoint_url=endpoint, verify=ca, config=Config(s3={"addressing_style": "path"}))
    tls.create_bucket(Bucket=env.bucket)
    env.cfg.update(endpoint_url=endpoint, ca_bundle=ca)
    with open(env.config, "w") as handle:
        json.dump(env.cfg, handle)
    assert run(script, env, "upload") == 0
    assert tls.head_object(Bucket=env.bucket, Key=env.prefix + backup_name())["ContentLength"] > 0
    env.cfg["ca_bundle"] = ""  # the system's CAs do not know the private one
    with open(env.config, "w") as handle:
        json.dump(env.cfg, handle)
    capsys.readouterr()
    assert run(script, env, "monitor") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SSL" in err[0], err
