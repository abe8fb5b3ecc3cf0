#!/usr/bin/python3
"""The forum's backups in S3, installed by the sciops.platform discourse_backup role.

Commands (each one line on failure, exit status 1, so its systemd unit shows as failed and the
OnFailure= hook runs; the figures go to node-exporter's textfile directory):

  upload   upload the local backups (Discourse's backups/default/ folder) that the bucket does not
           hold yet, to <bucket>[/prefix]/default/<name>: boto3's managed transfer (multipart,
           streamed from disk), the S3 ETag checked against the file's own (MD5 per part) after
           the upload and the SHA-256 kept in the object's metadata; an object that exists is
           never overwritten. Optional client-side encryption (age) before the upload. With
           keep > 0, the oldest backups beyond keep are deleted from the bucket afterwards.
  monitor  list the bucket and fail when the newest backup is older than the backup frequency
           plus a margin, smaller than a floor, much smaller than the one before it, not a gzip
           stream, or has no schema version (-v<14 digits>) in its name.
  drill    download the newest (or a named) backup, check it (SHA-256, gzip and tar integrity,
           dump.sql.gz and uploads/ present), load its dump into a throwaway PostgreSQL database,
           run sanity queries (users, topics, posts above zero, the newest post recent enough)
           and drop the database. Prints the result as JSON.
  fetch    download a named backup into the local backups folder (for Discourse's restore).
  status   print the newest backup's figures as JSON (read-only).
  alert    the OnFailure= hook: log the failed unit's last message and post it to the webhook.

The time the checks compare with is now, or --now / SCIOPS_DISCOURSE_BACKUP_NOW (epoch seconds
or ISO 8601) for tests. Runs with Debian's python3-boto3 (1.26 on Debian 12) or newer boto3.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zlib

NAME = re.compile(
    r"^(?P<site>.+?)-(?P<stamp>\d{4}-\d{2}-\d{2}-\d{6})-v(?P<schema>\d{14})"
    r"\.(?P<ext>tar\.gz|sql\.gz)(?P<enc>\.age)?$")
BACKUP_SUFFIXES = (".tar.gz", ".sql.gz", ".tar.gz.age", ".sql.gz.age")
SCHEMA = re.compile(r"-v(\d{14})\.")
METRIC_PREFIX = "discourse_backup"
READ_SIZE = 1024 * 1024


class Failure(Exception):
    """One clear line for the journal; the command exits 1."""


def log(msg):
    print(msg, flush=True)


# --- configuration and time ----------------------------------------------------------------
def load_config(path):
    with open(path, encoding="utf-8") as handle:
        cfg = json.load(handle)
    cfg.setdefault("prefix", "")
    cfg.setdefault("site", "default")
    cfg.setdefault("state_dir", "/var/lib/sciops-discourse-backup")
    cfg.setdefault("textfile_dir", "")
    return cfg


def parse_now(value):
    if value in (None, ""):
        return time.time()
    try:
        return float(value)
    except ValueError:
        pass
    stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def base_key(cfg):
    """<prefix>/<site>/ (Discourse's own layout: <bucket>[/prefix]/default/<name>)."""
    prefix = cfg["prefix"].strip("/")
    return (prefix + "/" if prefix else "") + cfg["site"] + "/"


def name_time(name):
    match = NAME.match(name)
    if not match:
        return None
    stamp = dt.datetime.strptime(match["stamp"], "%Y-%m-%d-%H%M%S").replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


# --- S3 ------------------------------------------------------------------------------------
def s3_client(cfg):
    import boto3  # noqa: PLC0415  (only the commands that talk to S3 need it)
    from botocore.config import Config  # noqa: PLC0415

    options = {"retries": {"max_attempts": 5, "mode": "standard"}}
    if cfg.get("path_style"):
        options["s3"] = {"addressing_style": "path"}
    kwargs = {"config": Config(**options)}
    if cfg.get("region"):
        kwargs["region_name"] = cfg["region"]
    if cfg.get("endpoint_url"):
        kwargs["endpoint_url"] = cfg["endpoint_url"]
    if cfg.get("ca_bundle"):
        kwargs["verify"] = cfg["ca_bundle"]  # an endpoint whose certificate a private CA signed
    return boto3.client("s3", **kwargs)


def list_backups(s3, cfg):
    """The backups under the site's prefix, oldest first (by the time S3 received them)."""
    found = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=cfg["bucket"], Prefix=base_key(cfg)):
        for item in page.get("Contents", []):
            name = item["Key"][len(base_key(cfg)):]
            if "/" in name or not name.endswith(BACKUP_SUFFIXES):
                continue
            found.append({"key": item["Key"], "name": name, "size": item["Size"],
                          "modified": item["LastModified"].timestamp(), "etag": item["ETag"].strip('"')})
    found.sort(key=lambda item: (item["modified"], item["name"]))
    return found


