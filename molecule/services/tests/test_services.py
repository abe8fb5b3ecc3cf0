"""Blue/green behaviour of the web services behind the front door, checked from outside: from
the controller and from the database node, through nginx on the app node (mol-svc-app)."""
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request

import testinfra.utils.ansible_runner

from sciops_testing import PROJECT, run_playbook

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("frontdoor")

APP = "172.30.43.20"
SECRETS = ["svc-db-Pw-31c9", "svc-session-Key-8a1f", "svc-oidc-Secret-77d2", "svc-django-Key-0b4e"]
TLS = ssl.create_default_context()
TLS.check_hostname = False
TLS.verify_mode = ssl.CERT_NONE  # the front door's self-signed placeholder


def call(path="/", name="nmpi.test", method="GET", body=None, scheme="https", timeout=10):
    """One request to the front door from the controller; returns (status, parsed JSON or None)."""
    req = urllib.request.Request(f"{scheme}://{APP}{path}", method=method, data=body, headers={"Host": name})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=TLS if scheme == "https" else None) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


def playbook(name, **extra):
    return run_playbook(f"playbooks/{name}.yml", "-v", extra_vars=extra)


def test_live_blue_serves_both_services_over_https_and_http(host):
    for name in ("nmpi.test", "quotas.test"):
        for scheme in ("https", "http"):
            status, body = call(name=name, scheme=scheme)
            assert status == 200, (name, scheme)
            assert body["colour"] == "blue" and body["status"] == "ok"
            assert body["base_url"] == f"https://{name}"


def test_a_row_is_written_and_read_back_through_the_front_door(host):
    status, created = call("/jobs", method="POST", body=b'{"model": "x"}')
    assert status == 201
    status, job = call(f"/jobs/{created['id']}")
    assert status == 200 and job["payload"] == '{"model": "x"}'


def test_colours_listen_on_loopback_only_and_run_unprivileged(host):
    listening = {s for s in host.socket.get_listening_sockets() if s.startswith("tcp")}
    assert "tcp://127.0.0.1:8101" in listening and "tcp://127.0.0.1:8201" in listening
    assert not any(s.endswith((":8101", ":8201")) and not s.startswith("tcp://127.0.0.1:") for s in listening)
    assert host.process.filter(user="nmpi_queue", comm="uvicorn") or host.process.filter(user="nmpi_queue")


def test_environment_file_is_private_to_the_service_user(host):
    env = host.file("/etc/sciops/services/nmpi_queue/blue.env")
    assert env.mode == 0o600
    assert env.user == "nmpi_queue"
    assert "NMPI_DATABASE_PASSWORD=" in env.content_string


def test_deploy_green_leaves_blue_live_and_shows_no_secret(host):
    run = playbook("deploy_service", service="nmpi_queue", colour="green", version="v2")
    assert run.rc == 0, run.output
    for secret in SECRETS:
        assert secret not in run.output
    green = json.loads(host.check_output("curl -s http://127.0.0.1:8102/"))
    assert green["colour"] == "green" and green["version"] == "v2"
    assert call()[1]["colour"] == "blue"


def test_deploying_over_the_live_colour_is_refused(host):
    run = playbook("deploy_service", service="nmpi_queue", colour="blue")
    assert run.rc != 0
    assert "blue is the live colour of nmpi_queue" in run.output


def test_switch_under_load_fails_no_request(host):
    results, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            started = time.monotonic()
            try:
                status, body = call(timeout=5)
                results.append((status, body and body.get("colour")))
            except Exception as exc:  # a refused or broken connection is a failed request
                results.append((repr(exc), None))
            time.sleep(max(0.0, 0.08 - (time.monotonic() - started)))

    threads = [threading.Thread(target=load) for _ in range(4)]  # about 50 requests a second
    for thread in threads:
        thread.start()
    time.sleep(1)
    started = time.monotonic()
    run = playbook("switch_colour", service="nmpi_queue", colour="green")
    took = time.monotonic() - started
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join()
    assert run.rc == 0, run.output
    failed = [r for r in results if r[0] != 200]
    assert not failed, failed[:5]
    colours = [r[1] for r in results]
    assert colours[0] == "blue" and colours[-1] == "green"
    print(f"switch: {len(results)} requests, 0 failed, playbook {took:.1f}s")


def test_rollback_makes_blue_live_again(host):
    run = playbook("rollback", service="nmpi_queue")
    assert run.rc == 0, run.output
    assert call()[1]["colour"] == "blue"


def test_dns_method_points_the_name_at_the_colour_node(host, monkeypatch):
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
        assert [r["data"] for r in server.records("test", "A", "nmpi")] == [APP]
        assert [c for c in server.writes()], "the A record was written"
        assert server.key not in run.output and server.secret not in run.output
        assert server.violations == []
    finally:
        server.stop()
    assert call()[1]["colour"] == "green"
    assert playbook("rollback", service="nmpi_queue").rc == 0
    assert call()[1]["colour"] == "blue"


