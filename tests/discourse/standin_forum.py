#!/usr/bin/env python3
"""STAND-IN for a Discourse forum (test double; Discourse itself cannot run here).

It keeps a real PostgreSQL database with forum-shaped tables (users, topics, posts,
schema_migrations) and an uploads folder, and produces backups with Discourse's real layout and
file-name grammar: <title>-YYYY-MM-DD-HHMMSS-v<14-digit schema version>.tar.gz holding
dump.sql.gz (a plain pg_dump of the public schema, as Discourse makes it) and uploads/. It also
answers the few commands the discourse_backup role sends to a real install, in the same shapes:

  rails-runner SCRIPT [ARGS...]   the container's `rails runner`: the role's site-settings script
                                  (ARGV[0] JSON settings, ARGV[1] "1" for a dry run; prints the
                                  changes as JSON) and `... current_version` (prints the schema)
  cli enable_restore|disable_restore|restore FILE
                                  the container's `discourse` command line: restore refuses
                                  unless enabled and refuses a newer schema, like Discourse
  running                         prints an id (the container runs)

and, for tests: init, post, backup, stats. PostgreSQL is reached with psql
(--psql "runuser -u postgres -- psql" by default, or SCIOPS_STANDIN_PSQL).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile

SCHEMA_VERSION = "20241126124358"
STATE = os.environ.get("SCIOPS_STANDIN_STATE", "/var/lib/standin-forum")
BACKUPS = os.environ.get("SCIOPS_STANDIN_BACKUPS", "/var/discourse/shared/standalone/backups/default")
UPLOADS = os.environ.get("SCIOPS_STANDIN_UPLOADS", "/var/discourse/shared/standalone/uploads")
DEFAULT_SETTINGS = {"automatic_backups_enabled": True, "backup_frequency": 7, "maximum_backups": 5,
                    "backup_time_of_day": "3:30", "s3_disable_cleanup": False}
POSTS_MD5 = "SELECT md5(coalesce(string_agg(id::text || ':' || raw, E'\\n' ORDER BY id), '')) FROM posts"


def psql_argv(args):
    return shlex.split(args.psql or os.environ.get("SCIOPS_STANDIN_PSQL", "runuser -u postgres -- psql"))


def psql(args, sql, database=None, stdin=None):
    argv = psql_argv(args) + ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database or args.db]
    if sql is not None and len(sql) > 64000:  # past what one argument may hold: on standard input
        stdin, sql = sql.encode(), None
    if sql is not None:
        argv += ["-c", sql]
    proc = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"stand-in forum: psql failed: {proc.stderr.decode().strip()}")
    return proc.stdout.decode().strip()


def pg_dump_argv(args):
    return [arg[:-len("psql")] + "pg_dump" if arg.endswith("psql") else arg for arg in psql_argv(args)]


def schema_version(args):
    return psql(args, "SELECT max(version) FROM schema_migrations")


def init(args):
    if psql(args, f"SELECT 1 FROM pg_database WHERE datname = '{args.db}'", database="postgres") != "1":
        psql(args, f'CREATE DATABASE "{args.db}"', database="postgres")
    psql(args, """
        CREATE TABLE IF NOT EXISTS schema_migrations (version varchar PRIMARY KEY);
        CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, username varchar NOT NULL UNIQUE,
            created_at timestamp NOT NULL DEFAULT now());
        CREATE TABLE IF NOT EXISTS user_emails (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES users,
            email varchar NOT NULL);
        CREATE TABLE IF NOT EXISTS topics (id serial PRIMARY KEY, title varchar NOT NULL, user_id int REFERENCES users,
            created_at timestamp NOT NULL DEFAULT now());
        CREATE TABLE IF NOT EXISTS posts (id serial PRIMARY KEY, topic_id int NOT NULL REFERENCES topics,
            user_id int REFERENCES users, post_number int NOT NULL, raw text NOT NULL, cooked text NOT NULL,
            created_at timestamp NOT NULL DEFAULT now());
    """)
    psql(args, f"INSERT INTO schema_migrations VALUES ('{args.schema}') ON CONFLICT DO NOTHING")
    if psql(args, "SELECT count(*) FROM users") == "0":
        rng = random.Random(args.seed)
        psql(args, "INSERT INTO users (username) SELECT 'user' || i FROM generate_series(1, %d) i;"
                   "INSERT INTO user_emails (user_id, email) SELECT id, username || '@example.org' FROM users;"
                   % args.users)
        psql(args, "INSERT INTO topics (title, user_id) SELECT 'Topic ' || i, 1 + i %% %d FROM generate_series(1, %d) i"
             % (args.users, args.topics))
        rows = []
        for topic in range(1, args.topics + 1):
            for number in range(1, args.posts_per_topic + 1):
                raw = "post %d of topic %d: %s" % (number, topic, rng.choice(["hello", "deepchem", "molecule", "graph"]))
                rows.append(f"({topic}, {1 + (topic + number) % args.users}, {number}, '{raw}', '<p>{raw}</p>')")
        psql(args, "INSERT INTO posts (topic_id, user_id, post_number, raw, cooked) VALUES " + ", ".join(rows))
    os.makedirs(os.path.join(UPLOADS, "default", "original", "1X"), exist_ok=True)
    for i in range(args.uploads):
        path = os.path.join(UPLOADS, "default", "original", "1X", f"upload{i}.png")
        if not os.path.exists(path):
            with open(path, "wb") as out:
                out.write(random.Random(i).randbytes(args.upload_bytes))
    os.makedirs(STATE, exist_ok=True)
    print(json.dumps(stats(args)))


def post(args):
    topic = psql(args, "SELECT max(id) FROM topics")
    psql(args, "INSERT INTO posts (topic_id, user_id, post_number, raw, cooked) SELECT %s, 1, coalesce(max(post_number), 0) + 1,"
               " '%s', '<p>%s</p>' FROM posts WHERE topic_id = %s" % (topic, args.text, args.text, topic))
    print(json.dumps(stats(args)))


def stats(args):
    return {"users": int(psql(args, "SELECT count(*) FROM users")), "topics": int(psql(args, "SELECT count(*) FROM topics")),
            "posts": int(psql(args, "SELECT count(*) FROM posts")), "posts_md5": psql(args, POSTS_MD5),
            "schema": schema_version(args)}


def backup(args):
    """Discourse's BackupRestore::Backuper, reduced: dump, archive with uploads, move into place."""
    stamp = (dt.datetime.fromisoformat(args.stamp) if args.stamp else dt.datetime.now(dt.timezone.utc))
    name = f"{args.title}-{stamp.strftime('%Y-%m-%d-%H%M%S')}-v{schema_version(args)}.tar.gz"
    os.makedirs(BACKUPS, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="standin-backup.") as work:
        os.chmod(work, 0o755)
        dump = subprocess.run(pg_dump_argv(args) + ["--schema=public", "--no-owner", "--no-privileges", args.db],
                              capture_output=True, check=False)
        if dump.returncode != 0:
            sys.exit(f"stand-in forum: pg_dump failed: {dump.stderr.decode().strip()}")
        with gzip.open(os.path.join(work, "dump.sql.gz"), "wb") as out:
            out.write(dump.stdout)
        archive_path = os.path.join(work, name)
        with tarfile.open(archive_path, "w:gz") as archive:
            archive.add(os.path.join(work, "dump.sql.gz"), arcname="dump.sql.gz")
            archive.add(os.path.join(UPLOADS, "default"), arcname="uploads/default")
        shutil.move(archive_path, os.path.join(BACKUPS, name + ".tmp"))
        os.replace(os.path.join(BACKUPS, name + ".tmp"), os.path.join(BACKUPS, name))
    result = {"name": name, "path": os.path.join(BACKUPS, name), **stats(args)}
    print(json.dumps(result))


