"""roles/jupyterhub/files/jupyterhub_config.py, the one configuration file of every hub: it applies
the settings the filter renders (tests/jupyterhub/hierarchy.yml's hubs), reads the OAuth secret
from the environment only, and its spawner deletes a removed temporary user's state directory and
nothing else. JupyterHub itself is not installed here: `c` and SystemdSpawner are small stand-ins
with the same surface (c[Class].trait = value; SystemdSpawner.start and .user)."""
from __future__ import annotations

import asyncio
import json
import runpy
import sys
import time
import types
from pathlib import Path

import pytest

from ansible_collections.sciops.platform.plugins.filter.jupyterhub import jupyterhub_settings
from tests.jupyterhub.hierarchy import merged

ROOT = Path(__file__).resolve().parents[4]
CONFIG = ROOT / "roles" / "jupyterhub" / "files" / "jupyterhub_config.py"
PATHS = {"state_dir": "/var/lib/jupyterhub/x", "venv": "/opt/jupyterhub/hub",
         "user_venv": "/opt/jupyterhub/envs/default", "proxy_api_url": "http://127.0.0.1:8001"}


class StandInConfig:
    """traitlets' Config as the file uses it: c.Class.trait = value and c['Class'].trait = value."""

    def __init__(self):
        object.__setattr__(self, "sections", {})

    def __getitem__(self, name):
        return self.sections.setdefault(name, types.SimpleNamespace())

    __getattr__ = __getitem__


class StandInSystemdSpawner:
    """SystemdSpawner's surface: start() returns (ip, port) once the unit runs, poll() is None while
    it runs; port is where the tests' server listens (or nothing does)."""
    started = False
    port = 1
    http_timeout = 5
    exit_status = None

    def __init__(self, name):
        self.user = types.SimpleNamespace(name=name)
        self.log = types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: None)

    async def start(self):
        self.started = True
        return ("127.0.0.1", self.port)

    async def poll(self):
        return self.exit_status


def start_listening_after(spawner, delay):
    """Run spawner.start() while a loopback server starts listening delay seconds in; returns
    (start's result, seconds start took, seconds after the server listened)."""
    async def scenario():
        import socket
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        spawner.port = probe.getsockname()[1]
        probe.close()
        listening = {}

        async def listen():
            await asyncio.sleep(delay)
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", spawner.port)
            listening["at"] = time.monotonic()
            return server
        began = time.monotonic()
        task = asyncio.create_task(listen())
        result = await spawner.start()
        took = time.monotonic() - began
        server = await task
        server.close()
        return result, took, time.monotonic() - listening["at"]
    return asyncio.run(scenario())


@pytest.fixture
def load(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "systemdspawner", types.SimpleNamespace(SystemdSpawner=StandInSystemdSpawner))

    def _load(profile, env=None):
        path = tmp_path / f"{profile}.json"
        path.write_text(json.dumps(jupyterhub_settings(merged()[profile], PATHS)), encoding="utf-8")
        monkeypatch.setenv("SCIOPS_JUPYTERHUB_SETTINGS", str(path))
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        c = StandInConfig()
        runpy.run_path(str(CONFIG), init_globals={"c": c, "get_config": lambda: c})
        return c
    return _load


def test_the_settings_become_traits(load):
    c = load("public")
    assert c.JupyterHub.authenticator_class == "tmp"
    assert c.Authenticator.allow_all is True
    assert c.SystemdSpawner.mem_limit == "1G" and c.SystemdSpawner.dynamic_users is True
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.services[0]["name"] == "idle-culler"
    assert c.JupyterHub.load_roles[0]["scopes"][-1] == "admin:users"
    assert c.JupyterHub.spawner_class.__name__ == "SciopsSystemdSpawner"


def test_the_oauth_secret_comes_from_the_environment(load):
    assert not hasattr(load("private").GitHubOAuthenticator, "client_secret")
    c = load("private", {"JUPYTERHUB_OAUTH_CLIENT_SECRET": "from-secrets-env"})
    assert c.GitHubOAuthenticator.client_secret == "from-secrets-env"
    assert c.GitHubOAuthenticator.allowed_organizations == ["tess-research"]