def object_exists(s3, cfg, key):
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        s3.head_object(Bucket=cfg["bucket"], Key=key)
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def transfer_config(cfg):
    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    chunk = int(cfg.get("multipart_chunk_mb", 16)) * 1024 * 1024
    return TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4,
                          use_threads=True)


def file_digests(path, cfg):
    """One pass over the file: its SHA-256 and the ETag S3 gives it when boto3's managed transfer
    uploads it with transfer_config (MD5 for one part; MD5 of the parts' MD5s, -N, for more)."""
    from s3transfer.utils import ChunksizeAdjuster  # noqa: PLC0415

    size = os.path.getsize(path)
    config = transfer_config(cfg)
    sha = hashlib.sha256()
    if size < config.multipart_threshold:
        md5 = hashlib.md5()  # noqa: S324  (S3's ETag, not a security check)
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(READ_SIZE), b""):
                sha.update(block)
                md5.update(block)
        return sha.hexdigest(), md5.hexdigest(), size
    part_size = ChunksizeAdjuster().adjust_chunksize(config.multipart_chunksize, size)
    parts = []
    with open(path, "rb") as handle:
        while True:
            md5 = hashlib.md5()  # noqa: S324
            read = 0
            while read < part_size:
                block = handle.read(min(READ_SIZE, part_size - read))
                if not block:
                    break
                sha.update(block)
                md5.update(block)
                read += len(block)
            if read == 0:
                break
            parts.append(md5.digest())
            if read < part_size:
                break
    etag = hashlib.md5(b"".join(parts)).hexdigest() + "-%d" % len(parts)  # noqa: S324
    return sha.hexdigest(), etag, size


# --- metrics and state -----------------------------------------------------------------------
def read_metrics(cfg, name):
    path = os.path.join(cfg["textfile_dir"], f"{METRIC_PREFIX}_{name}.prom") if cfg["textfile_dir"] else ""
    values = {}
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line and not line.startswith("#"):
                    key, _, value = line.rpartition(" ")
                    values[key] = value.strip()
    return values