def settings_file():
    return os.path.join(STATE, "site_settings.json")


def rails_runner(args):
    script = args.script
    if "current_version" in script:
        print(schema_version(args))
        return
    if "SiteSetting" not in script:
        sys.exit("stand-in forum: this rails runner only knows the discourse_backup role's scripts")
    want = json.loads(args.args[0])
    dry = len(args.args) > 1 and args.args[1] == "1"
    try:
        with open(settings_file(), encoding="utf-8") as handle:
            current = json.load(handle)
    except FileNotFoundError:
        current = dict(DEFAULT_SETTINGS)
    changed = {}
    for key, value in want.items():
        old = current.get(key)
        if str(old).lower() != str(value).lower():
            changed[key] = [old, value]
            current[key] = value
    if changed and not dry:
        os.makedirs(STATE, exist_ok=True)
        with open(settings_file(), "w", encoding="utf-8") as handle:
            json.dump(current, handle, indent=2, sort_keys=True)
    print(json.dumps(changed))


def cli(args):
    flag = os.path.join(STATE, "restore_enabled")
    if args.action == "enable_restore":
        os.makedirs(STATE, exist_ok=True)
        open(flag, "w").close()
        print("Restore are now permitted. Disable them with `disable_restore`")
    elif args.action == "disable_restore":
        if os.path.exists(flag):
            os.remove(flag)
        print("Restore are now forbidden. Enable them with `enable_restore`")
    else:
        if not os.path.exists(flag):
            sys.exit("Restores are not allowed. An admin needs to set allow_restore to true in the site settings"
                     " before restores can be run. Enable them with `discourse enable_restore`")
        name = os.path.basename(args.file or "")
        match = re.search(r"-v(\d{14})\.", name)
        if not match:
            sys.exit(f"stand-in forum: {name} is not a Discourse backup name")
        if match[1] > schema_version(args):
            sys.exit(f"You're trying to restore a more recent version of the schema. You should -rebuild- first."
                     f" ({match[1]} > {schema_version(args)})")
        with tempfile.TemporaryDirectory(prefix="standin-restore.") as work:
            with tarfile.open(os.path.join(BACKUPS, name), "r:gz") as archive:
                try:
                    archive.extractall(work, filter="data")
                except TypeError:  # Python before 3.11.4 (Debian 12's 3.11.2): no extraction filters
                    archive.extractall(work)  # noqa: S202  (the stand-in's own backup)
            with gzip.open(os.path.join(work, "dump.sql.gz"), "rb") as src:
                sql = src.read()
            psql(args, "DROP SCHEMA public CASCADE")  # the dump creates it (pg_dump --schema=public)
            psql(args, None, stdin=sql)
            target = os.path.join(UPLOADS, "default")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(work, "uploads", "default"), target)
        print("[SUCCESS]")
        print(json.dumps(stats(args)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--psql", help="psql command line (default: runuser -u postgres -- psql)")
    parser.add_argument("--db", default=os.environ.get("SCIOPS_STANDIN_DB", "discourse"))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("init")
    p.add_argument("--schema", default=SCHEMA_VERSION)
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--topics", type=int, default=10)
    p.add_argument("--posts-per-topic", type=int, default=5)
    p.add_argument("--uploads", type=int, default=3)
    p.add_argument("--upload-bytes", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=14)
    p = sub.add_parser("post")
    p.add_argument("text")
    p = sub.add_parser("backup")
    p.add_argument("--title", default="deepchem-forum")
    p.add_argument("--stamp", help="the backup's time (ISO 8601; default now)")
    sub.add_parser("stats")
    sub.add_parser("running")
    p = sub.add_parser("rails-runner")
    p.add_argument("script")
    p.add_argument("args", nargs="*")
    p = sub.add_parser("cli")
    p.add_argument("action", choices=["enable_restore", "disable_restore", "restore"])
    p.add_argument("file", nargs="?")
    args = parser.parse_args(argv)
    if args.command == "stats":
        print(json.dumps(stats(args)))
    elif args.command == "running":
        print("standin-forum")
    elif args.command == "rails-runner":
        rails_runner(args)
    else:
        {"init": init, "post": post, "backup": backup, "cli": cli}[args.command](args)


if __name__ == "__main__":
    main()
