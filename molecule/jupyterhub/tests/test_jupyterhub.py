"""The two hubs of the jupyterhub scenario, as people and operators meet them: through the front
door (HTTPS by the hub's name), with real logins (temporary accounts; GitHub OAuth against the
fake GitHub), real servers, kernels run over their WebSocket, limits, isolation, culling, a hub
restart, check mode and what -v prints. The culler's test, which converges the public hub with
shorter timeouts and back, is in test_jupyterhub_culler.py, which runs after this file."""
from __future__ import annotations

import json
import time

from sciops_testing import run_playbook
from tests.jupyterhub.hub_client import HubClient, running_tmp_server, wait_until

FRONT = "172.30.47.10"
PUBLIC = "public.hub.test"
PRIVATE = "private.hub.test"
SHARED = "/srv/jupyterhub-data"
CLIENT_SECRET = "molecule-fake-github-secret-0123456789"  # group_vars/jupyterhub/jupyterhub.yml (the vault layer)
PLAYBOOK = "molecule/jupyterhub/converge.yml"

testinfra_hosts = ["mol-jh-hub"]


def changed_tasks(output):
    """The tasks a playbook run reports changed (their TASK lines), for the failure messages."""
    found, task = [], None
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:") and task and task not in found:
            found.append(task)
    return found


# --- the node ---------------------------------------------------------------------------------

def test_each_hub_and_its_proxy_are_units_of_their_own(host):
    for name in ("public", "private"):
        for unit in (f"jupyterhub-{name}", f"jupyterhub-{name}-proxy"):
            assert host.service(unit).is_running and host.service(unit).is_enabled, unit
    proxy = host.check_output("systemctl show -p ExecStart --value jupyterhub-public-proxy")
    assert "/usr/bin/configurable-http-proxy" in proxy and "--port 8000" in proxy and "--api-port 8001" in proxy


def test_secrets_are_root_only_and_outside_the_configuration(host):
    for name in ("public", "private"):
        for path in (f"/var/lib/jupyterhub/{name}/jupyterhub_cookie_secret", f"/var/lib/jupyterhub/{name}/proxy.env",
                     f"/etc/jupyterhub/{name}/secrets.env"):
            f = host.file(path)
            assert f.user == "root" and f.mode == 0o600, path
        assert host.file(f"/var/lib/jupyterhub/{name}").mode == 0o700
        settings = host.file(f"/etc/jupyterhub/{name}/settings.json")
        assert settings.mode == 0o644
        assert CLIENT_SECRET not in settings.content_string
    assert "\nJUPYTERHUB_OAUTH_CLIENT_SECRET=" in host.file("/etc/jupyterhub/private/secrets.env").content_string


def test_the_users_environment_is_not_writable_by_users(host):
    env = host.file("/opt/jupyterhub/envs/default")
    assert env.user == "root" and env.mode & 0o022 == 0
    assert host.run("find /opt/jupyterhub/envs/default -perm /022 ! -type l | head -1").stdout.strip() == ""
    assert host.file("/opt/jupyterhub/envs/default/bin/jupyterhub-singleuser").is_file


def test_the_culler_runs_with_name_value_flags(host):
    settings = json.loads(host.file("/etc/jupyterhub/public/settings.json").content_string)
    culler = settings["services"][0]
    assert culler["name"] == "idle-culler"
    assert "--timeout=600" in culler["command"] and "--max-age=28800" in culler["command"]
    assert "--cull-users=True" in culler["command"]
    assert settings["roles"][0]["scopes"] == ["list:users", "read:users:activity", "read:servers", "delete:servers",
                                              "admin:users"]
    lines = host.check_output("ps -eo args")
    assert "jupyterhub_idle_culler --timeout=600 --cull-every=60" in lines
    assert "jupyterhub_idle_culler --timeout=1800 --cull-every=300" in lines


def test_the_database_records_the_hub_version(host):
    version = host.check_output("/opt/jupyterhub/hub/bin/jupyterhub --version")
    assert version.startswith("5.")
    for name in ("public", "private"):
        assert host.file(f"/var/lib/jupyterhub/{name}/hub-version").content_string.strip() == version
        assert host.file(f"/var/lib/jupyterhub/{name}/jupyterhub.sqlite").exists


# --- the public hub ---------------------------------------------------------------------------

