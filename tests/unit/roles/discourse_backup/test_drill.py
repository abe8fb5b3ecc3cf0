"""The restore drill end to end: the stand-in forum (tests/discourse/standin_forum.py, a real
PostgreSQL database with forum-shaped tables) makes a backup with Discourse's layout, the uploader
puts it in the bucket (moto), and the drill restores it into a throwaway database whose row counts
and posts checksum equal the source's at backup time; the database is dropped after."""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[4]
STANDIN = ROOT / "tests" / "discourse" / "standin_forum.py"
PSQL = "runuser -u postgres -- psql"


@pytest.fixture
def forum(tmp_path, monkeypatch, postgres_server, s3_env):
    for key in ("PGHOST", "PGPORT", "PGUSER"):
        monkeypatch.setenv(key, postgres_server[key])
    db = "forum_" + uuid.uuid4().hex[:8]
    local = tmp_path / "backups" / "default"
    monkeypatch.setenv("SCIOPS_STANDIN_STATE", str(tmp_path / "standin"))
    monkeypatch.setenv("SCIOPS_STANDIN_BACKUPS", str(local))
    monkeypatch.setenv("SCIOPS_STANDIN_UPLOADS", str(tmp_path / "uploads"))

    def standin(*args):
        proc = subprocess.run([sys.executable, str(STANDIN), "--psql", PSQL, "--db", db, *args], capture_output=True,
                              text=True, check=False, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None

    bucket = "forum-" + uuid.uuid4().hex[:12]
    boto3.client("s3", endpoint_url=s3_env, config=Config(s3={"addressing_style": "path"})).create_bucket(Bucket=bucket)
    cfg = {"bucket": bucket, "prefix": "", "endpoint_url": s3_env, "path_style": True, "local_dir": str(local),
           "min_age_seconds": 0, "state_dir": str(tmp_path / "state"), "textfile_dir": str(tmp_path / "textfile"),
           "drill": {"psql_command": PSQL.split(), "extensions": ["pg_trgm"], "newest_post_max_age_days": 30}}
    config = tmp_path / "discourse-backup.json"
    config.write_text(json.dumps(cfg))
    return standin, str(config), db


def databases():
    proc = subprocess.run(PSQL.split() + ["-XAt", "-d", "postgres", "-c", "SELECT datname FROM pg_database"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.split()


def test_the_drill_restores_the_newest_backup_with_the_sources_rows(forum, script, capsys, tmp_path):
    standin, config, db = forum
    standin("init", "--users", "12", "--topics", "4", "--posts-per-topic", "3", "--uploads", "2", "--upload-bytes", "5000")
    first = standin("backup", "--stamp", "2026-12-06T03:30:00+00:00")
    standin("post", "a newer post")
    second = standin("backup")
    standin("post", "after the backup")  # not in any backup
    assert script.main(["--config", config, "upload"]) == 0
    capsys.readouterr()

    assert script.main(["--config", config, "drill"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["backup"] == second["name"]
    assert result["rows"] == {"users": 12, "topics": 4, "posts": 13}
    assert (result["rows"]["posts"], result["posts_md5"]) == (second["posts"], second["posts_md5"])
    assert not [name for name in databases() if name.startswith("sciops_drill_")]
    metrics = (tmp_path / "textfile" / "discourse_backup_drill.prom").read_text()
    assert "discourse_backup_drill_ok 1" in metrics and 'discourse_backup_drill_rows{table="posts"} 13' in metrics

    # A named backup, and the freshness of its newest post against the backup's time.
    assert script.main(["--config", config, "drill", first["name"]]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["posts_md5"] == first["posts_md5"]
    assert script.main(["--config", config, "--now", str(time.time()), "drill", first["name"]]) == 0


def test_an_empty_forum_or_a_dump_that_does_not_load_fails_in_one_line_and_leaves_no_database(forum, script, capsys, tmp_path):
    standin, config, db = forum
    standin("init", "--users", "3", "--topics", "1", "--posts-per-topic", "1", "--uploads", "1", "--upload-bytes", "100")
    standin("backup")
    cfg = json.loads(open(config).read())
    cfg["drill"]["extensions"] = []
    cfg["drill"]["psql_command"] = PSQL.split()
    with open(config, "w") as handle:
        json.dump(cfg, handle)
    # A forum without posts: the dump loads, the sanity query refuses it.
    subprocess.run(PSQL.split() + ["-X", "-q", "-d", db, "-c", "DELETE FROM posts"], check=True)
    standin("backup", "--stamp", "2030-01-01T00:00:00+00:00")
    assert script.main(["--config", config, "upload"]) == 0
    capsys.readouterr()
    assert script.main(["--config", config, "drill"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith("the dump loads but no rows in posts"), err
    assert not [name for name in databases() if name.startswith("sciops_drill_")]
    # A dump PostgreSQL refuses.
    name = "deepchem-forum-2030-01-02-000000-v20241126124358.tar.gz"
    with tarfile.open(tmp_path / "backups" / "default" / name, "w:gz") as archive:
        for member, data in (("dump.sql.gz", gzip.compress(b"CREATE TABLE users (id int);\nCREATE TABLE broken (;\n")),
                             ("uploads/default/x.png", b"png")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    assert script.main(["--config", config, "upload"]) == 0
    capsys.readouterr()
    assert script.main(["--config", config, "drill", name]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{name}: the dump does not load into PostgreSQL: " in err[0] and "syntax error" in err[0], err
    assert not [name for name in databases() if name.startswith("sciops_drill_")]