def write_metrics(cfg, name, metrics, keep_last_success=True):
    """node-exporter textfile metrics, written atomically. last_success_timestamp_seconds is
    carried over from the previous file when this run failed."""
    if not cfg["textfile_dir"]:
        return
    key = f"{METRIC_PREFIX}_{name}_last_success_timestamp_seconds"
    if keep_last_success and key not in metrics:
        old = read_metrics(cfg, name).get(key)
        if old is not None:
            metrics[key] = float(old)
    lines = []
    for metric, value in sorted(metrics.items()):
        base = metric.split("{", 1)[0]
        lines.append(f"# TYPE {base} gauge")
        lines.append(f"{metric} {value:.3f}" if isinstance(value, float) and not value.is_integer() else
                     f"{metric} {int(value)}")
    os.makedirs(cfg["textfile_dir"], exist_ok=True)
    path = os.path.join(cfg["textfile_dir"], f"{METRIC_PREFIX}_{name}.prom")
    fd, tmp = tempfile.mkstemp(dir=cfg["textfile_dir"], prefix=".discourse_backup.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def write_state(cfg, command, ok, message):
    try:
        os.makedirs(cfg["state_dir"], exist_ok=True)
        with open(os.path.join(cfg["state_dir"], f"{command}.json"), "w", encoding="utf-8") as handle:
            json.dump({"ok": ok, "message": message, "time": time.time()}, handle)
    except OSError as err:
        log(f"warning: cannot record the outcome in {cfg['state_dir']}: {err}")


# --- upload ----------------------------------------------------------------------------------
def encrypt_age(cfg, path, workdir):
    recipients = cfg.get("encryption", {}).get("recipients") or []
    if not recipients:
        raise Failure("encryption is age but no recipients are configured (discourse_backup_age_recipients)")
    out = os.path.join(workdir, os.path.basename(path) + ".age")
    argv = ["age", "--encrypt", "--output", out]
    for recipient in recipients:
        argv += ["--recipient", recipient]
    proc = subprocess.run(argv + [path], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Failure(f"age could not encrypt {os.path.basename(path)}: {proc.stderr.strip()}")
    return out


def local_backups(cfg, now):
    directory = cfg["local_dir"]
    if not os.path.isdir(directory):
        raise Failure(f"the local backups folder {directory} does not exist")
    min_age = float(cfg.get("min_age_seconds", 300))
    found = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if not name.endswith((".tar.gz", ".sql.gz")) or not os.path.isfile(path):
            continue
        if now - os.path.getmtime(path) < min_age:
            log(f"{name}: written less than {min_age:.0f} s ago, left for the next run")
            continue
        found.append(path)
    return found


def upload(cfg, now):
    s3 = s3_client(cfg)
    encryption = cfg.get("encryption", {}).get("type", "none")
    in_bucket = {item["name"] for item in list_backups(s3, cfg)}
    uploaded = 0
    uploaded_bytes = 0
    for path in local_backups(cfg, now):
        name = os.path.basename(path) + (".age" if encryption == "age" else "")
        key = base_key(cfg) + name
        if name in in_bucket or object_exists(s3, cfg, key):
            continue
        with tempfile.TemporaryDirectory(prefix="discourse-backup.", dir=cfg.get("work_dir") or None) as workdir:
            source = encrypt_age(cfg, path, workdir) if encryption == "age" else path
            sha256, etag, size = file_digests(source, cfg)
            started = time.monotonic()
            s3.upload_file(source, cfg["bucket"], key, Config=transfer_config(cfg),
                           ExtraArgs={"Metadata": {"sha256": sha256}})
            head = s3.head_object(Bucket=cfg["bucket"], Key=key)
            got = head["ETag"].strip('"')
            if got != etag or head["ContentLength"] != size:
                s3.delete_object(Bucket=cfg["bucket"], Key=key, **({"VersionId": head["VersionId"]}
                                                                  if head.get("VersionId") else {}))
                raise Failure(f"{name}: the bucket holds another content than the file (ETag {got}, expected {etag};"
                              f" {head['ContentLength']} bytes, expected {size}): the object was removed, the next run"
                              " uploads it again")
            seconds = time.monotonic() - started
            log(f"uploaded s3://{cfg['bucket']}/{key} ({size} bytes in {seconds:.1f} s, ETag {etag}, sha256 {sha256})")
            uploaded += 1
            uploaded_bytes += size
    pruned = prune(s3, cfg)
    if uploaded == 0 and not pruned:
        log("nothing to upload: the bucket holds every local backup")
    return {"uploaded": uploaded, "uploaded_bytes": uploaded_bytes, "pruned": pruned}


def prune(s3, cfg):
    keep = int(cfg.get("keep", 0))
    if keep <= 0:
        return []
    backups = list_backups(s3, cfg)
    gone = []
    for item in backups[:-keep]:
        s3.delete_object(Bucket=cfg["bucket"], Key=item["key"])
        log(f"removed s3://{cfg['bucket']}/{item['key']} (keeping the newest {keep})")
        gone.append(item["name"])
    return gone


# --- monitor ---------------------------------------------------------------------------------
def gzip_magic(s3, cfg, item):
    if item["name"].endswith(".age"):
        return True
    head = s3.get_object(Bucket=cfg["bucket"], Key=item["key"], Range="bytes=0-1")["Body"].read()
    return head == b"\x1f\x8b"


def monitor(cfg, now):
    mon = cfg.get("monitor", {})
    frequency_h = float(mon.get("frequency_hours", 24))
    margin_h = float(mon.get("margin_hours", 2))
    floor = int(mon.get("min_size_bytes", 0))
    ratio = float(mon.get("min_ratio_to_previous", 0.5))
    s3 = s3_client(cfg)
    backups = list_backups(s3, cfg)
    where = f"s3://{cfg['bucket']}/{base_key(cfg)}"
    metrics = {f"{METRIC_PREFIX}_objects": len(backups), f"{METRIC_PREFIX}_monitor_ok": 0,
               f"{METRIC_PREFIX}_monitor_last_run_timestamp_seconds": now}
    if not backups:
        write_metrics(cfg, "monitor", metrics)
        raise Failure(f"no backup in {where}")
    newest = backups[-1]
    age = now - newest["modified"]
    metrics.update({f"{METRIC_PREFIX}_newest_age_seconds": age, f"{METRIC_PREFIX}_newest_size_bytes": newest["size"],
                    f"{METRIC_PREFIX}_newest_timestamp_seconds": newest["modified"]})
    problems = []
    limit_h = frequency_h + margin_h
    if age > limit_h * 3600:
        problems.append(f"is {age / 3600:.1f} h old (limit {limit_h:g} h: a backup every {frequency_h:g} h"
                        f" + {margin_h:g} h margin)")
    if newest["size"] < floor:
        problems.append(f"is {newest['size']} bytes, below the floor of {floor} bytes (truncated or empty?)")
    if len(backups) > 1 and newest["size"] < ratio * backups[-2]["size"]:
        previous = backups[-2]
        problems.append(f"is {newest['size']} bytes, {100.0 * newest['size'] / previous['size']:.0f}% of the one before"
                        f" ({previous['name']}, {previous['size']} bytes; the limit is {100 * ratio:g}%)")
    if not SCHEMA.search(newest["name"]):
        problems.append("has no schema version (-v<14 digits>) in its name: not a Discourse backup")
    elif newest["size"] >= 2 and not gzip_magic(s3, cfg, newest):
        problems.append("is not a gzip stream (it does not start with 1f 8b)")
    if problems:
        write_metrics(cfg, "monitor", metrics)
        raise Failure(f"newest backup {where}{newest['name']} " + "; ".join(problems))
    metrics[f"{METRIC_PREFIX}_monitor_ok"] = 1
    metrics[f"{METRIC_PREFIX}_monitor_last_success_timestamp_seconds"] = now
    write_metrics(cfg, "monitor", metrics)
    log(f"newest backup {where}{newest['name']}: {age / 3600:.1f} h old, {newest['size']} bytes ({len(backups)} in the bucket)")
    return {"newest": newest["name"], "age_seconds": age, "size": newest["size"], "objects": len(backups)}


def status(cfg, now):
    backups = list_backups(s3_client(cfg), cfg)
    newest = backups[-1] if backups else None
    return {
        "bucket": cfg["bucket"], "prefix": base_key(cfg), "objects": len(backups),
        "newest": newest and newest["name"], "newest_size": newest and newest["size"],
        "newest_age_hours": newest and round((now - newest["modified"]) / 3600, 2),
        "monitor": read_metrics(cfg, "monitor"), "drill": read_metrics(cfg, "drill"),
    }


# --- drill and fetch -------------------------------------------------------------------------
def pick(backups, name, where):
    if not backups:
        raise Failure(f"no backup in {where}")
    if not name:
        return backups[-1]
    for item in backups:
        if item["name"] == name:
            return item
    raise Failure(f"no backup named {name} in {where} (newest: {backups[-1]['name']})")


def download(s3, cfg, item, dest):
    s3.download_file(cfg["bucket"], item["key"], dest, Config=transfer_config(cfg))
    head = s3.head_object(Bucket=cfg["bucket"], Key=item["key"])
    want = head.get("Metadata", {}).get("sha256")
    if want:
        sha = hashlib.sha256()
        with open(dest, "rb") as handle:
            for block in iter(lambda: handle.read(READ_SIZE), b""):
                sha.update(block)
        if sha.hexdigest() != want:
            raise Failure(f"{item['name']}: SHA-256 {sha.hexdigest()} of the download differs from the"
                          f" {want} recorded at upload: the object is corrupt")


def check_archive(path, name, workdir):
    """gzip and tar read to the end (CRC and length checked); dump.sql.gz and uploads/ present.
    Returns the path of the extracted dump."""
    dump = os.path.join(workdir, "dump.sql.gz")
    try:
        if name.endswith(".sql.gz"):
            with gzip.open(path, "rb") as src:
                with open(dump, "wb") as out:
                    shutil.copyfileobj(src, out, READ_SIZE)
            return dump
        members = set()
        with tarfile.open(path, "r:gz") as archive:
            for member in archive:
                members.add(member.name.lstrip("./"))
                if member.name.lstrip("./") == "dump.sql.gz" and member.isfile():
                    with archive.extractfile(member) as src, open(dump, "wb") as out:
                        shutil.copyfileobj(src, out, READ_SIZE)
                elif member.isfile():
                    with archive.extractfile(member) as src:
                        for _ in iter(lambda src=src: src.read(READ_SIZE), b""):
                            pass
            # tarfile stops at the end-of-archive blocks: read the gzip stream to its end, where
            # its CRC and length are checked.
            for _ in iter(lambda: archive.fileobj.read(READ_SIZE), b""):
                pass
        with gzip.open(dump, "rb") as inner:
            for _ in iter(lambda: inner.read(READ_SIZE), b""):
                pass
    except (OSError, EOFError, tarfile.TarError, zlib.error) as err:
        raise Failure(f"{name}: the archive is corrupt ({type(err).__name__}: {err})") from None
    missing = [want for want in ("dump.sql.gz", "uploads/")
               if not (want in members or any(m.startswith(want) for m in members))]
    if missing:
        raise Failure(f"{name}: the archive has no {' and no '.join(missing)} (not a Discourse backup)")
    return dump


def psql_error(stderr):
    """psql's error line (ERROR: or FATAL:, without the LINE and caret lines after it)."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    return next((line for line in lines if "ERROR:" in line or "FATAL:" in line), lines[-1] if lines else "failed")


def psql(cfg, database, sql, *extra, stdin=None):
    argv = list(cfg.get("drill", {}).get("psql_command") or ["psql"])
    argv += ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", database, *extra]
    if sql is not None:
        argv += ["-c", sql]
    proc = subprocess.run(argv, stdin=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise Failure(f"psql on {database}: {psql_error(proc.stderr)}")
    return proc.stdout.strip()


def load_dump(cfg, database, dump, name, workdir):
    """Stream dump.sql.gz into psql. Discourse dumps the public schema (pg_dump --schema=public),
    so the dump creates it: the throwaway database already has it (with the extensions the
    dump's objects use), and that one statement is left out."""
    argv = list(cfg.get("drill", {}).get("psql_command") or ["psql"])
    argv += ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]
    errors = os.path.join(workdir, "psql.err")
    with open(errors, "wb") as err, subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                     stderr=err) as proc:
        try:
            with gzip.open(dump, "rb") as src:
                for line in src:
                    if line.rstrip(b"\r\n") != b"CREATE SCHEMA public;":
                        proc.stdin.write(line)
        except BrokenPipeError:
            pass
        except (OSError, EOFError, zlib.error) as exc:
            proc.kill()
            raise Failure(f"{name}: dump.sql.gz is corrupt ({exc})") from None
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
    if proc.returncode != 0:
        with open(errors, encoding="utf-8", errors="replace") as err:
            message = psql_error(err.read())
        raise Failure(f"{name}: the dump does not load into PostgreSQL: {message}")


def drill(cfg, now, name=None):
    conf = cfg.get("drill", {})
    s3 = s3_client(cfg)
    where = f"s3://{cfg['bucket']}/{base_key(cfg)}"
    started = time.monotonic()
    metrics = {f"{METRIC_PREFIX}_drill_ok": 0, f"{METRIC_PREFIX}_drill_last_run_timestamp_seconds": now}
    database = None
    try:
        item = pick(list_backups(s3, cfg), name, where)
        if item["name"].endswith(".age"):
            raise Failure(f"{item['name']}: encrypted backups are drilled only with the identity, which this node"
                          " does not hold (drill them where the age identity is)")
        with tempfile.TemporaryDirectory(prefix="discourse-drill.", dir=conf.get("work_dir") or None) as workdir:
            os.chmod(workdir, 0o755)
            local = os.path.join(workdir, item["name"])
            download(s3, cfg, item, local)
            dump = check_archive(local, item["name"], workdir)
            os.remove(local)
            os.chmod(dump, 0o644)
            database = f"sciops_drill_{int(now)}_{os.getpid()}"
            psql(cfg, conf.get("maintenance_db", "postgres"), f'CREATE DATABASE "{database}"')
            for extension in conf.get("extensions", []):
                psql(cfg, database, f'CREATE EXTENSION IF NOT EXISTS "{extension}"')
            load_dump(cfg, database, dump, item["name"], workdir)
            counts = {table: int(psql(cfg, database, f"SELECT count(*) FROM {table}"))
                      for table in ("users", "topics", "posts")}
            newest_post = float(psql(cfg, database, "SELECT coalesce(extract(epoch FROM max(created_at)), 0) FROM posts"))
            posts_md5 = psql(cfg, database, "SELECT md5(coalesce(string_agg(id::text || ':' || raw, E'\\n' ORDER BY id), ''))"
                                            " FROM posts")
    except Failure:
        write_metrics(cfg, "drill", metrics)
        raise
    finally:
        if database:
            try:
                psql(cfg, conf.get("maintenance_db", "postgres"), f'DROP DATABASE IF EXISTS "{database}"')
            except Failure as err:
                log(f"warning: the throwaway database {database} could not be dropped: {err}")
    empty = [table for table, count in counts.items() if count <= 0]
    backup_time = name_time(item["name"]) or item["modified"]
    window = float(conf.get("newest_post_max_age_days", 30)) * 86400
    problems = [f"no rows in {', '.join(empty)}"] if empty else []
    if counts["posts"] > 0 and backup_time - newest_post > window:
        problems.append(f"its newest post is {(backup_time - newest_post) / 86400:.1f} days older than the backup"
                        f" (limit {window / 86400:g} days)")
    seconds = time.monotonic() - started
    metrics.update({f"{METRIC_PREFIX}_drill_duration_seconds": seconds,
                    f"{METRIC_PREFIX}_drill_backup_timestamp_seconds": backup_time,
                    **{f'{METRIC_PREFIX}_drill_rows{{table="{table}"}}': count for table, count in counts.items()}})
    if problems:
        write_metrics(cfg, "drill", metrics)
        raise Failure(f"restore drill of {item['name']}: the dump loads but " + "; ".join(problems))
    metrics[f"{METRIC_PREFIX}_drill_ok"] = 1
    metrics[f"{METRIC_PREFIX}_drill_last_success_timestamp_seconds"] = now
    write_metrics(cfg, "drill", metrics)
    result = {"backup": item["name"], "rows": counts, "posts_md5": posts_md5, "newest_post": newest_post,
              "seconds": round(seconds, 1)}
    log(f"restore drill of {item['name']} passed: {counts['users']} users, {counts['topics']} topics,"
        f" {counts['posts']} posts, {seconds:.1f} s")
    return result


def fetch(cfg, name):
    s3 = s3_client(cfg)
    item = pick(list_backups(s3, cfg), name, f"s3://{cfg['bucket']}/{base_key(cfg)}")
    dest = os.path.join(cfg["local_dir"], item["name"])
    if os.path.exists(dest):
        return {"path": dest, "downloaded": False}
    partial = dest + ".partial"
    try:
        download(s3, cfg, item, partial)
        os.replace(partial, dest)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return {"path": dest, "downloaded": True}


# --- alert -----------------------------------------------------------------------------------
def alert(cfg, unit):
    command = next((c for c in ("upload", "monitor", "drill") if f"-{c}" in unit), None)
    message = f"{unit} failed"
    if command:
        try:
            with open(os.path.join(cfg["state_dir"], f"{command}.json"), encoding="utf-8") as handle:
                message += ": " + json.load(handle)["message"]
        except (OSError, ValueError, KeyError):
            pass
    log(message)
    url = cfg.get("webhook_url")
    if url:
        body = json.dumps({"text": message, "unit": unit, "host": os.uname().nodename}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310  (the operator's URL)
                log(f"webhook answered {response.status}")
        except OSError as err:
            raise Failure(f"the webhook could not be reached ({err}); the failure above is in the journal") from None
    return {"message": message}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", default="/etc/sciops/discourse-backup.json")
    parser.add_argument("--now", default=os.environ.get("SCIOPS_DISCOURSE_BACKUP_NOW"),
                        help="the time to compare with (epoch seconds or ISO 8601; tests)")
    parser.add_argument("--env-file", help="KEY=VALUE lines to add to the environment (the units' EnvironmentFile)")
    parser.add_argument("command", choices=["upload", "monitor", "drill", "fetch", "status", "alert"])
    parser.add_argument("name", nargs="?", help="drill, fetch: the backup's file name; alert: the failed unit")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    if args.env_file:
        with open(args.env_file, encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    os.environ[key] = value
    now = parse_now(args.now)
    try:
        if args.command == "upload":
            result = upload(cfg, now)
        elif args.command == "monitor":
            result = monitor(cfg, now)
        elif args.command == "drill":
            result = drill(cfg, now, args.name)
            print(json.dumps(result, sort_keys=True))
        elif args.command == "fetch":
            if not args.name:
                raise Failure("fetch needs the backup's name")
            result = fetch(cfg, args.name)
            print(json.dumps(result, sort_keys=True))
        elif args.command == "status":
            print(json.dumps(status(cfg, now), sort_keys=True))
            return 0
        else:
            alert(cfg, args.name or "unknown unit")
            return 0
    except Exception as err:  # noqa: BLE001  (every failure is one line in the journal)
        if not isinstance(err, Failure) and type(err).__module__.split(".")[0] not in ("botocore", "boto3", "s3transfer"):
            raise
        print(f"{args.command} failed: {err}", file=sys.stderr, flush=True)
        if args.command in ("upload", "monitor", "drill"):
            write_state(cfg, args.command, False, str(err))
        return 1
    if args.command in ("upload", "monitor", "drill"):
        write_state(cfg, args.command, True, json.dumps(result, sort_keys=True))
    if args.command == "upload":
        write_metrics(cfg, "upload", {f"{METRIC_PREFIX}_upload_last_success_timestamp_seconds": now,
                                      f"{METRIC_PREFIX}_upload_objects": result["uploaded"],
                                      f"{METRIC_PREFIX}_upload_bytes": result["uploaded_bytes"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
