"""The postgres role's major upgrade on the scenario's node (mol-pgup-db): 15 with data, a refused
change to 17 without postgres_allow_major_upgrade, a check-mode run, then the upgrade to 17 from
the local PGDG stand-in (prepare.yml records the steps before the upgrade in /var/lib/sciops-test)."""
import json
import os
import re
import shlex
from pathlib import Path

import pytest
import testinfra.utils.ansible_runner

from sciops_testing import run_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("postgres")

CONVERGE = "molecule/postgres_upgrade/converge.yml"
ROWS_SQL = (Path(__file__).parent / "rows.sql").read_text().strip()
STANDIN = "http://127.0.0.1:8047/pub/repos/apt"
RECORDS = "/var/lib/sciops-test"


def admin(host, sql, dbname="appdb", port=5432):
    """Run one SQL statement as the postgres superuser over the socket."""
    out = host.run(f"sudo -u postgres psql -XAtq -v ON_ERROR_STOP=1 -p {port} -d {dbname} -c {shlex.quote(sql)}")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def record(host, name):
    return json.loads(host.file(f"{RECORDS}/{name}.json").content_string)


def clusters(host):
    """pg_lsclusters as {version: {port, status, data_dir}}."""
    out = host.run("pg_lsclusters --no-header")
    assert out.rc == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return {int(r[0]): {"cluster": r[1], "port": int(r[2]), "status": r[3], "data_dir": r[5]} for r in rows}


def rows_before(host):
    return host.file(f"{RECORDS}/rows-before.txt").content_string.strip()


def test_server_answers_on_17(host):
    assert admin(host, "SHOW server_version_num", dbname="postgres").startswith("17")
    assert host.service("postgresql@17-main").is_running
    assert host.service("postgresql@17-main").is_enabled


def test_rows_identical_after_the_upgrade(host):
    before = rows_before(host)
    count, checksum, sequence = before.split()
    assert count == "5000" and sequence == "5000"
    assert admin(host, ROWS_SQL) == before
    assert admin(host, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'samples'") == "app_owner"
    assert admin(host, "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'") == "pg_trgm"


def test_app_role_logs_in_with_its_password_after_the_upgrade(host):
    out = host.run("PGPASSWORD=upgrade-Pw-31c9 psql 'host=127.0.0.1 dbname=appdb user=app_owner' -XAtqc "
                   "'SELECT count(*) FROM samples'")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "5000"


def test_old_cluster_kept_stopped_and_off_the_new_clusters_port(host):
    found = clusters(host)
    assert set(found) == {15, 17}
    assert found[15]["status"] == "down"
    assert found[17]["status"] == "online"
    assert found[17]["port"] == 5432
    assert found[15]["port"] != 5432
    assert host.file("/var/lib/postgresql/15/main/PG_VERSION").content_string.strip() == "15"
    old = host.service("postgresql@15-main")
    assert not old.is_running
    assert not old.is_enabled
    assert "manual" in host.file("/etc/postgresql/15/main/start.conf").content_string.split()


def test_old_cluster_starts_beside_the_new_one_for_comparison(host):
    port = clusters(host)[15]["port"]
    start = host.run("pg_ctlcluster 15 main start")
    try:
        assert start.rc == 0, start.stderr
        assert admin(host, ROWS_SQL, port=port) == rows_before(host)
        assert admin(host, "SHOW server_version_num", dbname="postgres", port=port).startswith("15")
    finally:
        host.run("pg_ctlcluster 15 main stop")
    assert clusters(host)[15]["status"] == "down"
    assert admin(host, "SHOW server_version_num", dbname="postgres").startswith("17")


def untouched(host):
    """The node's state as before any upgrade attempt (what tasks/record.yml records)."""
    return {
        "postgresql_17_installed": "absent",
        "pg15_active": "active",
        "pg17_data": "no",
        "pgdg_source": "no",
        "rows": rows_before(host),
    }


def test_refused_without_the_flag_and_nothing_changed(host):
    refusal = record(host, "refusal")
    assert refusal["failed"] is True
    assert "PostgreSQL 15 holds data" in refusal["msg"]
    assert "postgres_allow_major_upgrade: true" in refusal["msg"]
    assert refusal["state"] == untouched(host)


def _changed_tasks(output):
    """Names of the tasks a playbook run reported as changed (default callback output)."""
    return set(re.findall(r"^TASK \[[^\]:]+ : ([^\]]+)\] \**\n(?:(?!TASK \[)[^\n]*\n)*?changed: ", output, re.M))


def test_check_mode_before_the_upgrade_shows_it_and_changes_nothing(host):
    check = record(host, "check-mode")
    assert check["failed"] is False, check["msg"]
    changed = _changed_tasks(check["output"])
    assert {
        "install | Add the PGDG signing key",
        "install | Add the PGDG repository (deb822 source)",
        "upgrade | Upgrade the data with pg_upgradecluster (this can take a while)",
        "upgrade | Keep the old cluster stopped (drop it with pg_dropcluster once verified)",
    } <= changed, check["output"]
    assert "Would install postgresql-17, postgresql-client-17" in check["output"]
    assert check["state"] == untouched(host)


def test_postgresql_17_comes_from_the_pgdg_source(host):
    source = host.file("/etc/apt/sources.list.d/pgdg.sources").content_string
    assert f"URIs: {STANDIN}\n" in source
    assert "Suites: bookworm-pgdg\n" in source
    assert "Signed-By: /etc/apt/keyrings/pgdg.asc\n" in source
    assert "BEGIN PGP PUBLIC KEY BLOCK" in host.file("/etc/apt/keyrings/pgdg.asc").content_string
    policy = host.run("apt-cache policy postgresql-17").stdout
    installed = policy.split("Installed:")[1].split()[0]
    table = policy.split("***")[1].splitlines()
    assert table[0].split()[0] == installed
    assert f"{STANDIN} bookworm-pgdg/main" in table[1]
    # apt verified the stand-in's signature with that key (an unsigned suite is refused)
    assert host.run("apt-get update -o APT::Update::Error-Mode=any").rc == 0


def test_node_is_still_debian_12(host):
    assert host.file("/etc/debian_version").content_string.startswith("12.")


def test_converge_again_changes_nothing_in_check_mode(host):
    run = run_playbook(CONVERGE, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.total("changed") == 0, run.output
    assert run.total("failed") == 0, run.output


@pytest.mark.parametrize("version", [15, 16])
def test_going_back_to_an_older_version_is_refused(host, version):
    """15's cluster is still there after the upgrade; asking for it must not bring its stale data back."""
    run = run_playbook(CONVERGE, "-e", json.dumps({"postgres_version": version}))
    assert run.rc != 0
    assert "PostgreSQL 17 holds data" in run.output
    assert "Downgrades are not possible in place" in run.output
    assert run.total("changed") == 0, run.output
    assert clusters(host)[15]["status"] == "down"
    assert admin(host, "SHOW server_version_num", dbname="postgres").startswith("17")