def state_roots(spawner_class, tmp_path):
    private, public = tmp_path / "var-lib-private", tmp_path / "var-lib"
    private.mkdir()
    public.mkdir(exist_ok=True)
    spawner_class.delete_forever.__globals__["STATE_ROOTS"] = (str(private), str(public))
    return private, public


def test_a_deleted_temporary_user_leaves_no_state_directory(load, tmp_path):
    spawner_class = load("public").JupyterHub.spawner_class
    private, public = state_roots(spawner_class, tmp_path)
    user = "0b5e6f0c-2d3a-4c4e-9a63-7d3c1f2b9e10"
    (private / user / ".local").mkdir(parents=True)
    (private / user / "notes.txt").write_text("temporary")
    (public / user).symlink_to(private / user)
    (private / "someone-else").mkdir()
    spawner_class(user).delete_forever()
    assert not (private / user).exists() and not (public / user).is_symlink()
    assert (private / "someone-else").is_dir(), "only the deleted user's directory goes"


@pytest.mark.parametrize("name", ["..", "../etc", "a/b", "", "UPPER"])
def test_names_that_could_leave_the_state_root_are_refused(load, tmp_path, name):
    spawner_class = load("public").JupyterHub.spawner_class
    private = state_roots(spawner_class, tmp_path)[0]
    (private / "keep").mkdir()
    spawner_class(name).delete_forever()
    assert (private / "keep").is_dir()
    assert private.is_dir()


def test_a_persistent_hub_keeps_state_directories(load, tmp_path):
    spawner_class = load("private").JupyterHub.spawner_class
    private = state_roots(spawner_class, tmp_path)[0]
    (private / "alice").mkdir()
    spawner_class("alice").delete_forever()
    assert (private / "alice").is_dir()


def test_a_persistent_hub_creates_the_system_account_first(load, monkeypatch):
    spawner_class = load("private").JupyterHub.spawner_class
    made = []
    spawner_globals = spawner_class._ensure_account.__globals__
    monkeypatch.setitem(spawner_globals, "subprocess", types.SimpleNamespace(run=lambda argv, check: made.append(argv)))
    monkeypatch.setitem(spawner_globals, "os", types.SimpleNamespace(path=__import__("os").path, chmod=lambda p, m: None))

    def missing(name):
        raise KeyError(name)
    monkeypatch.setitem(spawner_globals, "pwd", types.SimpleNamespace(getpwnam=missing))
    spawner = spawner_class("alice")
    result, _took, _late = start_listening_after(spawner, 0)
    assert result == ("127.0.0.1", spawner.port) and spawner.started
    assert made == [["useradd", "--create-home", "--home-dir", "/home/jupyter-alice", "--shell", "/bin/bash",
                     "--user-group", "jupyter-alice"]]
    with pytest.raises(ValueError, match="cannot be a system user name"):
        asyncio.run(spawner_class("a" * 40).start())


def test_a_directory_of_another_program_is_never_removed(load, tmp_path):
    spawner_class = load("public").JupyterHub.spawner_class
    private, public = state_roots(spawner_class, tmp_path)
    (public / "dpkg").mkdir()
    (public / "dpkg" / "status").write_text("keep")
    spawner_class("dpkg").delete_forever()
    assert (public / "dpkg" / "status").read_text() == "keep"


def test_start_returns_as_soon_as_the_server_listens(load):
    spawner = load("public").JupyterHub.spawner_class("0b5e6f0c-2d3a-4c4e-9a63-7d3c1f2b9e10")
    result, took, late = start_listening_after(spawner, 0.5)
    assert result == ("127.0.0.1", spawner.port)
    assert 0.5 <= took < 1.5 and late < 0.5, (took, late)


def test_start_does_not_wait_for_a_server_whose_unit_stopped(load):
    spawner = load("public").JupyterHub.spawner_class("0b5e6f0c-2d3a-4c4e-9a63-7d3c1f2b9e10")
    spawner.exit_status = 1
    began = time.monotonic()
    assert asyncio.run(spawner.start()) == ("127.0.0.1", 1)
    assert time.monotonic() - began < 1, "a stopped unit is reported at once, not after http_timeout"
