#!/usr/bin/python3
"""Logical backups of PostgreSQL databases, installed by the sciops.platform postgres role.

For each configured database: pg_dump in custom format into the backup directory
(<db>-<UTC timestamp>.dump, written under a temporary name <...>.dump.partial and renamed when
complete; removed when pg_dump fails), optional upload to S3, then retention: keep at most
keep_count dumps per database and none older than keep_days, but always the newest. One run at a
time (a lock on the backup directory); .partial files left by a run that was killed are removed
by the next. The outcome of each database's last run is kept in backup-status.json in the backup
directory. Exit status is non-zero if any database failed, so the systemd unit shows as failed
and monitoring sees it.

--status prints, as JSON, for each configured database: the newest complete dump, its age in
hours, and whether the last run failed (the postgres role's backup_status entry point reads it).
"""
import argparse
import datetime as dt
import fcntl
import json
import os
import re
import subprocess
import sys
import time

STAMP = "%Y%m%dT%H%M%SZ"
STATUS_FILE = "backup-status.json"


def log(msg):
    print(msg, flush=True)


def now_iso():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dump_name(db):
    """Names of complete dumps of db: <db>-<stamp>.dump (not those of a db named <db>-x)."""
    return re.compile(re.escape(db) + r"-\d{8}T\d{6}Z\.dump$")


def dump(cfg, db, directory):
    stamp = dt.datetime.now(dt.timezone.utc).strftime(STAMP)
    final = os.path.join(directory, f"{db}-{stamp}.dump")
    partial = final + ".partial"
    cmd = [os.path.join(cfg["bin_dir"], "pg_dump"), "--format=custom", "--port", str(cfg["port"]),
           "--file", partial, db]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, check=False)
        if proc.stderr:
            sys.stdout.write(proc.stderr)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [""])[-1]
            raise RuntimeError(f"pg_dump exited with status {proc.returncode}: {last}")
        os.rename(partial, final)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
            log(f"{db}: removed the incomplete {partial}")
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


def remove_stale_partials(directory):
    """Called with the run lock held: no other run writes, so every .partial is left over."""
    for name in sorted(os.listdir(directory)):
        if name.endswith(".dump.partial"):
            os.remove(os.path.join(directory, name))
            log(f"removed {name}, left by an interrupted run")


def prune(db, directory, keep_count, keep_days):
    pattern = dump_name(db)
    dumps = sorted((f for f in os.listdir(directory) if pattern.match(f)), reverse=True)
    cutoff = time.time() - keep_days * 86400
    for index, name in enumerate(dumps):
        path = os.path.join(directory, name)
        if index == 0:
            continue  # the newest dump is always kept
        if index >= keep_count or os.path.getmtime(path) < cutoff:
            os.remove(path)
            log(f"{db}: removed {name} (retention: {keep_count} dumps, {keep_days} days)")


def read_status(directory):
    try:
        with open(os.path.join(directory, STATUS_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def write_status(directory, status):
    path = os.path.join(directory, STATUS_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(status, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def report(cfg):
    """One entry per configured database: newest complete dump, its age, the last run's outcome."""
    directory = cfg["directory"]
    status = read_status(directory)
    files = os.listdir(directory)
    entries = []
    for db in cfg["databases"]:
        dumps = sorted(f for f in files if dump_name(db).match(f))
        newest = os.path.join(directory, dumps[-1]) if dumps else None
        age = round((time.time() - os.path.getmtime(newest)) / 3600, 2) if newest else None
        last = status.get(db, {})
        entry = {
            "database": db,
            "newest": newest,
            "age_hours": age,
            "last_run": last.get("finished"),
            "last_run_failed": (not last["ok"]) if "ok" in last else None,
            "error": last.get("error"),
        }
        good = f"newest good backup {newest}, {age:.1f} h old" if newest else "NO good backup"
        if entry["last_run_failed"] is None:
            run = "no run recorded"
        elif entry["last_run_failed"]:
            run = f"last run FAILED at {entry['last_run']}: {entry['error']}"
        else:
            run = f"last run ok at {entry['last_run']}"
        entry["summary"] = f"{db}: {good}; {run}"
        entries.append(entry)
    return entries


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/sciops/postgres-backup.json")
    parser.add_argument("--database", action="append", help="dump only this database (repeatable)")
    parser.add_argument("--status", action="store_true", help="print the backup status as JSON and exit")
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as handle:
        cfg = json.load(handle)
    if args.status:
        print(json.dumps(report(cfg), indent=2))
        return 0
    directory = cfg["directory"]
    databases = args.database or cfg["databases"]
    lock = os.open(directory, os.O_RDONLY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # one run at a time; a second waits
    remove_stale_partials(directory)
    status = read_status(directory)
    failures = 0
    for db in databases:
        try:
            path = dump(cfg, db, directory)
            if cfg.get("s3", {}).get("enabled"):
                upload(cfg["s3"], path)
            prune(db, directory, int(cfg["keep_count"]), int(cfg["keep_days"]))
            status[db] = {"ok": True, "finished": now_iso(), "file": path, "error": None}
        except Exception as exc:  # keep going with the other databases, fail at the end
            failures += 1
            log(f"{db}: backup FAILED: {exc}")
            status[db] = {"ok": False, "finished": now_iso(), "error": str(exc)}
        write_status(directory, status)
    if not databases:
        log("no databases configured for backup")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
