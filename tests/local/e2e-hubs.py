"""The local environment's two hubs as their users meet them, through the front door on local-app1
(the hubs run on local-hub1): a temporary account's server runs a cell over its kernel's
WebSocket on the public hub; the private hub sends anonymous requests to its login, refuses a
wrong password, and lets the node account named in its allow list in, whose server runs as that
account. Run by tests/local/e2e.sh after `make up`:
    python tests/local/e2e-hubs.py FRONT_ADDRESS PUBLIC_NAME PRIVATE_NAME HUB_NODE
(PYTHONPATH: tests/lib and the repository root). Cleans up the users and servers it made."""
from __future__ import annotations

import secrets
import subprocess
import sys

from tests.jupyterhub.hub_client import HubClient, running_tmp_server

USER = "researcher"  # inventories/local/group_vars/jupyterhub/jupyterhub.yml: the private hub's allowed admin


def log(message):
    print(f"[local-e2e] {message}", flush=True)


def on_node(node, *command, stdin=None):
    return subprocess.run(["docker", "exec", "-i", node, *command], input=stdin, capture_output=True, text=True,
                          check=True).stdout


def pam_login(client, user, password):
    """The hub's login form (PAM): GET sets the _xsrf cookie, POST signs in."""
    client.follow("/hub/login")
    response = client.request("POST", "/hub/login?next=%2Fhub%2Fhome",
                              data={"username": user, "password": password, "_xsrf": client.xsrf("/hub/")})
    client.user = client.whoami()
    return response


def public_hub(front, name):
    client, took = running_tmp_server(front, name)
    kernel = client.kernel(client.start_kernel())
    try:
        out = kernel.execute("import os\nprint(6 * 7, os.getuid() != 0)")
    finally:
        kernel.close()
    assert out["status"] == "ok" and out["stdout"].strip() == "42 True", out
    log(f"{name}: temporary user {client.user}'s server answered in {took:.1f} s; a cell ran over the kernel's "
        f"WebSocket through the front door (42, not as root)")
    return client


def private_hub(front, name, node):
    anonymous = HubClient(front, name)
    response, path = anonymous.follow("/hub/home")
    assert path.startswith("/hub/login") and response.status_code == 200, (path, response.status_code)
    log(f"{name}: an anonymous request is sent to the login page")

    password = secrets.token_urlsafe(18)
    on_node(node, "sh", "-c", f"id {USER} >/dev/null 2>&1 || useradd --create-home {USER}")
    on_node(node, "chpasswd", stdin=f"{USER}:{password}\n")
    stranger = secrets.token_hex(4)
    on_node(node, "useradd", "--create-home", f"stranger{stranger}")
    on_node(node, "chpasswd", stdin=f"stranger{stranger}:{password}\n")
    try:
        wrong = HubClient(front, name)
        pam_login(wrong, USER, password + "x")
        assert wrong.user is None, "a wrong password logged in"
        outsider = HubClient(front, name)
        pam_login(outsider, f"stranger{stranger}", password)
        assert outsider.user is None, "an account outside the allow list logged in"
        log(f"{name}: a wrong password and a node account outside the allow list are refused")
    finally:
        on_node(node, "userdel", "--remove", f"stranger{stranger}")

    client = HubClient(front, name)
    pam_login(client, USER, password)
    assert client.user == USER, f"{USER} did not log in"
    client.start_server()
    took = client.wait_for_server()
    kernel = client.kernel(client.start_kernel())
    try:
        out = kernel.execute("import os, pwd\nprint(pwd.getpwuid(os.getuid()).pw_name, os.path.expanduser('~'))")
    finally:
        kernel.close()
    assert out["status"] == "ok" and out["stdout"].split() == [USER, f"/home/{USER}"], out
    log(f"{name}: {USER} logged in (PAM) and its server answered in {took:.1f} s, running as {USER} in /home/{USER}")
    return client


def stop(client):
    response = client.request("DELETE", f"/hub/api/users/{client.user}/server",
                              headers={"X-XSRFToken": client.xsrf("/hub/"), "Accept": "application/json"})
    assert response.status_code in (202, 204), f"{response.status_code} {response.text}"


def main(front, public_name, private_name, node):
    clients = [public_hub(front, public_name), private_hub(front, private_name, node)]
    for client in clients:
        stop(client)
    log("the servers the test started are stopped")


if __name__ == "__main__":
    main(*sys.argv[1:5])