def test_a_temporary_login_spawns_a_server_whose_kernel_runs_a_cell():
    client, took = running_tmp_server(FRONT, PUBLIC)
    print(f"\npublic hub: login to a running server {took:.1f} s")
    kernel_id = client.start_kernel()
    kernel = client.kernel(kernel_id)
    try:
        start = time.monotonic()
        out = kernel.execute("import os\nprint(6 * 7)\nos.getcwd()")
        print(f"public hub: first cell {time.monotonic() - start:.2f} s")
    finally:
        kernel.close()
    assert out["status"] == "ok", out
    assert out["stdout"] == "42\n"
    # the home is the dynamic user's state directory (/var/lib/<user>, systemd's link to /var/lib/private/<user>)
    assert out["result"] in (repr(f"/var/lib/{client.user}"), repr(f"/var/lib/private/{client.user}"))
    assert client.request("GET", f"/user/{client.user}/lab").status_code == 200


def test_the_default_ui_is_jupyterlab():
    client, _ = running_tmp_server(FRONT, PUBLIC)
    response, path = client.follow("/hub/")
    assert path.startswith(f"/user/{client.user}/lab"), path
    assert "JupyterLab" in response.text


def test_users_run_as_other_uids_and_cannot_read_each_others_files(host):
    first, _ = running_tmp_server(FRONT, PUBLIC)
    second, _ = running_tmp_server(FRONT, PUBLIC)
    assert first.user != second.user
    k1, k2 = first.kernel(first.start_kernel()), second.kernel(second.start_kernel())
    try:
        mine = k1.execute("import os\nopen(os.path.expanduser('~/private.txt'), 'w').write('mine')\n"
                          "print(os.getuid(), os.path.expanduser('~'))")
        uid1, home1 = mine["stdout"].split()
        theirs = k2.execute(f"import os\ntry:\n    print(open({home1 + '/private.txt'!r}).read())\n"
                            f"except OSError as e:\n    print(type(e).__name__)\nprint(os.getuid())")
        lines = theirs["stdout"].split()
    finally:
        k1.close()
        k2.close()
    assert lines[0] in ("PermissionError", "FileNotFoundError"), theirs
    assert lines[1] != uid1, "the second user's server runs as another uid"
    assert int(uid1) != 0 and int(lines[1]) != 0, "no server runs as root"
    unit = host.check_output(f"systemctl show -p User,DynamicUser,NoNewPrivileges,PrivateTmp,PrivateDevices "
                             f"jupyter-public-{first.user}")
    assert "DynamicUser=yes" in unit and "NoNewPrivileges=yes" in unit
    assert "PrivateTmp=yes" in unit and "PrivateDevices=yes" in unit


def test_the_shared_data_is_read_only_and_no_sudo(host):
    host.run(f"echo shared > {SHARED}/README.txt")
    client, _ = running_tmp_server(FRONT, PUBLIC)
    kernel = client.kernel(client.start_kernel())
    try:
        out = kernel.execute(f"print(open('{SHARED}/README.txt').read().strip())\n"
                             f"try:\n    open('{SHARED}/mine.txt', 'w')\nexcept OSError as e:\n    print(type(e).__name__)\n"
                             "import subprocess\nprint(subprocess.run(['sudo', '-n', 'true'], capture_output=True).returncode "
                             "if __import__('shutil').which('sudo') else 'no-sudo')")
    finally:
        kernel.close()
    lines = out["stdout"].split()
    assert lines[0] == "shared"
    assert lines[1] in ("PermissionError", "OSError"), out
    assert lines[2] != "0", "sudo must not work in a user server"


def test_a_cell_past_the_memory_limit_is_killed(host):
    client, _ = running_tmp_server(FRONT, PUBLIC)
    limit = host.check_output(f"systemctl show -p MemoryMax --value jupyter-public-{client.user}")
    assert limit == str(512 * 1024 * 1024)
    assert host.check_output(f"systemctl show -p OOMPolicy --value jupyter-public-{client.user}") == "continue"
    kernel = client.kernel(client.start_kernel())
    try:
        out = kernel.execute("x = b'x' * (1 << 30)\nprint('survived')", timeout=90)
    finally:
        kernel.close()
    assert out["status"] == "dead" or out["error"] and "MemoryError" in out["error"], out
    assert "survived" not in out["stdout"]
    assert client.request("GET", f"/user/{client.user}/api/status").status_code == 200, "the server itself lives on"


# --- the private hub --------------------------------------------------------------------------

