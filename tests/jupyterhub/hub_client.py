"""A client of a JupyterHub as people reach it, for the molecule scenario's tests: HTTPS through
the front door by the hub's public name (the front door's address, the name in Host and SNI),
the hub's cookies and XSRF tokens as a browser keeps them, the single-user server's REST API,
and a kernel's WebSocket (tests/lib/ws_client.py, a real RFC 6455 client) speaking the Jupyter
messaging protocol. Redirects are followed by hand: a redirect to the hub's public name goes to
the front door's address, one elsewhere (the fake GitHub) goes where it says."""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import urlencode, urlparse

import requests
import urllib3
from ws_client import ConnectionClosed, connect

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # the front door's placeholder certificate


class HubClient:
    def __init__(self, front, server_name, timeout=30, port=443, tls=True):
        self.front = front
        self.name = server_name
        self.port = port
        self.tls = tls
        self.origin = f"{'https' if tls else 'http'}://{front}:{port}"
        self.timeout = timeout
        self.session = requests.Session()
        self.session.verify = False
        self.user = None

    # --- HTTP ------------------------------------------------------------------------------------
    def request(self, method, path, headers=None, **kwargs):
        """One request to the hub through the front door (no redirect followed)."""
        headers = {"Host": self.name, **(headers or {})}
        # verify=False on each request: requests lets REQUESTS_CA_BUNDLE override the session's verify.
        return self.session.request(method, f"{self.origin}{path}", headers=headers, allow_redirects=False,
                                    timeout=kwargs.pop("timeout", self.timeout), verify=False, **kwargs)

    def _local(self, location, current):
        url = urlparse(location)
        if not url.netloc:
            base = current.rsplit("/", 1)[0] + "/" if not location.startswith("/") else ""
            return base + location
        default = 443 if url.scheme == "https" else 80
        if url.hostname == self.name or (url.hostname == self.front and (url.port or default) == self.port):
            return url.path + (f"?{url.query}" if url.query else "")
        return None

    def follow(self, path, hops=20, on_elsewhere=None):
        """GET path and follow redirects; returns (the last response, the path it came from).
        on_elsewhere(url) may rewrite a redirect that leaves the hub (e.g. signs in at the fake)."""
        response = None
        for _hop in range(hops):
            response = self.request("GET", path)
            while response.status_code in (301, 302, 303, 307, 308):
                location = response.headers["Location"]
                local = self._local(location, path)
                if local is not None:
                    path = local
                    break
                target = on_elsewhere(location) if on_elsewhere else location
                response = self.session.get(target, allow_redirects=False, timeout=self.timeout, verify=False)
            else:
                return response, path
        raise AssertionError(f"more than {hops} redirects from {path} (last: {response.status_code})")

    def xsrf(self, prefix):
        """The _xsrf cookie the hub (prefix /hub/) or the user's server (/user/<name>/) set: the one
        with the longest path that covers prefix."""
        found = sorted((c for c in self.session.cookies if c.name == "_xsrf" and prefix.startswith(c.path.rstrip("/") + "/")),
                       key=lambda c: len(c.path))
        if not found:
            raise AssertionError(f"no _xsrf cookie for {prefix}: {[(c.name, c.path) for c in self.session.cookies]}")
        return found[-1].value

    def cookie_header(self, path):
        return "; ".join(f"{c.name}={c.value}" for c in self.session.cookies if path.startswith(c.path))

    # --- the hub ---------------------------------------------------------------------------------
    def whoami(self):
        response = self.request("GET", "/hub/api/user", headers={"Accept": "application/json"})
        return response.json()["name"] if response.status_code == 200 else None

    def tmp_login(self):
        """A temporary account (tmpauthenticator): the login starts the user's server."""
        self.follow("/hub/tmplogin")
        self.user = self.whoami()
        assert self.user, "the temporary login did not log in"
        return self.user

    def github_login(self, login):
        """Sign in at the fake GitHub as login; returns the hub's last answer."""
        def sign_in(location):
            url = urlparse(location)
            if url.path.endswith("/login/oauth/authorize"):
                return f"{location}&{urlencode({'login': login})}"
            return location
        response = self.follow("/hub/oauth_login?next=%2Fhub%2Fhome", on_elsewhere=sign_in)[0]
        self.user = self.whoami()
        return response

    def start_server(self):
        """Ask the hub to start the user's server (POST with the hub's XSRF token)."""
        self.follow("/hub/home")  # sets the hub's _xsrf cookie
        response = self.request("POST", f"/hub/api/users/{self.user}/server",
                                headers={"X-XSRFToken": self.xsrf("/hub/"), "Accept": "application/json"})
        assert response.status_code in (201, 202, 400), f"{response.status_code} {response.text}"
        return response

    def wait_for_server(self, limit=180):
        """Wait until the user's server serves JupyterLab through the front door (the browser's way in:
        the page, then the hub's OAuth hand-shake for the server's cookie) and answers its API;
        returns the seconds taken."""
        start = time.monotonic()
        last = None
        while time.monotonic() - start < limit:
            response, path = self.follow(f"/user/{self.user}/lab")
            last = (response.status_code, path)
            if response.status_code == 200 and path.startswith(f"/user/{self.user}/lab"):
                status = self.request("GET", f"/user/{self.user}/api/status")
                if status.status_code == 200:
                    return time.monotonic() - start
            time.sleep(1)
        raise AssertionError(f"{self.user}'s server did not answer in {limit} s (last: {last})")

    def new_token(self, note="molecule test"):
        """A token of the logged-in user's own (POST /hub/api/users/<name>/tokens)."""
        self.follow("/hub/token")
        response = self.request("POST", f"/hub/api/users/{self.user}/tokens", json={"note": note, "expires_in": 600},
                                headers={"X-XSRFToken": self.xsrf("/hub/")})
        assert response.status_code == 201, f"{response.status_code} {response.text}"
        return response.json()["token"]

    # --- the user's server -----------------------------------------------------------------------
    def server_api(self, method, path, **kwargs):
        headers = {"X-XSRFToken": self.xsrf(f"/user/{self.user}/"), **kwargs.pop("headers", {})}
        return self.request(method, f"/user/{self.user}/api/{path}", headers=headers, **kwargs)

    def start_kernel(self, name="python3"):
        response = self.server_api("POST", "kernels", json={"name": name})
        assert response.status_code == 201, f"{response.status_code} {response.text}"
        return response.json()["id"]

    def kernel(self, kernel_id):
        path = f"/user/{self.user}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        return Kernel(connect(self.front, self.port, path, server_name=self.name, tls=self.tls, timeout=self.timeout,
                              headers={"Cookie": self.cookie_header(path),
                                       "Origin": f"{'https' if self.tls else 'http'}://{self.name}",
                                       "Sec-Fetch-Mode": "websocket"}))


