"""The public hub's idle culler (after test_jupyterhub.py: it converges the public hub with
shorter timeouts in the environment's layer of the hierarchy, then back): an idle temporary
user's server is culled, the user is deleted from the hub and its state directory from the node."""
from __future__ import annotations

import json

import pytest
from sciops_testing import run_playbook
from tests.jupyterhub.hub_client import running_tmp_server, wait_until

FRONT = "172.30.47.10"
PUBLIC = "public.hub.test"
PLAYBOOK = "molecule/jupyterhub/converge.yml"

testinfra_hosts = ["mol-jh-hub"]


@pytest.fixture
def short_culling():
    layer = {"jupyterhub_environment": {"public": {"cull": {"timeout": 30, "every": 5, "max_age": 120}}}}
    run = run_playbook(PLAYBOOK, "-e", json.dumps(layer))
    assert run.rc == 0, run.output[-3000:]
    yield
    back = run_playbook(PLAYBOOK)
    assert back.rc == 0, back.output[-3000:]


def test_the_culler_removes_an_idle_temporary_user_and_its_state(host, short_culling):
    assert "--timeout=30" in host.check_output("ps -eo args | grep [j]upyterhub_idle_culler")
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
