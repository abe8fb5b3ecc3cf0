"""Behaviour of the postgres role on the scenario's database node (mol-pg-db), checked from
the node itself and from a second node (mol-pg-client) on the same network."""
import base64
import json
import os
import shlex
import subprocess
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


def test_plain_rule_only_for_the_legacy_client_address(host, client):
    # app_reader may log in without TLS, but only from the client's own address (host rule
    # scoped to 172.30.42.20/32) ...
    plain = psql(client, "app_reader", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", sslmode="disable")
    assert plain.rc == 0, plain.stderr
    assert plain.stdout.strip() == "f"
    # ... from any other address of the network it needs TLS (the hostssl rule).
    other = psql(host, "app_reader", "SELECT 1", sslmode="disable")
    assert other.rc != 0
    assert 'no pg_hba.conf entry for host "172.30.42.10", user "app_reader", database "appdb", no encryption' in other.stderr
    assert psql(host, "app_reader", "SELECT 1").rc == 0


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
    # Refused by the role's argument specs, or before them by the validation play that
    # playbooks/postgres.yml may import first (the same specs, one line per variable).
    assert "Validating arguments against arg spec" in run.output or "PLAY [Validate the inputs]" in run.output
    assert names in run.output
    assert run.total("changed") == 0
    assert _config_state(host) == before


def test_major_version_change_is_refused(host):
    before = _config_state(host)
    run = run_playbook(CONVERGE, "-e", '{"postgres_version": 16}')
    assert run.rc != 0
    assert "PostgreSQL 15 holds data" in run.output
    assert "postgres_allow_major_upgrade" in run.output
    assert run.total("changed") == 0
    assert not host.package("postgresql-16").is_installed
    assert _config_state(host) == before
    assert host.service(SERVICE).is_running


# --- issue 11: db_dump / db_restore refusals, backup failures, clean shutdown ----------------

def _server_state(host):
    """Roles and databases of the server, and what the playbooks left in their working folders."""
    roles = admin(host, "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles", dbname="postgres")
    dbs = admin(host, "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database",
                dbname="postgres")
    files = host.run("ls -A /var/tmp/sciops-db 2>/dev/null; ls -d /tmp/ansible.* 2>/dev/null").stdout.split()
    return roles, dbs, files


def _items_state(host, dbname):
    checksum = admin(host, "SELECT count(*) || ':' || md5(string_agg(id::text || v, ',' ORDER BY id)) FROM items", dbname=dbname)
    owner = admin(host, f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{dbname}'", dbname="postgres")
    return checksum, owner


def _make_db(host, name, owner, rows):
    admin(host, f"DROP DATABASE IF EXISTS {name} WITH (FORCE); CREATE DATABASE {name} OWNER {owner}", dbname="postgres")
    admin(host, f"CREATE TABLE items (id int primary key, v text); ALTER TABLE items OWNER TO {owner}; "
                f"INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, {rows}) g", dbname=name)


def _dump_on_node(host, dbname, path):
    """A dump like db_dump.yml's (pg_dump custom format), made directly: cheaper than the playbook."""
    out = host.run(f"sudo -u postgres pg_dump --format=custom {dbname} | base64 -w0")
    assert out.rc == 0, out.stderr
    path.write_bytes(base64.b64decode(out.stdout))


def test_restore_refuses_a_dump_of_another_database(host, tmp_path):
    _make_db(host, "targetdb", "app_owner", 300)
    _make_db(host, "otherdb", "app_reader", 7)
    dump = tmp_path / "otherdb.dump"
    _dump_on_node(host, "otherdb", dump)
    before = _items_state(host, "targetdb")
    state = _server_state(host)

    refused = run_playbook("playbooks/db_restore.yml",
                           extra_vars={"db_name": "targetdb", "db_dump_file": dump, "db_restore_overwrite": "true"})
    assert refused.rc != 0
    assert f"{dump} holds database 'otherdb', not 'targetdb'" in refused.output, refused.output
    assert "-e db_restore_rename=true" in refused.output
    assert _items_state(host, "targetdb") == before
    assert _server_state(host) == state

    bad = run_playbook("playbooks/db_restore.yml",
                       extra_vars={"db_name": "targetdb", "db_dump_file": dump, "db_restore_rename": "perhaps"})
    assert bad.rc != 0
    assert "db_restore_rename must be a boolean; got the string 'perhaps'" in bad.output
    assert _items_state(host, "targetdb") == before

    # Loading it under another name is possible when said so explicitly.
    renamed = run_playbook("playbooks/db_restore.yml",
                           extra_vars={"db_name": "copydb", "db_dump_file": dump, "db_restore_rename": "true"})
    assert renamed.rc == 0, renamed.output
    assert _items_state(host, "copydb") == _items_state(host, "otherdb")
    admin(host, "DROP DATABASE targetdb WITH (FORCE); DROP DATABASE otherdb WITH (FORCE); DROP DATABASE copydb WITH (FORCE)",
          dbname="postgres")


def test_unreadable_dump_is_refused_before_the_server_is_touched(host, tmp_path):
    admin(host, "DROP DATABASE IF EXISTS truncdb WITH (FORCE); DROP ROLE IF EXISTS trunc_owner; "
                "CREATE ROLE trunc_owner LOGIN; CREATE DATABASE truncdb OWNER trunc_owner", dbname="postgres")
    admin(host, "CREATE TABLE t (id int); ALTER TABLE t OWNER TO trunc_owner", dbname="truncdb")
    dump = tmp_path / "truncdb.dump"
    _dump_on_node(host, "truncdb", dump)
    admin(host, "DROP DATABASE truncdb WITH (FORCE); DROP ROLE trunc_owner", dbname="postgres")
    state = _server_state(host)
    whole = dump.read_bytes()
    for name, content in [("header.dump", whole[:300]), ("truncated.dump", whole[:-60])]:
        bad = tmp_path / name
        bad.write_bytes(content)
        run = run_playbook("playbooks/db_restore.yml", extra_vars={"db_name": "truncdb", "db_dump_file": bad})
        assert run.rc != 0
        assert f"db_dump_file {bad} is not a readable dump" in run.output, run.output
        assert _server_state(host) == state


def test_failed_restore_leaves_no_role_no_database_no_file(host, tmp_path):
    # A dump that lists fine but whose restore fails: it needs an extension the server lacks
    # by restore time (its control file is moved away for the test).
    admin(host, "DROP DATABASE IF EXISTS brokendb WITH (FORCE); DROP DATABASE IF EXISTS brokendb__restore WITH (FORCE); "
                "DROP ROLE IF EXISTS broken_owner; CREATE ROLE broken_owner LOGIN; CREATE DATABASE brokendb OWNER broken_owner",
          dbname="postgres")
    admin(host, "CREATE EXTENSION hstore; CREATE TABLE t (h hstore); ALTER TABLE t OWNER TO broken_owner", dbname="brokendb")
    dump = tmp_path / "brokendb.dump"
    _dump_on_node(host, "brokendb", dump)
    admin(host, "DROP DATABASE brokendb WITH (FORCE); DROP ROLE broken_owner", dbname="postgres")
    control = "/usr/share/postgresql/15/extension/hstore.control"
    state = _server_state(host)
    assert host.run(f"mv {control} {control}.away").rc == 0
    try:
        run = run_playbook("playbooks/db_restore.yml", extra_vars={"db_name": "brokendb", "db_dump_file": dump})
    finally:
        assert host.run(f"mv {control}.away {control}").rc == 0
    assert run.rc != 0
    assert "Restoring" in run.output and "failed" in run.output
    assert _server_state(host) == state


def test_db_dump_and_restore_name_what_is_wrong(host, tmp_path):
    missing = tmp_path / "x.dump"
    run = run_playbook("playbooks/db_restore.yml", extra_vars={"db_name": "appdb", "db_dump_file": missing})
    assert run.rc != 0
    assert (f"db_dump_file {missing} does not exist on the controller: give the path of a dump made by db_dump.yml"
            in run.output), run.output
    assert "Unknown error" not in run.output
    run = run_playbook("playbooks/db_dump.yml", extra_vars={"db_name": "nmpx"})
    assert run.rc != 0
    assert "Database 'nmpx' does not exist on mol-pg-db; databases: appdb, hostdb, postgres" in run.output, run.output
    assert "Unknown error" not in run.output


BACKUP_DIR = "/var/backups/postgresql"


def _backup_status(tmp_path):
    out = tmp_path / "status.json"
    run = run_playbook("molecule/postgres/backup_status.yml", extra_vars={"backup_status_out": out})
    assert run.rc == 0, run.output
    return run.output, {s["database"]: s for s in json.loads(out.read_text())}


def test_failed_backup_leaves_no_partial_and_is_reported(host, tmp_path):
    assert host.run("systemctl start sciops-postgres-backup.service").rc == 0
    good = _dumps(host)[-1]
    stale = f"{BACKUP_DIR}/appdb-20200101T000000Z.dump.partial"
    host.run(f"install -o postgres -g postgres -m 0600 /dev/null {stale} && touch -d '2 days ago' {stale}")
    time.sleep(1.1)
    admin(host, "ALTER DATABASE appdb WITH ALLOW_CONNECTIONS false", dbname="postgres")
    try:
        run = host.run("systemctl start sciops-postgres-backup.service")
        failed = host.run("systemctl is-failed sciops-postgres-backup.service").stdout.strip()
        partials = host.run(f"ls -A {BACKUP_DIR}").stdout.split()
        output, status = _backup_status(tmp_path)
    finally:
        admin(host, "ALTER DATABASE appdb WITH ALLOW_CONNECTIONS true", dbname="postgres")
    assert run.rc != 0
    assert failed == "failed"
    assert [f for f in partials if f.endswith(".partial")] == [], partials
    assert good in partials  # the older good backup is kept
    assert status["appdb"]["newest"] == f"{BACKUP_DIR}/{good}"
    assert status["appdb"]["last_run_failed"] is True
    assert 0 <= status["appdb"]["age_hours"] < 1
    assert f"appdb: newest good backup {BACKUP_DIR}/{good}" in output
    assert "last run FAILED" in output

    # The next good run clears the failure; the report says so.
    assert host.run("systemctl start sciops-postgres-backup.service").rc == 0
    assert host.run("systemctl is-failed sciops-postgres-backup.service").stdout.strip() != "failed"
    _, status = _backup_status(tmp_path)
    assert status["appdb"]["last_run_failed"] is False
    assert status["appdb"]["newest"] == f"{BACKUP_DIR}/{_dumps(host)[-1]}"


def test_node_restart_shuts_postgres_down_cleanly(host):
    log = "/var/log/postgresql/postgresql-15-main.log"
    offset = int(host.run(f"stat -c %s {log}").stdout)
    name = "mol-pg-db"
    subprocess.run(["docker", "restart", name], check=True, timeout=180)
    for _ in range(60):
        if host.run(f"systemctl is-active {SERVICE}").stdout.strip() == "active" and \
                host.run("sudo -u postgres psql -XAtqc 'SELECT 1'").stdout.strip() == "1":
            break
        time.sleep(1)
    assert admin(host, "SELECT 1", dbname="postgres") == "1"
    new = host.run(f"tail -c +{offset + 1} {log}").stdout
    assert "database system was shut down at" in new, new
    assert "interrupted" not in new and "automatic recovery" not in new, new
    info = json.loads(subprocess.run(["docker", "inspect", name], check=True, capture_output=True, text=True).stdout)[0]
    assert info["Config"]["StopSignal"] == "SIGRTMIN+3"
    assert info["Config"]["StopTimeout"] >= 60