class Kernel:
    """A kernel's WebSocket: execute_request on the shell channel, the results from iopub."""

    def __init__(self, ws):
        self.ws = ws
        self.session = uuid.uuid4().hex

    def close(self):
        self.ws.close()

    def execute(self, code, timeout=60):
        """Run code; returns {'stdout', 'result', 'error', 'status'} ('status': ok | error | dead)."""
        msg_id = uuid.uuid4().hex
        self.ws.send_text(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": self.session, "msg_type": "execute_request",
                       "version": "5.3", "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        out = {"stdout": "", "result": None, "error": None, "status": None}
        replied = idle = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (replied and idle):
            try:
                message = json.loads(self.ws.recv_text())
            except ConnectionClosed:
                out["status"] = "dead"
                return out
            kind = message.get("msg_type") or message["header"]["msg_type"]
            content = message.get("content", {})
            if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                out["status"] = "dead"
                return out
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream" and content.get("name") == "stdout":
                out["stdout"] += content["text"]
            elif kind == "execute_result":
                out["result"] = content["data"].get("text/plain")
            elif kind == "error":
                out["error"] = f"{content['ename']}: {content['evalue']}"
            elif kind == "execute_reply":
                replied = True
                out["status"] = content["status"]
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        if not replied:
            raise AssertionError(f"no execute_reply in {timeout} s for {code!r}")
        return out


def wait_until(check, limit, step=2, what="condition"):
    """Seconds until check() is true, polled every step seconds; AssertionError after limit."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"{what}: not within {limit} s")


def running_tmp_server(front, server_name):
    """A temporary account's client whose server runs, and the seconds the spawn took."""
    client = HubClient(front, server_name)
    client.tmp_login()
    client.start_server()  # already pending when the login started it (400), else it starts now
    took = client.wait_for_server()
    return client, took


# The token of the hub's idle culler (a service the hub starts with a token of its own, whose role has
# only list:users, read:users:activity, read:servers, delete:servers and admin:users): enough to
# delete the users a test or the benchmark made. A temporary hub has no admin user to log in as.
CULLER_TOKEN_COMMAND = (
    "hub=$(systemctl show -p MainPID --value jupyterhub-{name}) && "
    "pid=$(pgrep -P \"$hub\" -f jupyterhub_idle_culler | head -1) && "
    "tr '\\0' '\\n' < /proc/$pid/environ | sed -n 's/^JUPYTERHUB_API_TOKEN=//p'")


def culler_token_command(deployment):
    """The shell command that prints the idle culler's token of the hub <deployment>, on its node."""
    return CULLER_TOKEN_COMMAND.format(name=deployment)


def delete_users(front, server_name, token, users, limit=180, workers=4):
    """Delete the hub users (their servers are stopped first) with an admin:users token; returns the
    names that could not be deleted within limit seconds. A 400 (the server is still stopping) is
    retried; 404 (already gone) counts as deleted."""
    from concurrent.futures import ThreadPoolExecutor

    deadline = time.monotonic() + limit

    def delete(user):
        client = HubClient(front, server_name)
        while time.monotonic() < deadline:
            try:
                response = client.request("DELETE", f"/hub/api/users/{user}",
                                          headers={"Authorization": f"token {token}"}, timeout=60)
            except requests.RequestException:
                time.sleep(2)
                continue
            if response.status_code in (204, 404):
                return None
            time.sleep(2)
        return user

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [user for user in pool.map(delete, list(users)) if user]
