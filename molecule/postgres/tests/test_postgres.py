"""Behaviour of the postgres role on the scenario's database node (mol-pg-db), checked from
the node itself and from a second node (mol-pg-client) on the same network."""
import os
import shlex
import time

import pytest
import testinfra.utils.ansible_runner

from sciops_testing import node, run_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("postgres")

DB_ADDR = "172.30.42.10"
SERVICE = "postgresql@15-main"
PASSWORDS = {
    "app_owner": "owner-Pw-7d1c",
    "app_reader": "reader-Pw-93ab",
    "outsider": "outsider-Pw-55e0",
}
S3_SECRET = "testing-Secret-4f2e"
CONVERGE = "molecule/postgres/converge.yml"


@pytest.fixture(scope="module")
def client():
    return node("mol-pg-client")


def psql(host, user, sql, password=None, dbname="appdb", addr=DB_ADDR, sslmode="require"):
    """Run SQL as `user` over TCP; returns the testinfra command result (rc, stdout, stderr)."""
    password = PASSWORDS.get(user) if password is None else password
    conninfo = f"host={addr} port=5432 dbname={dbname} user={user} sslmode={sslmode} connect_timeout=5"
    return host.run(f"PGPASSWORD={shlex.quote(password)} psql {shlex.quote(conninfo)} -XAtqc {shlex.quote(sql)}")


def admin(host, sql, dbname="appdb"):
    """Run SQL as the postgres superuser over the socket; statements in separate transactions."""
    commands = " ".join(f"-c {shlex.quote(stmt.strip())}" for stmt in sql.split(";") if stmt.strip())
    out = host.run(f"sudo -u postgres psql -XAtq -v ON_ERROR_STOP=1 -d {dbname} {commands}")
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def test_service_active_and_enabled(host):
    service = host.service(SERVICE)
    assert service.is_running
    assert service.is_enabled


def test_listens_where_configured_and_nowhere_else(host):
    listening = {s for s in host.socket.get_listening_sockets() if s.startswith("tcp") and s.endswith(":5432")}
    assert listening == {"tcp://127.0.0.1:5432", f"tcp://{DB_ADDR}:5432"}


