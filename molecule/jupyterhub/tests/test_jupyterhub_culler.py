"""The public hub's idle culler (the last file: it converges the public hub with shorter timeouts in
the environment's layer of the hierarchy, then back): an idle temporary user's server is culled,
the user is deleted from the hub and its state directory from the node; a server kept busy is
culled all the same once it passes max-age."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import pytest
from sciops_testing import run_playbook
from tests.jupyterhub.hub_client import running_tmp_server, wait_until

FRONT = "172.30.47.10"
PUBLIC = "public.hub.test"
PLAYBOOK = "molecule/jupyterhub/converge.yml"

testinfra_hosts = ["mol-jh-hub"]


# max-age well past the idle timeout: the busy server must outlive the timeout first.
TIMEOUT, EVERY, MAX_AGE = 30, 5, 75


@pytest.fixture(scope="module")
def short_culling():
    layer = {"jupyterhub_environment": {"public": {"cull": {"timeout": TIMEOUT, "every": EVERY, "max_age": MAX_AGE}}}}
    run = run_playbook(PLAYBOOK, "-e", json.dumps(layer))
    assert run.rc == 0, run.output[-3000:]
    yield
    back = run_playbook(PLAYBOOK)
    assert back.rc == 0, back.output[-3000:]


def test_the_culler_removes_an_idle_temporary_user_and_its_state(host, short_culling):
    assert f"--timeout={TIMEOUT}" in host.check_output("ps -eo args | grep [j]upyterhub_idle_culler")
    client, _ = running_tmp_server(FRONT, PUBLIC)
    user = client.user
    kernel = client.kernel(client.start_kernel())
    try:
        kernel.execute("open('notes.txt', 'w').write('temporary')")
    finally:
        kernel.close()
    assert host.file(f"/var/lib/private/{user}/notes.txt").exists
    took = wait_until(lambda: not host.file(f"/var/lib/private/{user}").exists, 150, what="the state directory removed")
    print(f"\nculler: idle server, user and state directory removed after {took:.0f} s")
    assert not host.service(f"jupyter-public-{user}").is_running
    assert not host.file(f"/var/lib/{user}").exists, "the link to the state directory went too"
    assert client.whoami() is None, "the temporary user is gone from the hub"
    log = host.check_output(f"journalctl -u jupyterhub-public --no-pager -o cat | grep -c {user} || true")
    assert int(log) > 0


def report_activity(client, stop, deadline, errors):
    """What a busy server does: tell the hub it is active (POST /hub/api/users/<name>/activity, the
    user's own users:activity scope), every 3 s until stop is set or the deadline passes. The
    single-user server itself reports only every 300 s (JUPYTERHUB_ACTIVITY_INTERVAL), too seldom
    for a 30 s idle timeout, so the test reports for it."""
    while not stop.is_set() and time.monotonic() < deadline:
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        try:
            response = client.request("POST", f"/hub/api/users/{client.user}/activity",
                                      json={"last_activity": now, "servers": {"": {"last_activity": now}}},
                                      headers={"X-XSRFToken": client.xsrf("/hub/")}, timeout=10)
            if response.status_code not in (200, 204):
                errors.append(f"{response.status_code} {response.text[:200]}")
        except Exception as error:  # noqa: BLE001 (recorded; the test fails on it)
            errors.append(repr(error))
        stop.wait(3)


def test_max_age_culls_a_busy_server(host, short_culling):
    client, _ = running_tmp_server(FRONT, PUBLIC)
    user, unit = client.user, f"jupyter-public-{client.user}"
    model = client.request("GET", "/hub/api/user", headers={"Accept": "application/json"}).json()
    started = datetime.fromisoformat(model["servers"][""]["started"].replace("Z", "+00:00"))
    stop, errors = threading.Event(), []
    busy = threading.Thread(target=report_activity, args=(client, stop, time.monotonic() + MAX_AGE + 120, errors),
                            daemon=True)
    busy.start()
    try:
        # Past the idle timeout and two culler rounds it still runs: its activity is recent.
        time.sleep(TIMEOUT + 2 * EVERY)
        assert host.service(unit).is_running, "culled while active, before max-age"
        assert not errors, errors
        wait_until(lambda: not host.service(unit).is_running, MAX_AGE + 60, what="the busy server culled at max-age")
    finally:
        stop.set()
        busy.join(10)
    age = (datetime.now(timezone.utc) - started).total_seconds()
    print(f"\nculler: busy server stopped {age:.0f} s after it started (max-age {MAX_AGE} s, culler every {EVERY} s)")
    assert not errors, errors
    assert MAX_AGE <= age <= MAX_AGE + 4 * EVERY + 30, age
    log = host.check_output(f"journalctl -u jupyterhub-public --no-pager -o cat | grep 'Culling server {user} ' || true")
    assert f"Culling server {user} (age:" in log, log
    assert f"Culling server {user} (inactive for" not in log, log
    # With its server gone the user goes too (cull-users, once idle) and its state directory with it.
    wait_until(lambda: not host.file(f"/var/lib/private/{user}").exists, TIMEOUT + 60, what="the state directory removed")
    assert client.whoami() is None