def test_release_whose_bootstrap_fails_is_refused(host):
    run = run_playbook("playbooks/deploy_service.yml", "-e", json.dumps(
        {"service": "nmpi_queue", "colour": "green", "version": "broken-bootstrap",
         "nmpi_queue_extra_env": {"FIXTURE_FAIL_BOOTSTRAP": "1"}}))
    assert run.rc != 0
    assert "The bootstrap step of nmpi_queue green (broken-bootstrap) failed" in run.output
    assert call()[1]["colour"] == "blue"


def test_unhealthy_release_is_refused_and_cannot_be_made_live(host):
    run = run_playbook("playbooks/deploy_service.yml", "-e", json.dumps(
        {"service": "nmpi_queue", "colour": "green", "version": "broken-health",
         "nmpi_queue_extra_env": {"FIXTURE_FAIL_HEALTH": "1"}, "nmpi_queue_health_timeout": 6}))
    assert run.rc != 0
    assert "did not answer 200" in run.output and "It was not made live" in run.output
    switch = playbook("switch_colour", service="nmpi_queue", colour="green")
    assert switch.rc != 0
    assert "Refusing to make nmpi_queue green live" in switch.output
    status, body = call()
    assert status == 200 and body["colour"] == "blue"


def test_maintenance_mode_answers_503_without_a_redeploy(host):
    release_before = host.check_output("readlink /srv/nmpi_queue/blue")
    status, created = call("/jobs", method="POST", body=b"{}")
    assert status == 201
    job = f"/jobs/{created['id']}"
    try:
        assert playbook("service_maintenance", service="nmpi_queue", status="down").rc == 0
        assert call(job)[0] == 503
        assert call("/")[0] == 200
        assert playbook("service_maintenance", service="nmpi_queue", status="read-only").rc == 0
        assert call("/jobs", method="POST", body=b"{}")[0] == 503
        assert call(job)[0] == 200
    finally:
        assert playbook("service_maintenance", service="nmpi_queue", status="ok").rc == 0
    assert call("/jobs", method="POST", body=b"{}")[0] == 201
    assert host.check_output("readlink /srv/nmpi_queue/blue") == release_before


def test_status_table_shows_what_runs_where(host):
    run = run_playbook("playbooks/service_status.yml")
    assert run.rc == 0, run.output
    rows = [line.split() for line in run.output.splitlines() if line.strip().startswith(("nmpi_queue ", "quotas "))]
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("nmpi_queue", "blue")][3] == "live" and by_key[("nmpi_queue", "blue")][7] == "200"
    assert by_key[("nmpi_queue", "green")][3] == "idle"
    assert by_key[("quotas", "blue")][4] == "mol-svc-app"


def test_logs_are_fetched_to_the_controller(host, tmp_path):
    run = playbook("service_logs", service="nmpi_queue", colour="blue", lines=50)
    assert run.rc == 0, run.output
    assert " lines in " in run.output


def test_terminate_refuses_the_live_colour_and_removes_the_idle_one(host):
    refused = playbook("terminate_service", service="nmpi_queue", colour="blue")
    assert refused.rc != 0 and "switch to the other colour first" in refused.output
    run = playbook("terminate_service", service="nmpi_queue", colour="green")
    assert run.rc == 0, run.output
    assert not host.service("nmpi_queue-green").is_running
    assert not host.file("/srv/nmpi_queue/green").exists
    assert call()[1]["colour"] == "blue"


def test_container_method_deploys_and_serves(host):
    run = run_playbook("playbooks/deploy_service.yml", "-v", "-e", json.dumps(
        {"service": "quotas", "colour": "green", "version": "c1", "quotas_method": "container",
         "quotas_container_base_image": "sciops/node:debian12", "quotas_container_daemon_config": {"storage-driver": "vfs"},
         "quotas_health_timeout": 90}))
    assert run.rc == 0, run.output
    for secret in SECRETS:
        assert secret not in run.output
    assert host.check_output("docker inspect -f '{{.State.Status}}' quotas-green") == "running"
    assert not host.service("quotas-green").is_running  # no systemd unit: the container serves
    switch = playbook("switch_colour", service="quotas", colour="green")
    assert switch.rc == 0, switch.output
    status, body = call(name="quotas.test")
    assert status == 200 and body["colour"] == "green" and body["version"] == "c1"
    status, created = call("/jobs", name="quotas.test", method="POST", body=b"{}")
    assert status == 201 and created["colour"] == "green"
    assert playbook("rollback", service="quotas").rc == 0
    assert call(name="quotas.test")[1]["colour"] == "blue"


def test_check_mode_changes_nothing(host):
    run = run_playbook("molecule/services/converge.yml", "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.total("changed") == 0, run.output
