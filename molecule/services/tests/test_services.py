"""The web services as data, checked from outside: the real job-queue API v3 on two app nodes,
a WebSocket application and the fault-injection fixture on one of them, upstream's splash site,
all behind a front door on its own node (mol-svc-fd). Requests go from this machine to the
front door, as a user's would."""
import json
import os
import re
import stat
import ssl
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import testinfra.utils.ansible_runner
import yaml

from sciops_testing import PROJECT, node, run_playbook, start_playbook
import ws_client
from http_load import Load, latency

# Every test takes the front door as `host`, so pytest keeps them in this file's order (tests
# without the module-scoped fixture would be moved after the others), which the scenario needs.
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("frontdoor")

FRONT = "172.30.43.5"
APPS = {"mol-svc-app1": "172.30.43.21", "mol-svc-app2": "172.30.43.22"}
SECRETS = ["svc-db-Pw-31c9", "svc-session-Key-8a1f", "svc-oidc-Secret-77d2"]
PROVIDER_KEY = "uman-test-key-" + uuid.uuid4().hex[:12]
LAST_ACTION_S = 0.0
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE  # the front door's self-signed placeholders


def call(path="/", name="nmpi.test", method="GET", body=None, scheme="https", timeout=10, headers=None):
    """One request to the front door; returns (status, body bytes, response headers)."""
    req = urllib.request.Request(f"{scheme}://{FRONT}{path}", method=method, data=body,
                                 headers={"Host": name, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=TLS if scheme == "https" else None) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


def json_call(*args, **kwargs):
    status, body, _ = call(*args, **kwargs)
    try:
        return status, json.loads(body or b"null")
    except ValueError:
        return status, None


def playbook(name, *args, **extra):
    return run_playbook(f"playbooks/{name}.yml", "-v", *args, extra_vars=extra)


def psql(sql):
    db = node("mol-svc-db")
    return db.check_output(f"sudo -u postgres psql -d nmpi -tAc {json.dumps(sql)}")


def under_load(action, path="/", name="nmpi.test", threads=4, period=0.08):
    """Run action() while `threads` clients poll the front door (about 50 requests a second);
    returns (action's result, [(status or error, body)]); the action's wall time is in LAST_ACTION_S."""
    global LAST_ACTION_S
    results, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            started = time.monotonic()
            try:
                status, body, _ = call(path, name=name, timeout=5)
                results.append((status, body))
            except Exception as exc:  # a refused or broken connection is a failed request
                results.append((repr(exc), None))
            time.sleep(max(0.0, period - (time.monotonic() - started)))

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for worker in workers:
        worker.start()
    time.sleep(1)
    started = time.monotonic()
    try:
        outcome = action()
    finally:
        LAST_ACTION_S = time.monotonic() - started
        time.sleep(1)
        stop.set()
        for worker in workers:
            worker.join()
    return outcome, results


def live(service="nmpi_queue"):
    """The colour the front door serves: its live link, which nginx reads at each request."""
    return node("mol-svc-fd").check_output(f"readlink /etc/sciops/frontdoor/{service}/live")


def nginx_processes():
    """nginx's master and worker PIDs: a reload replaces the workers."""
    return node("mol-svc-fd").check_output("pgrep -d, nginx")


def journal(host, unit):
    return node(host).check_output(f"journalctl -u {unit} --no-pager -o cat")


def unit_started(host, unit):
    return int(node(host).check_output(f"systemctl show -p ActiveEnterTimestampMonotonic --value {unit}"))


# --- the real job-queue API v3 -------------------------------------------------------------------

def test_real_api_serves_its_description_and_docs_through_the_front_door(host):
    status, about = json_call("/")
    assert status == 200 and about["version"] == "3" and about["status"] == "ok"
    status, body, headers = call("/docs")
    assert status == 200 and b"swagger" in body.lower()
    # HTTP is served too while the front door has only its placeholder certificate
    assert json_call("/", scheme="http")[0] == 200


def test_bootstrap_created_the_real_schema(host):
    # upstream's 12 tables (simqueue/db.py); the fault-injection fixture adds fixture_jobs
    tables = set(psql("select tablename from pg_tables where schemaname = 'public'").split()) - {"fixture_jobs"}
    assert tables == {
        "quotas_project", "quotas_quota", "simqueue_comment", "simqueue_dataitem", "simqueue_job",
        "simqueue_job_input_data", "simqueue_job_output_data", "simqueue_log", "simqueue_session",
        "taggit_tag", "taggit_taggeditem", "tastypie_apikey"}
    owners = set(psql("select tableowner from pg_tables where schemaname = 'public'").split())
    assert owners == {"nmpi_dbadmin"}


def test_health_gate_reads_the_database(host):
    # the gate asks a route that reads the database, not only /
    app = node("mol-svc-app1")
    unit = app.file("/etc/systemd/system/nmpi_queue-blue.service").content_string
    assert "--host 172.30.43.21" in unit  # the front door is on another node
    status = app.check_output("curl -s -o /dev/null -w '%{http_code}' http://172.30.43.21:8101/statistics/queue-length")
    assert status == "200"


def test_a_provider_reads_and_updates_a_job_with_an_api_key_stored_in_the_database(host):
    # user 3 is the SpiNNaker provider in upstream's own table of providers (simqueue/db.py)
    psql(f"insert into tastypie_apikey (key, created, user_id) values ('{PROVIDER_KEY}', now(), 3)")
    job_id = psql("insert into simqueue_job (code, command, collab_id, user_id, status, hardware_platform, "
                  "timestamp_submission) values ('import pyNN.spiNNaker as sim', 'run.py', 'molecule', 'alice', "
                  "'submitted', 'SpiNNaker', now()) returning id").splitlines()[0]
    key = {"x-api-key": PROVIDER_KEY}
    status, jobs = json_call("/jobs/?status=submitted&hardware_platform=SpiNNaker", headers=key)
    assert status == 200 and int(job_id) in [job["id"] for job in jobs]
    status, job = json_call(f"/jobs/{job_id}", method="PUT", body=b'{"status": "running"}',
                            headers={**key, "Content-Type": "application/json"})
    assert status == 200 and job["status"] == "running"
    assert psql(f"select status from simqueue_job where id = {job_id}") == "running"
    # a wrong key is refused (upstream answers 500 instead of 403: a KeyError in its key lookup)
    status, _ = json_call("/jobs/?status=submitted&hardware_platform=SpiNNaker", headers={"x-api-key": "wrong"})
    assert status in (403, 500)
    assert json_call("/jobs/?status=submitted&hardware_platform=SpiNNaker")[0] == 401


def test_requests_reach_every_app_node(host):
    probe = uuid.uuid4().hex
    for i in range(24):
        assert call(f"/?probe={probe}-{i}")[0] == 200
    for name in APPS:
        assert f"probe={probe}" in journal(name, "nmpi_queue-blue"), f"no request reached {name}"


def test_colour_ports_answer_the_front_door_only(host):
    for address in APPS.values():
        assert host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://{address}:8101/") == "200"
        refused = node("mol-svc-db").run(f"curl -s -m 3 -o /dev/null http://{address}:8101/")
        assert refused.rc != 0, f"{address}:8101 answered the database node"
    with socket.socket() as sock:
        sock.settimeout(3)
        assert sock.connect_ex(("172.30.43.21", 8101)) != 0, "a colour port answered this machine"


def test_the_colour_unit_runs_the_app_server_as_the_service_user(host):
    for name in APPS:
        app = node(name)
        pid = int(app.check_output("systemctl show -p MainPID --value nmpi_queue-blue") or 0)
        assert pid > 0, f"nmpi_queue-blue has no main process on {name}"
        uid = app.check_output("id -u nmpi_queue")
        assert app.check_output(f"ps -o uid= -p {pid}").strip() == uid, f"{name}: the app server does not run as nmpi_queue"
        args = app.check_output(f"ps -o args= -p {pid}")
        assert "/srv/nmpi_queue/blue/venv/bin/uvicorn" in args and "simqueue.main:app" in args, args
        # the listening socket on the colour's port is owned by the service user, in the unit's cgroup
        listener = app.check_output("ss -Hltne 'sport = :8101'")
        assert f"uid:{uid} " in listener and "/nmpi_queue-blue.service" in listener, f"{name}: {listener}"


def test_one_virtualenv_was_built_for_both_app_nodes(host):
    # webservice_venv_share: pip ran on mol-svc-app1 only and mol-svc-app2 got a copy of its
    # virtualenv, so both hold the same files with the same times (two pip installs would differ
    # in their files' times), and the copy runs (the previous tests reached both nodes).
    listing = "cd /srv/nmpi_queue/blue/venv && find . -type f -exec stat -c '%n %s %Y' {} + | sort | sha1sum"
    digests = {name: node(name).check_output(listing) for name in APPS}
    assert len(set(digests.values())) == 1, digests
    assert node("mol-svc-app2").file("/srv/nmpi_queue/blue/venv/.sciops-runtime").content_string.strip()


def test_data_directory_is_kept_outside_releases_and_writable_by_the_service(host):
    app = node("mol-svc-app1")
    env = app.file("/etc/sciops/services/nmpi_queue/blue.env").content_string
    assert 'NMPI_TMP_FILE_ROOT="/var/lib/sciops/nmpi_queue/tmp_download"' in env
    write = app.run("systemd-run --quiet --wait --pipe --collect --property=User=nmpi_queue "
                    "--property=ReadWritePaths=/var/lib/sciops/nmpi_queue/tmp_download "
                    "/bin/sh -c 'echo ok > /var/lib/sciops/nmpi_queue/tmp_download/probe.txt'")
    assert write.rc == 0, write.stderr
    assert app.file("/var/lib/sciops/nmpi_queue/tmp_download/probe.txt").user == "nmpi_queue"


def test_second_converge_restarted_no_colour(host):
    # molecule's idempotence step ran converge again; a restart would start the unit after the
    # record that the first converge wrote once its health check passed.
    for name in APPS:
        app = node(name)
        started = app.check_output("systemctl show -p ActiveEnterTimestamp --value nmpi_queue-blue")
        started_at = int(app.check_output(f"date -d '{started}' +%s"))
        recorded_at = int(app.check_output("stat -c %Y /etc/sciops/services/nmpi_queue/blue.json"))
        assert started_at <= recorded_at, f"nmpi_queue-blue on {name} restarted after its release was recorded"


def test_deploy_green_leaves_blue_live_and_shows_no_secret(host):
    run = playbook("deploy_service", service="nmpi_queue", colour="green", version="v3-green")
    assert run.rc == 0, run.output
    for secret in SECRETS:
        assert secret not in run.output
    for name, address in APPS.items():
        assert node(name).service("nmpi_queue-green").is_running
        assert host.check_output(f"curl -s -o /dev/null -w '%{{http_code}}' http://{address}:8102/statistics/queue-length") == "200"
    assert "127.0.0.1" not in host.file("/etc/nginx/conf.d/sciops-nmpi_queue.conf").content_string
    assert live() == "blue"


def test_deploying_over_the_live_colour_is_refused(host):
    run = playbook("deploy_service", service="nmpi_queue", colour="blue")
    assert run.rc != 0
    assert "blue is the live colour of nmpi_queue" in run.output


def test_switch_and_rollback_under_load_fail_no_request_on_both_nodes(host):
    """Keep-alive clients and new-connection clients at once: a switch moves the live link, with
    no nginx reload, so no idle keep-alive connection is closed under a client's request."""
    probe = uuid.uuid4().hex
    path = f"/?probe={probe}"
    for colour, action in (("green", lambda: playbook("switch_colour", service="nmpi_queue", colour="green")),
                           ("blue", lambda: playbook("rollback", service="nmpi_queue"))):
        processes = nginx_processes()
        with Load(FRONT, "nmpi.test", path=path, clients=4, keepalive=True) as kept, \
                Load(FRONT, "nmpi.test", path=path, clients=2, keepalive=False) as fresh:
            started = time.monotonic()
            run = action()
            took = time.monotonic() - started
        assert run.rc == 0, run.output
        assert live() == colour
        assert not kept.failed(), kept.failed()[:5]
        assert not fresh.failed(), fresh.failed()[:5]
        assert len(kept.results) > 50 and len(fresh.results) > 20
        assert nginx_processes() == processes, "the switch reloaded nginx"
        print(f"\n[two app nodes] switch to {colour} under load, {took:.1f} s: {kept.summary()}; {fresh.summary()}")
    for name in APPS:
        assert f"probe={probe}" in journal(name, "nmpi_queue-green"), f"green on {name} got no request"


def test_an_interrupted_switch_leaves_a_state_the_next_run_reads(host):
    """switch_colour.yml killed at several points: what nginx serves is always the recorded live
    colour (the link is both), and the next run completes the switch."""
    for delay in (2.0, 3.5, 5.0):
        before = live()
        target = "green" if before == "blue" else "blue"
        proc = start_playbook("playbooks/switch_colour.yml", extra_vars={"service": "nmpi_queue", "colour": target})
        time.sleep(delay)
        proc.kill()
        proc.wait()
        time.sleep(1)  # a module already on the node finishes or not; either state is complete
        recorded = live()
        assert recorded in (before, target)
        probe = uuid.uuid4().hex
        assert call(f"/?probe={probe}")[0] == 200
        served = []
        for _ in range(10):  # the access-log line reaches the journal within moments
            served = [c for c in ("blue", "green") if any(f"probe={probe}" in journal(n, f"nmpi_queue-{c}") for n in APPS)]
            if served:
                break
            time.sleep(0.5)
        assert served == [recorded], f"killed after {delay} s: the record says {recorded}, nginx served {served}"
        finish = playbook("switch_colour", service="nmpi_queue", colour=target)
        assert finish.rc == 0, finish.output
        assert live() == target
    # back to blue, as the later tests expect
    if live() != "blue":
        assert playbook("switch_colour", service="nmpi_queue", colour="blue").rc == 0


def test_keepalive_requests_do_not_wait_for_delayed_acks(host):
    """No ~40 ms Nagle/delayed-ACK stall on reused connections: at the colour's port on the node,
    and through the front door from outside (keep-alive and new connections)."""
    fd = node("mol-svc-fd")
    urls = " ".join(["-o /dev/null http://172.30.43.21:8101/"] * 40)  # one curl: one reused connection
    times = [float(t) for t in fd.check_output(f"curl -s -w '%{{time_total}}\\n' {urls}").split()]
    direct = sorted(times[1:])[len(times[1:]) // 2] * 1000  # the first one opens the connection
    kept = latency(FRONT, "nmpi.test", requests=200, keepalive=True)
    fresh = latency(FRONT, "nmpi.test", requests=100, keepalive=False)
    print(f"\n[latency] at the colour's port, one reused connection: p50 {direct:.1f} ms; through the front door: "
          f"keep-alive p50 {kept[0]:.1f} ms p99 {kept[1]:.1f} ms, new connections p50 {fresh[0]:.1f} ms p99 {fresh[1]:.1f} ms")
    assert kept[2] == 0 and fresh[2] == 0
    assert direct < 20, f"a reused connection to the colour waits {direct:.1f} ms (Nagle with delayed ACK?)"
    assert kept[0] < 20, f"keep-alive requests through the front door take {kept[0]:.1f} ms"


def test_converge_under_load_loses_no_request_and_restarts_nothing(host):
    before = {name: unit_started(name, "nmpi_queue-blue") for name in APPS}
    run, results = under_load(lambda: run_playbook("molecule/services/converge.yml"))
    assert run.rc == 0, run.output
    assert run.total("changed") == 0, run.output
    assert not [r for r in results if r[0] != 200]
    assert {name: unit_started(name, "nmpi_queue-blue") for name in APPS} == before


def test_dns_method_points_the_name_at_the_front_door(host, monkeypatch):
    sys.path.insert(0, str(PROJECT))
    from tests.servers.godaddy import GoDaddyServer

    server = GoDaddyServer(domains=("test",)).start()
    try:
        monkeypatch.setenv("GODADDY_API_KEY", server.key)
        monkeypatch.setenv("GODADDY_API_SECRET", server.secret)
        run = run_playbook("playbooks/switch_colour.yml", "-v", extra_vars={
            "service": "nmpi_queue", "colour": "green", "method": "dns", "dns_domain": "test",
            "dns_godaddy_base_url": server.url})
        assert run.rc == 0, run.output
        assert [r["data"] for r in server.records("test", "A", "nmpi")] == [FRONT]
        assert list(server.writes()), "the A record was written"
        assert server.key not in run.output and server.secret not in run.output
        assert server.violations == []
    finally:
        server.stop()
    assert live() == "green"
    assert playbook("rollback", service="nmpi_queue").rc == 0
    assert live() == "blue"


def test_maintenance_modes_of_the_real_api_without_a_redeploy(host):
    release_before = node("mol-svc-app1").check_output("readlink /srv/nmpi_queue/blue")
    key = {"x-api-key": PROVIDER_KEY}
    listing = "/jobs/?status=submitted&hardware_platform=SpiNNaker"
    try:
        assert playbook("service_maintenance", service="nmpi_queue", status="down").rc == 0
        assert json_call(listing, headers=key)[0] == 503
        assert json_call("/")[0] == 200 and json_call("/")[1]["status"] == "down"
        assert playbook("service_maintenance", service="nmpi_queue", status="read-only").rc == 0
        assert json_call(listing, headers=key)[0] == 200
        assert json_call("/jobs/1", method="PUT", body=b"{}", headers={**key, "Content-Type": "application/json"})[0] == 503
    finally:
        assert playbook("service_maintenance", service="nmpi_queue", status="ok").rc == 0
    assert json_call(listing, headers=key)[0] == 200
    assert node("mol-svc-app1").check_output("readlink /srv/nmpi_queue/blue") == release_before


# --- the front door ------------------------------------------------------------------------------

def test_front_door_sends_security_headers_and_no_version(host):
    status, _, headers = call("/")
    assert status == 200
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "SAMEORIGIN"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert headers["Server"] == "nginx"  # no version token


def test_static_site_from_upstream_is_served(host):
    status, body, headers = call("/", name="www.test")
    assert status == 200 and b"<html" in body.lower()
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert call("/styles/main.093d5d20.css", name="www.test")[0] == 200


def test_websocket_through_the_front_door_survives_a_switch_of_another_service(host):
    status, about = json_call("/", name="echo.test")
    assert status == 200 and about["service"] == "echo"
    # the other service's idle colour first: the switch itself takes seconds, well inside the
    # server's WebSocket ping timeout (uvicorn: 20 s), which the idle client does not answer
    assert playbook("deploy_service", service="fixture", colour="green", version="ws-switch").rc == 0
    conn = ws_client.connect(FRONT, 443, "/ws", server_name="echo.test")
    try:
        conn.send_text("before")
        assert conn.recv_text() == "before"
        switch = playbook("switch_colour", service="fixture", colour="green")
        assert switch.rc == 0, switch.output
        assert json_call("/", name="fixture.test")[1]["colour"] == "green"
        for i in range(20):
            conn.send_text(f"after {i} " + "x" * 1000)
            assert conn.recv_text() == f"after {i} " + "x" * 1000
    finally:
        conn.close()
        assert playbook("rollback", service="fixture").rc == 0


def test_a_service_added_as_data_deploys_switches_and_terminates(host):
    """A copy of the splash site under another name, from the services list alone."""
    services = yaml.safe_load((PROJECT / "molecule/services/group_vars/all/main.yml").read_text())["webservice_services"]
    splash2 = dict(next(s for s in services if s["name"] == "splash"), name="splash2", server_name="www2.test")
    extra = ["-e", json.dumps({"webservice_services": services + [splash2]})]
    assert playbook("deploy_service", *extra, service="splash2", colour="blue").rc == 0
    run = playbook("switch_colour", *extra, service="splash2", colour="blue")
    assert run.rc == 0, run.output
    assert call("/", name="www2.test")[0] == 200
    assert playbook("deploy_service", *extra, service="splash2", colour="green", version="v2").rc == 0
    assert playbook("switch_colour", *extra, service="splash2", colour="green").rc == 0
    assert live("splash2") == "green"
    assert call("/", name="www2.test")[0] == 200
    refused = playbook("terminate_service", *extra, service="splash2", colour="green")
    assert refused.rc != 0 and "switch to the other colour first" in refused.output
    assert playbook("terminate_service", *extra, service="splash2", colour="blue").rc == 0
    assert not host.file("/srv/splash2/blue").exists
    assert call("/", name="www2.test")[0] == 200


def test_unknown_or_missing_service_is_an_error_listing_the_known_ones(host):
    for extra in ({"service": "nmpi"}, {}):
        run = playbook("switch_colour", colour="green", **extra)
        assert run.rc != 0
        assert "known services: nmpi_queue, fixture, echo, splash" in run.output, run.output


# --- broken releases, the container method, operations (the fault-injection fixture) ---------------

def test_release_whose_bootstrap_fails_is_refused(host):
    run = run_playbook("playbooks/deploy_service.yml", "-e", json.dumps(
        {"service": "fixture", "colour": "green", "version": "broken-bootstrap",
         "service_overrides": {"env": {"FIXTURE_FAIL_BOOTSTRAP": "1"}}}))
    assert run.rc != 0
    assert "The bootstrap step of fixture green (broken-bootstrap) failed" in run.output
    assert json_call("/", name="fixture.test")[1]["colour"] == "blue"


def test_unhealthy_release_is_refused_and_cannot_be_made_live(host):
    run = run_playbook("playbooks/deploy_service.yml", "-e", json.dumps(
        {"service": "fixture", "colour": "green", "version": "broken-health",
         "service_overrides": {"env": {"FIXTURE_FAIL_HEALTH": "1"}, "health_timeout": 6}}))
    assert run.rc != 0
    assert "did not answer 200" in run.output and "It was not made live" in run.output
    switch = playbook("switch_colour", service="fixture", colour="green")
    assert switch.rc != 0
    assert "Refusing to make fixture green live" in switch.output
    status, body = json_call("/", name="fixture.test")
    assert status == 200 and body["colour"] == "blue"


def test_container_method_deploys_and_serves(host):
    run = run_playbook("playbooks/deploy_service.yml", "-v", "-e", json.dumps(
        {"service": "fixture", "colour": "green", "version": "c1",
         "service_overrides": {"method": "container", "container": {"base_image": "sciops/node:debian12"},
                               "health_timeout": 90}}))
    assert run.rc == 0, run.output
    for secret in SECRETS:
        assert secret not in run.output
    app = node("mol-svc-app1")
    assert app.check_output("docker inspect -f '{{.State.Status}}' fixture-green") == "running"
    assert app.service("fixture-green").is_running  # the same unit runs the container
    switch = playbook("switch_colour", service="fixture", colour="green")
    assert switch.rc == 0, switch.output
    status, body = json_call("/", name="fixture.test")
    assert status == 200 and body["colour"] == "green" and body["version"] == "c1"
    status, created = json_call("/jobs", name="fixture.test", method="POST", body=b"{}")
    assert status == 201 and created["colour"] == "green"
    assert playbook("rollback", service="fixture").rc == 0
    assert json_call("/", name="fixture.test")[1]["colour"] == "blue"


def test_status_table_shows_what_runs_where(host):
    run = run_playbook("playbooks/service_status.yml")
    assert run.rc == 0, run.output
    rows = [line.split() for line in run.output.splitlines() if line.strip().startswith(("nmpi_queue ", "splash "))]
    by_key = {(r[0], r[1], r[4]): r for r in rows}
    for name, address in APPS.items():
        blue = by_key[("nmpi_queue", "blue", name)]
        assert blue[3] == "live" and blue[5] == f"{address}:8101" and blue[6] == "active" and blue[7] == "200"
        assert by_key[("nmpi_queue", "green", name)][3] == "idle"
    assert by_key[("splash", "blue", "mol-svc-fd")][3] == "live"


def test_logs_are_fetched_from_every_node(host):
    run = playbook("service_logs", service="nmpi_queue", colour="blue", lines=50)
    assert run.rc == 0, run.output
    written = {path: int(count) for count, path in re.findall(r"(\d+) lines in (\S+\.log)", run.output)}
    assert sorted(Path(p).name.split("-blue-")[1].rsplit("-", 1)[0] for p in written) == sorted(APPS), run.output
    for path, count in written.items():
        log = Path(path)
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, f"{log} is readable by others"
        lines = log.read_text().splitlines()
        assert 0 < count <= 50 and len(lines) == count, f"{log}: {len(lines)} lines, the playbook said {count}"
        # the journal of the unit: the app server's access-log lines of the requests made above
        assert any('"GET /' in line for line in lines), f"{log} holds no request of the app"
        for secret in SECRETS:
            assert secret not in log.read_text()
        log.unlink()


def test_terminate_refuses_the_live_colour_and_removes_the_idle_one(host):
    refused = playbook("terminate_service", service="nmpi_queue", colour="blue")
    assert refused.rc != 0 and "switch to the other colour first" in refused.output
    run = playbook("terminate_service", service="nmpi_queue", colour="green")
    assert run.rc == 0, run.output
    for name in APPS:
        assert not node(name).service("nmpi_queue-green").is_running
        assert not node(name).file("/srv/nmpi_queue/green").exists
    assert json_call("/")[0] == 200


def test_check_mode_changes_nothing(host):
    run = run_playbook("molecule/services/converge.yml", "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.total("changed") == 0, run.output
    for secret in SECRETS:
        assert secret not in run.output