def test_app_user_logs_in_over_tls_from_another_node(host, client):
    out = psql(client, "app_owner", "SELECT current_user || ' ' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert out.rc == 0, out.stderr
    assert out.stdout.strip() == "app_owner true"


def test_wrong_password_is_refused(host, client):
    out = psql(client, "app_owner", "SELECT 1", password="not-the-password")
    assert out.rc != 0
    assert 'password authentication failed for user "app_owner"' in out.stderr


def test_plain_tcp_without_tls_is_refused(host, client):
    out = psql(client, "app_owner", "SELECT 1", sslmode="disable")
    assert out.rc != 0
    assert "no pg_hba.conf entry" in out.stderr


def test_user_not_in_pg_hba_is_refused_from_network(client, host):
    # outsider has a valid password (it logs in from the node itself) ...
    local = psql(host, "outsider", "SELECT current_user", addr="127.0.0.1", dbname="postgres")
    assert local.rc == 0, local.stderr
    assert local.stdout.strip() == "outsider"
    # ... but no pg_hba rule lets it in from the network.
    remote = psql(client, "outsider", "SELECT 1")
    assert remote.rc != 0
    assert 'no pg_hba.conf entry for host "172.30.42.20", user "outsider"' in remote.stderr


def test_passwords_are_stored_as_scram(host):
    assert admin(host, "SELECT count(*) FROM pg_authid WHERE rolname IN ('app_owner','app_reader','outsider') AND rolpassword LIKE 'SCRAM-SHA-256$%'") == "3"


def test_owner_creates_tables_and_reader_reads_them(host, client):
    ddl = ("DROP TABLE IF EXISTS t_owner; CREATE TABLE t_owner (id int primary key, v text); "
           "INSERT INTO t_owner SELECT g, md5(g::text) FROM generate_series(1, 10) g; SELECT count(*) FROM t_owner")
    out = psql(client, "app_owner", ddl)
    assert out.rc == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "10"
    read = psql(client, "app_reader", "SELECT count(*) FROM t_owner")
    assert read.rc == 0, read.stderr
    assert read.stdout.strip() == "10"
    # PostgreSQL 15: only the owner may create in public; the reader may not.
    denied = psql(client, "app_reader", "CREATE TABLE t_reader (id int)")
    assert denied.rc != 0
    assert "permission denied for schema public" in denied.stderr


def test_extension_created(host):
    assert admin(host, "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'") == "pg_trgm"


def test_scoped_lists_merge_host_items_with_group_items(host):
    owners = admin(host, "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) "
                         "FROM pg_database WHERE datname IN ('appdb', 'hostdb')", dbname="postgres")
    assert owners == "appdb:app_owner,hostdb:app_reader"
    # backup: false keeps hostdb out of the scheduled backups
    config = host.file("/etc/sciops/postgres-backup.json").content_string
    assert '"appdb"' in config and '"hostdb"' not in config


def test_memory_tuning_follows_the_given_ram(host):
    assert admin(host, "SHOW shared_buffers") == "128MB"       # 25 % of 512 MiB
    assert admin(host, "SHOW effective_cache_size") == "384MB"  # 75 %
    assert admin(host, "SHOW password_encryption") == "scram-sha-256"


def test_backup_timer_is_scheduled(host):
    timer = host.service("sciops-postgres-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
    next_run = host.run("systemctl show sciops-postgres-backup.timer -p NextElapseUSecRealtime --value").stdout.strip()
    assert next_run and next_run != "n/a", next_run


def _dumps(host):
    out = host.run("ls -1 /var/backups/postgresql/")
    return sorted(f for f in out.stdout.split() if f.startswith("appdb-") and f.endswith(".dump"))


def test_triggered_backup_restores_and_uploads_and_retention_holds(host, client):
    for _ in range(4):
        run = host.run("systemctl start sciops-postgres-backup.service")
        assert run.rc == 0, host.run("journalctl -u sciops-postgres-backup.service -n 30 --no-pager").stdout
        time.sleep(1.1)  # dumps are named by the second
    dumps = _dumps(host)
    assert len(dumps) == 3, dumps  # postgres_backup_keep_count: 3
    assert host.file(f"/var/backups/postgresql/{dumps[-1]}").mode == 0o600
    listing = host.run(f"pg_restore --list /var/backups/postgresql/{dumps[-1]}")
    assert listing.rc == 0, listing.stderr
    assert "TABLE public t_owner app_owner" in listing.stdout
    keys = client.run(
        "/opt/moto/bin/python -c \"import boto3; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:5000', "
        "region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='x'); "
        "print('\\n'.join(o['Key'] for o in s3.list_objects_v2(Bucket='sciops-test-backups')['Contents']))\"")
    assert keys.rc == 0, keys.stderr
    assert f"postgresql/{dumps[-1]}" in keys.stdout.split()


def _checksum(host):
    return admin(host, "SELECT count(*) || ':' || md5(string_agg(id::text || v, ',' ORDER BY id)) FROM items")


def test_dump_drop_restore_brings_every_row_back(host, tmp_path):
    admin(host, "DROP TABLE IF EXISTS items; CREATE TABLE items (id int primary key, v text); "
                "ALTER TABLE items OWNER TO app_owner; "
                "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
    before = _checksum(host)
    assert before.startswith("5000:")
    dump = tmp_path / "appdb.dump"

    run = run_playbook("playbooks/db_dump.yml", extra_vars={"db_name": "appdb", "db_dump_file": dump})
    assert run.rc == 0, run.output
    assert dump.stat().st_size > 0
    assert dump.stat().st_mode & 0o777 == 0o600

    # A database holding data is not overwritten without the confirmation variable.
    refused = run_playbook("playbooks/db_restore.yml", extra_vars={"db_name": "appdb", "db_dump_file": dump})
    assert refused.rc != 0
    assert "db_restore_overwrite=true" in refused.output
    assert _checksum(host) == before

    # Drop the data and the whole database, then restore: every row is back.
    admin(host, "DROP DATABASE appdb WITH (FORCE)", dbname="postgres")
    run = run_playbook("playbooks/db_restore.yml", extra_vars={"db_name": "appdb", "db_dump_file": dump})
    assert run.rc == 0, run.output
    assert _checksum(host) == before
    assert admin(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'appdb'") == "app_owner"

    # Overwrite an existing database with changed data, confirmed.
    admin(host, "DELETE FROM items WHERE id % 2 = 0")
    run = run_playbook("playbooks/db_restore.yml",
                       extra_vars={"db_name": "appdb", "db_dump_file": dump, "db_restore_overwrite": "true"})
    assert run.rc == 0, run.output
    assert _checksum(host) == before


def test_restore_creates_a_missing_owner_role(host, tmp_path):
    admin(host, "CREATE ROLE legacy_owner LOGIN; CREATE DATABASE legacydb OWNER legacy_owner", dbname="postgres")
    admin(host, "CREATE TABLE t (id int); ALTER TABLE t OWNER TO legacy_owner; INSERT INTO t VALUES (1), (2)", dbname="legacydb")
    dump = tmp_path / "legacydb.dump"
    assert run_playbook("playbooks/db_dump.yml", extra_vars={"db_name": "legacydb", "db_dump_file": dump}).rc == 0
    admin(host, "DROP DATABASE legacydb WITH (FORCE); DROP ROLE legacy_owner", dbname="postgres")
    run = run_playbook("playbooks/db_restore.yml", extra_vars={"db_name": "legacydb", "db_dump_file": dump})
    assert run.rc == 0, run.output
    assert admin(host, "SELECT string_agg(id::text, ',' ORDER BY id) || ' ' || pg_get_userbyid(relowner) "
                       "FROM t JOIN pg_class ON relname = 't' GROUP BY relowner", dbname="legacydb") == "1,2 legacy_owner"
    admin(host, "DROP DATABASE legacydb WITH (FORCE); DROP ROLE legacy_owner", dbname="postgres")


def test_check_mode_on_converged_node_changes_nothing_and_shows_no_secret(host):
    run = run_playbook(CONVERGE, "--check", "--diff", "-v")
    assert run.rc == 0, run.output
    assert run.total("changed") == 0, run.output
    assert run.total("failed") == 0
    for secret in [*PASSWORDS.values(), S3_SECRET]:
        assert secret not in run.output


def _config_state(host):
    conf = host.file("/etc/postgresql/15/main/conf.d/50-sciops.conf").content_string
    started = host.run(f"systemctl show {SERVICE} -p ExecMainStartTimestamp --value").stdout
    return conf, started


@pytest.mark.parametrize("extra, names", [
    ({"postgres_port": "not-a-port"}, "postgres_port"),
    ({"postgres_password_encryption": "plain"}, "postgres_password_encryption"),
    ({"postgres_databases": '[{"nmae": "typo"}]'}, "postgres_databases"),
])
def test_bad_input_fails_before_any_change(host, extra, names):
    before = _config_state(host)
    args = []
    for key, value in extra.items():
        args += ["-e", f"{key}={value}" if not value.startswith("[") else f'{{"{key}": {value}}}']
    run = run_playbook(CONVERGE, *args)
    assert run.rc != 0
    assert "Validating arguments against arg spec" in run.output
    assert names in run.output
    assert run.total("changed") == 0
    assert _config_state(host) == before


def test_major_version_change_is_refused(host):
    before = _config_state(host)
    run = run_playbook(CONVERGE, "-e", "postgres_version=16")
    assert run.rc != 0
    assert "PostgreSQL 15 holds data" in run.output
    assert "postgres_allow_major_upgrade" in run.output
    assert run.total("changed") == 0
    assert not host.package("postgresql-16").is_installed
    assert _config_state(host) == before
    assert host.service(SERVICE).is_running
