#!/usr/bin/env python3
"""Create the EBRAINS neuromorphic job-queue (v3) tables, idempotently.

Upstream (HumanBrainProject/ebrains-neuromorphic-job-queue-api, ``api/``) ships
no migrations and no create-tables step: its only tool, ``setup_test_db.py``,
drops every table and loads fake data.  This script does the safe half of it:

* it imports the app's own ``simqueue.db`` module, so it uses exactly the same
  SQLAlchemy metadata, the same ``databases.Database`` object, the same driver
  (asyncpg) and the same connection settings as the running service
  (``NMPI_DATABASE_USER`` / ``_PASSWORD`` / ``_HOST`` / ``_PORT``; database
  name ``nmpi`` and ``?ssl=false`` are hard-coded upstream in simqueue/db.py);
* like ``setup_test_db.py`` it compiles ``CreateTable(table, if_not_exists=True)``
  (and ``CreateIndex(index, if_not_exists=True)``) with the PostgreSQL dialect
  and runs the resulting DDL through ``simqueue.db.database``.  It does not
  need psycopg2 (not in the lock file) nor SQLAlchemy's async engine
  (greenlet is only an unpinned transitive dependency of SQLAlchemy);
* it never drops or alters anything; existing tables/indexes are left alone;
* all DDL runs in one transaction (PostgreSQL DDL is transactional), so a
  failure half-way leaves the database as it was.  Name clashes with a
  non-table relation (view, composite type, sequence...) are detected before
  any DDL runs.

Caveat inherited from upstream: simqueue/db.py pastes the password into a
URL without quoting, so NMPI_DATABASE_PASSWORD must not contain ``/ # ? %``
(``%XX`` is percent-decoded; ``/ # ?`` break the URL).

Usage (from the app directory ``api/``, inside the app's virtualenv)::

    cd /path/to/api && NMPI_DATABASE_PASSWORD=... NMPI_DATABASE_HOST=127.0.0.1 \\
        NMPI_DATABASE_PORT=5432 /path/to/venv/bin/python nmpi-create-tables.py

Output: one line per table/index ("created" / "present") and a summary line
``tables: N created, M already present; indexes: N created, M already present``.
A second run creates nothing.  Also prints ``changed=yes`` or ``changed=no`` as
the last line, for Ansible's ``changed_when``.

Exit status: 0 on success; 2 if the database cannot be reached or the login
is refused (message on stderr); 3 if ``simqueue`` cannot be imported; 1 on
any other error.
"""

import argparse
import asyncio
import os
import sys

EXIT_DB_UNREACHABLE = 2
EXIT_IMPORT = 3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--app-dir",
        default=os.getcwd(),
        help="directory containing the 'simqueue' package (default: current directory)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the database connection (default: 30)",
    )
    return parser.parse_args()


def import_app(app_dir):
    """Import simqueue.db from the app directory and return the module.

    Python puts the *script's* directory on sys.path, not the working
    directory, so add the app directory explicitly.
    """
    sys.path.insert(0, os.path.abspath(app_dir))
    try:
        import sqlalchemy  # noqa: F401  (from the app's virtualenv)
        from simqueue import db
    except ImportError as err:
        print(
            f"nmpi-create-tables: cannot import simqueue.db from {app_dir!r}: {err}\n"
            "Run it from the app's api/ directory with the app's virtualenv python.",
            file=sys.stderr,
        )
        sys.exit(EXIT_IMPORT)
    return db


def describe_target(db):
    """user@host:port/nmpi for messages (never the password).

    Taken from the app's settings rather than parsed back from the URL, which
    may itself be unparsable (see the password caveat above).
    """
    s = db.settings
    return f"{s.DATABASE_USERNAME}@{s.DATABASE_HOST}:{s.DATABASE_PORT}/nmpi"


async def connect(db, timeout):
    """Open the app's connection pool; exit 2 with a clear message on failure."""
    target = describe_target(db)
    try:
        await asyncio.wait_for(db.database.connect(), timeout)
    except asyncio.TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as err:  # refused, no route, DNS failure, ...
        reason = f"cannot reach the server: {err}"
    except Exception as err:  # asyncpg errors (bad password, no such role/db, pg_hba)
        # or ValueError from an unparsable URL
        reason = f"{type(err).__name__}: {err}"
    else:
        return
    print(
        f"nmpi-create-tables: cannot connect to PostgreSQL as {target}: {reason}\n"
        "Check NMPI_DATABASE_USER/PASSWORD/HOST/PORT, that database 'nmpi' exists, "
        "and that pg_hba.conf has a 'host' (not 'hostssl') rule: the app uses ssl=false.",
        file=sys.stderr,
    )
    sys.exit(EXIT_DB_UNREACHABLE)


