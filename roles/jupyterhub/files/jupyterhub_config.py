# Managed by the sciops.platform jupyterhub role: the same file for every hub on the node. It
# applies the hub's settings.json (written by the role from the deployment's merged tree: traits
# by class, the idle culler as a service and its role) and reads the secrets from the hub's
# environment (secrets.env, proxy.env), so neither this file nor settings.json holds a secret.
# pylint: disable=undefined-variable  (c is the configuration object JupyterHub passes in)
import asyncio
import json
import os
import pwd
import re
import shutil
import subprocess
import time

from systemdspawner import SystemdSpawner

with open(os.environ["SCIOPS_JUPYTERHUB_SETTINGS"], encoding="utf-8") as handle:
    SETTINGS = json.load(handle)

# A hub user's name as a unix name and a state directory's name: nothing that could leave the
# directory it names.
SAFE_NAME = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,63}$")
# systemd keeps a DynamicUser's StateDirectory in /var/lib/private/<name>, linked from /var/lib/<name>.
STATE_ROOTS = ("/var/lib/private", "/var/lib")


class SciopsSystemdSpawner(SystemdSpawner):
    """SystemdSpawner that creates the system account of a user of an external login (persistent
    storage) before the first start, and deletes a dynamic user's state directory when the hub
    deletes the user (the idle culler does, for temporary accounts): systemd keeps a DynamicUser's
    StateDirectory after the unit is gone, and hubs with temporary accounts fill their disks."""

    async def start(self):
        accounts = SETTINGS.get("system_users")
        if accounts:
            self._ensure_account(accounts["prefix"] + self.user.name, accounts["home_base"])
        ip, port = await super().start()
        await self._wait_for_port(ip or "127.0.0.1", port)
        return ip, port

    async def _wait_for_port(self, ip, port, step=0.1):
        """Return once the server accepts connections (or its unit has stopped, or http_timeout has
        passed: the hub then reports it as usual). SystemdSpawner returns when the unit runs, about
        1.8 s before the server listens, and the hub's own check backs off exponentially with
        jitter, so it saw servers that were up as much as 4 s late."""
        deadline = time.monotonic() + self.http_timeout
        while time.monotonic() < deadline:
            try:
                _reader, writer = await asyncio.open_connection(ip, port)
            except OSError:
                if await self.poll() is not None:
                    return
                await asyncio.sleep(step)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def _ensure_account(self, unix_name, home_base):
        if not SAFE_NAME.match(unix_name) or len(unix_name) > 32:
            raise ValueError(f"{unix_name!r} cannot be a system user name (a-z, 0-9, _ . -; at most 32 characters)")
        try:
            pwd.getpwnam(unix_name)
            return
        except KeyError:
            pass
        home = os.path.join(home_base, unix_name)
        self.log.info("Creating the system user %s (home %s)", unix_name, home)
        subprocess.run(["useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash",
                        "--user-group", unix_name], check=True)
        os.chmod(home, 0o700)

    def delete_forever(self):
        if not SETTINGS.get("delete_state_dirs"):
            return
        name = self.user.name
        if not SAFE_NAME.match(name) or name in (".", ".."):
            self.log.warning("Not removing the state directory of %r (not a plain name)", name)
            return
        private_root, link_root = STATE_ROOTS
        state_dir = os.path.join(private_root, name)
        link = os.path.join(link_root, name)
        # /var/lib/<name> goes only as the link systemd made to the private directory, never as a
        # directory of its own (another program's).
        if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(state_dir):
            os.unlink(link)
            self.log.info("Removed %s (the link to the deleted user's state directory)", link)
        if os.path.isdir(state_dir) and not os.path.islink(state_dir):
            shutil.rmtree(state_dir)
            self.log.info("Removed %s (the deleted user's state directory)", state_dir)

for class_name, traits in SETTINGS["traits"].items():
    for trait, value in traits.items():
        setattr(c[class_name], trait, value)  # noqa: F821

for variable, target in SETTINGS.get("secret_env", {}).items():
    class_name, trait = target.split(".", 1)
    if os.environ.get(variable):
        setattr(c[class_name], trait, os.environ[variable])  # noqa: F821

c.JupyterHub.spawner_class = SciopsSystemdSpawner  # noqa: F821
c.JupyterHub.services = SETTINGS.get("services", [])  # noqa: F821
c.JupyterHub.load_roles = SETTINGS.get("roles", [])  # noqa: F821
