#!/usr/bin/python3
"""Logical backups of PostgreSQL databases, installed by the sciops.platform postgres role.

For each configured database: pg_dump in custom format into the backup directory
(<db>-<UTC timestamp>.dump, written under a temporary name and renamed when complete),
optional upload to S3, then retention: keep at most keep_count dumps per database and none
older than keep_days, but always the newest. Exit status is non-zero if any database failed,
so the systemd unit shows as failed and monitoring sees it.
"""
import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time

STAMP = "%Y%m%dT%H%M%SZ"


def log(msg):
    print(msg, flush=True)


def dump(cfg, db, directory):
    stamp = dt.datetime.now(dt.timezone.utc).strftime(STAMP)
    final = os.path.join(directory, f"{db}-{stamp}.dump")
    partial = final + ".partial"
    cmd = [os.path.join(cfg["bin_dir"], "pg_dump"), "--format=custom", "--port", str(cfg["port"]),
           "--file", partial, db]
    started = time.monotonic()
    subprocess.run(cmd, check=True)
    os.rename(partial, final)
    size = os.path.getsize(final)
    log(f"{db}: wrote {final} ({size} bytes) in {time.monotonic() - started:.1f}s")
    return final


def upload(s3cfg, path):
    import boto3  # only needed when S3 upload is on

    kwargs = {"region_name": s3cfg.get("region") or None}
    if s3cfg.get("endpoint_url"):
        kwargs["endpoint_url"] = s3cfg["endpoint_url"]
    client = boto3.client("s3", **kwargs)
    key = s3cfg.get("prefix", "") + os.path.basename(path)
    client.upload_file(path, s3cfg["bucket"], key)
    log(f"uploaded s3://{s3cfg['bucket']}/{key}")


def prune(db, directory, keep_count, keep_days):
    prefix = db + "-"
    dumps = sorted(
        (f for f in os.listdir(directory) if f.startswith(prefix) and f.endswith(".dump")
         and f[len(prefix):-len(".dump")].count("-") == 0),
        reverse=True,
    )
    cutoff = time.time() - keep_days * 86400
    for index, name in enumerate(dumps):
        path = os.path.join(directory, name)
        if index == 0:
            continue  # the newest dump is always kept
        if index >= keep_count or os.path.getmtime(path) < cutoff:
            os.remove(path)
            log(f"{db}: removed {name} (retention: {keep_count} dumps, {keep_days} days)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/sciops/postgres-backup.json")
    parser.add_argument("--database", action="append", help="dump only this database (repeatable)")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as handle:
        cfg = json.load(handle)
    databases = args.database or cfg["databases"]
    failures = 0
    for db in databases:
        try:
            path = dump(cfg, db, cfg["directory"])
            if cfg.get("s3", {}).get("enabled"):
                upload(cfg["s3"], path)
            prune(db, cfg["directory"], int(cfg["keep_count"]), int(cfg["keep_days"]))
        except Exception as exc:  # keep going with the other databases, fail at the end
            failures += 1
            log(f"{db}: backup FAILED: {exc}")
    if not databases:
        log("no databases configured for backup")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