def test_anonymous_requests_are_sent_to_login():
    client = HubClient(FRONT, PRIVATE)
    for path in ("/hub/", "/hub/home", "/user/alice/lab"):
        response, landed = client.follow(path)
        assert landed.startswith("/hub/login"), (path, landed)
        assert response.status_code == 200 and "Sign in with GitHub" in response.text


def test_an_organisation_member_gets_in_and_a_non_member_does_not(host):
    member = HubClient(FRONT, PRIVATE)
    member.github_login("alice")
    assert member.user == "alice"
    member.start_server()
    member.wait_for_server()
    assert host.user("jupyter-alice").home == "/home/jupyter-alice"
    kernel = member.kernel(member.start_kernel())
    try:
        out = kernel.execute("import os, getpass\nprint(getpass.getuser(), os.getcwd())")
    finally:
        kernel.close()
    assert out["stdout"].split() == ["jupyter-alice", "/home/jupyter-alice"]

    outsider = HubClient(FRONT, PRIVATE)
    response = outsider.github_login("mallory")
    assert outsider.user is None
    assert response.status_code == 403
    assert not host.user("jupyter-mallory").exists


def test_the_admin_token_lists_users():
    admin = HubClient(FRONT, PRIVATE)
    admin.github_login("hub-admin")
    token = admin.new_token()
    plain = HubClient(FRONT, PRIVATE)
    response = plain.request("GET", "/hub/api/users", headers={"Authorization": f"token {token}"})
    assert response.status_code == 200
    names = {u["name"] for u in response.json()}
    assert {"alice", "hub-admin"} <= names
    assert plain.request("GET", "/hub/api/users").status_code == 403, "no token, no list"


def test_a_hub_restart_keeps_a_running_server(host):
    client = HubClient(FRONT, PRIVATE)
    client.github_login("alice")
    client.start_server()
    client.wait_for_server()
    unit = "jupyter-private-alice"
    pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
    kernel_id = client.start_kernel()
    host.check_output("systemctl restart jupyterhub-private")
    wait_until(lambda: client.request("GET", "/hub/health").status_code == 200, 60, what="the hub's health")
    assert host.check_output(f"systemctl show -p MainPID --value {unit}") == pid, "the server was not restarted"
    kernels = client.server_api("GET", "kernels").json()
    assert kernel_id in [k["id"] for k in kernels], "the kernel started before the restart is still there"
    kernel = client.kernel(kernel_id)
    try:
        assert kernel.execute("print('still here')")["stdout"] == "still here\n"
    finally:
        kernel.close()


# --- the operator's view ----------------------------------------------------------------------

def test_a_new_hub_version_upgrades_the_database_and_keeps_servers(host):
    version = host.check_output("/opt/jupyterhub/hub/bin/jupyterhub --version")
    running = host.check_output("systemctl list-units --state=running --no-legend 'jupyter-private-*' | wc -l")
    host.check_output("echo 5.2.0 > /var/lib/jupyterhub/private/hub-version")  # as after an upgrade of the package
    run = run_playbook(PLAYBOOK, "-v")
    assert run.rc == 0, run.output[-3000:]
    assert f"upgraded the database from JupyterHub 5.2.0 to {version}" in run.output
    assert host.file("/var/lib/jupyterhub/private/hub-version").content_string.strip() == version
    again = run_playbook(PLAYBOOK)
    assert again.rc == 0 and again.total("changed") == 0, ("once only", changed_tasks(again.output))
    client = HubClient(FRONT, PRIVATE)
    wait_until(lambda: client.request("GET", "/hub/health").status_code == 200, 60, what="the hub's health")
    assert host.check_output("systemctl list-units --state=running --no-legend 'jupyter-private-*' | wc -l") == running



def test_check_mode_changes_nothing_and_verbose_output_holds_no_secret(host):
    secrets = [CLIENT_SECRET]
    for name in ("public", "private"):
        secrets.append(host.check_output(f"cat /var/lib/jupyterhub/{name}/jupyterhub_cookie_secret"))
        secrets.append(host.check_output(f"cat /var/lib/jupyterhub/{name}/proxy.env").split("=", 1)[1])
    check = run_playbook(PLAYBOOK, "--check", "-v")
    assert check.rc == 0, check.output[-3000:]
    assert check.total("changed") == 0, changed_tasks(check.output)
    run = run_playbook(PLAYBOOK, "-v")
    assert run.rc == 0 and run.total("changed") == 0, changed_tasks(run.output)
    for output in (check.output, run.output):
        for secret in secrets:
            assert secret not in output