# pg_class.relkind values we accept as "already there"
TABLE_KINDS = ("r", "p")  # ordinary / partitioned table
INDEX_KINDS = ("i", "I")  # index / partitioned index


async def existing_relations(database):
    """{name: relkind} of every relation (table, index, view, sequence, ...)
    in the schema the app uses (current_schema(), normally 'public')."""
    rows = await database.fetch_all(
        "SELECT c.relname, c.relkind::text FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema()"
    )
    return {row[0]: row[1] for row in rows}


class SchemaConflict(Exception):
    pass


def check_kind(relations, name, wanted_kinds, what):
    """True if `name` exists with an accepted kind, False if absent.

    Raise SchemaConflict if something else (a view, a sequence, ...) already
    has the name: "CREATE ... IF NOT EXISTS" would then skip silently (for a
    relation) and the app would be broken, so refuse instead of guessing.
    """
    kind = relations.get(name)
    if kind is None:
        return False
    if kind in wanted_kinds:
        return True
    raise SchemaConflict(
        f"{what} {name!r} cannot be created: a relation of pg_class.relkind {kind!r} "
        "already has that name; nothing was changed"
    )


async def existing_columns(database, table_name):
    rows = await database.fetch_all(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = :t",
        values={"t": table_name},
    )
    return {row[0] for row in rows}


# Any fixed 64-bit number; the same for every node running this script ("nmpi" in ASCII).
ADVISORY_LOCK_KEY = 0x6E6D7069


async def create_schema(db):
    """Create what is missing, in one transaction; return the report lines and counts."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = postgresql.dialect()
    database = db.database
    # Parents before children (foreign keys).  Upstream's setup_test_db.py
    # iterates metadata.tables in definition order, which happens to work too.
    tables = db.metadata.sorted_tables
    counts = {"tables": [0, 0], "indexes": [0, 0]}  # [created, already present]
    report = []

    async with database.transaction():
        # Several app nodes bootstrap the same database at once (one service on many nodes):
        # a transaction-scoped advisory lock makes them take turns, so the later ones find the
        # tables present instead of racing on CREATE TABLE IF NOT EXISTS (which is not atomic
        # in PostgreSQL: two creators can both pass the check and one fails on pg_type).
        await database.execute(query="SELECT pg_advisory_xact_lock(%d)" % ADVISORY_LOCK_KEY)
        relations = await existing_relations(database)

        # 1. Plan everything first, so that a name conflict aborts before any DDL.
        plan = []  # ("table"|"index", SQLAlchemy object, DDL string or None if present)
        for table in tables:
            if check_kind(relations, table.name, TABLE_KINDS, "table"):
                plan.append(("table", table, None))
            else:
                ddl = CreateTable(table, if_not_exists=True)
                plan.append(("table", table, str(ddl.compile(dialect=dialect))))
        # Explicit indexes only (Column(..., index=True) -> ix_<table>_<column>);
        # primary keys and foreign keys come with CREATE TABLE.
        for table in tables:
            for index in sorted(table.indexes, key=lambda i: i.name):
                if check_kind(relations, index.name, INDEX_KINDS, "index"):
                    plan.append(("index", index, None))
                else:
                    ddl = CreateIndex(index, if_not_exists=True)
                    plan.append(("index", index, str(ddl.compile(dialect=dialect))))

        # 2. Execute.  Any error rolls the whole transaction back.
        for kind, obj, ddl in plan:
            key = "tables" if kind == "table" else "indexes"
            if ddl is None:
                counts[key][1] += 1
                note = ""
                if kind == "table":
                    # Report (never fix) drift: columns the app expects but the table lacks
                    missing = {c.name for c in obj.columns} - await existing_columns(
                        database, obj.name
                    )
                    if missing:
                        note = f" (WARNING: missing columns {sorted(missing)})"
                report.append(f"{kind} {obj.name}: present{note}")
            else:
                await database.execute(query=ddl)
                counts[key][0] += 1
                report.append(f"{kind} {obj.name}: created")
    return report, counts


async def main():
    args = parse_args()
    db = import_app(args.app_dir)
    await connect(db, args.timeout)
    try:
        report, counts = await create_schema(db)  # printed only once committed
    finally:
        await db.database.disconnect()
    print("\n".join(report))
    (tc, tp), (ic, ip) = counts["tables"], counts["indexes"]
    print(
        f"tables: {tc} created, {tp} already present; "
        f"indexes: {ic} created, {ip} already present"
    )
    print("changed=yes" if tc or ic else "changed=no")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except SystemExit:
        raise
    except SchemaConflict as err:
        print(f"nmpi-create-tables: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:
        print(f"nmpi-create-tables: failed: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
