"""roles/letsencrypt/files/godaddy-hook end to end: certbot's environment in, the GoDaddy test
server's API and DNS face (127.0.0.1) behind, dig in between.

The hook is installed as the role installs it (the two module_utils files beside it under
ansible_collections/...) and run with the Python interpreter in isolated mode without
site-packages (-I -S), so Ansible cannot be imported: the standard-library HTTP path is used,
as on a node.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers.dns import DnsServer
from tests.servers.godaddy import GoDaddyServer

ROOT = Path(__file__).resolve().parents[4]
HOOK = ROOT / "roles" / "letsencrypt" / "files" / "godaddy-hook"
UTILS = ROOT / "plugins" / "module_utils"


@pytest.fixture(autouse=True)
def _dig_installed():
    # The hook's propagation check and these tests ask the DNS face with dig: missing, they fail.
    if shutil.which("dig") is None:
        pytest.fail("dig is missing: `make setup` installs it (bind9-dnsutils); the DNS-01 hook tests need it")


def install(directory: Path) -> Path:
    """Lay the hook out as the role does: DIR/godaddy-hook, DIR/ansible_collections/.../module_utils/."""
    target = directory / "ansible_collections" / "sciops" / "platform" / "plugins" / "module_utils"
    target.mkdir(parents=True)
    for name in ("http_api.py", "godaddy.py"):
        shutil.copy(UTILS / name, target / name)
    shutil.copy(HOOK, directory / "godaddy-hook")
    return directory / "godaddy-hook"


class Hook:
    def __init__(self, tmp_path, server, dns):
        self.path = install(tmp_path / "sciops-letsencrypt")
        self.server = server
        self.config_path = tmp_path / "godaddy.json"
        self.config = {"api_key": server.key, "api_secret": server.secret, "base_url": server.url,
                       "zones": sorted(server.zones), "nameservers": ["%s:%d" % dns.address],
                       "propagation_timeout": 20, "ttl": 600, "poll_interval": 0.5, "api_timeout": 10}
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SCIOPS_GODADDY_HOOK_CONFIG": str(self.config_path)}

    def _prepare(self, action, domain, value, env):
        self.config_path.write_text(json.dumps(self.config))
        environ = dict(self.env, CERTBOT_DOMAIN=domain, CERTBOT_VALIDATION=value, CERTBOT_ALL_DOMAINS=domain,
                       CERTBOT_REMAINING_CHALLENGES="0")
        environ.update(env or {})
        return [sys.executable, "-I", "-S", str(self.path), action], environ

    def run(self, action, domain, value, env=None):
        cmd, environ = self._prepare(action, domain, value, env)
        return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=60, check=False)

    def start(self, action, domain, value, env=None):
        cmd, environ = self._prepare(action, domain, value, env)
        return subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def hook(tmp_path, godaddy, godaddy_dns):
    return Hook(tmp_path, godaddy, godaddy_dns)


def dig_txt(dns, name):
    host, port = dns.address
    out = subprocess.run(["dig", "@" + host, "-p", str(port), "+short", "TXT", name],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return sorted(line.strip().strip('"') for line in out.splitlines() if line.strip())


def txt(server, name, zone="example.org"):
    return sorted(r["data"] for r in server.records(zone, "TXT", name))


def lines(text):
    return [line for line in text.splitlines() if line.strip()]


def test_auth_waits_until_dns_shows_the_value(hook, godaddy, godaddy_dns):
    godaddy_dns.freeze()  # the nameserver lags behind the API
    proc = hook.start("auth", "example.org", "token-apex")
    time.sleep(2.0)
    assert proc.poll() is None, "auth returned before the nameserver had the value"
    assert txt(godaddy, "_acme-challenge") == ["token-apex"]  # written through the API already
    godaddy_dns.thaw()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "godaddy-hook: waiting for TXT _acme-challenge.example.org at 127.0.0.1:%d (" % godaddy_dns.address[1] in err
    assert "visible at" in lines(err)[-1]
    assert out == ""  # certbot hands an auth hook's stdout to the cleanup hook; nothing is printed there
    assert dig_txt(godaddy_dns, "_acme-challenge.example.org") == ["token-apex"]
    assert [(c.method, c.path) for c in godaddy.calls()] == [
        ("GET", "/v1/domains/example.org/records/TXT/_acme-challenge"),
        ("PUT", "/v1/domains/example.org/records/TXT/_acme-challenge")]


def test_second_auth_adds_and_cleanup_removes_only_its_value(hook, godaddy, godaddy_dns):
    # apex and wildcard of one certificate: two values at _acme-challenge.example.org
    assert hook.run("auth", "example.org", "token-apex").returncode == 0
    r = hook.run("auth", "*.example.org", "token-wild")
    assert r.returncode == 0, r.stderr
    assert txt(godaddy, "_acme-challenge") == ["token-apex", "token-wild"]
    assert dig_txt(godaddy_dns, "_acme-challenge.example.org") == ["token-apex", "token-wild"]
    assert all(rec["ttl"] == 600 for rec in godaddy.records("example.org", "TXT"))

    r = hook.run("cleanup", "*.example.org", "token-wild")
    assert r.returncode == 0, r.stderr
    assert txt(godaddy, "_acme-challenge") == ["token-apex"]
    assert dig_txt(godaddy_dns, "_acme-challenge.example.org") == ["token-apex"]

    godaddy.reset_log()
    r = hook.run("cleanup", "example.org", "token-apex")
    assert r.returncode == 0, r.stderr
    assert txt(godaddy, "_acme-challenge") == []
    assert [c.method for c in godaddy.calls()] == ["GET", "DELETE"]  # the set became empty: deleted
    assert dig_txt(godaddy_dns, "_acme-challenge.example.org") == []


def test_auth_again_with_the_same_value_writes_nothing(hook, godaddy):
    assert hook.run("auth", "example.org", "token").returncode == 0
    godaddy.reset_log()
    r = hook.run("auth", "example.org", "token")
    assert r.returncode == 0, r.stderr
    assert godaddy.writes() == []


def test_cleanup_of_an_absent_value_is_not_an_error(hook, godaddy):
    r = hook.run("cleanup", "www.example.org", "never-written")
    assert r.returncode == 0, r.stderr
    assert "nothing to remove" in r.stderr
    assert godaddy.writes() == []
    assert hook.run("auth", "www.example.org", "other").returncode == 0
    r = hook.run("cleanup", "www.example.org", "never-written")
    assert r.returncode == 0 and txt(godaddy, "_acme-challenge.www") == ["other"]


def test_wildcard_and_longest_zone_match(tmp_path):
    server = GoDaddyServer(domains=("example.org", "lab.example.org")).start()
    dns = DnsServer(server).start()
    try:
        hook = Hook(tmp_path, server, dns)
        r = hook.run("auth", "*.x.lab.example.org", "token-x")
        assert r.returncode == 0, r.stderr
        assert txt(server, "_acme-challenge.x", "lab.example.org") == ["token-x"]
        assert server.records("example.org", "TXT") == []
        assert dig_txt(dns, "_acme-challenge.x.lab.example.org") == ["token-x"]
        r = hook.run("auth", "*.x.example.org", "token-y")
        assert r.returncode == 0, r.stderr
        assert txt(server, "_acme-challenge.x", "example.org") == ["token-y"]
        assert hook.run("cleanup", "*.x.lab.example.org", "token-x").returncode == 0
        assert server.records("lab.example.org", "TXT") == []
    finally:
        dns.stop()
        server.stop()
    assert server.violations == []


def test_unknown_zone_fails_with_one_line(hook, godaddy):
    r = hook.run("auth", "www.example.com", "token")
    assert r.returncode == 1
    assert lines(r.stderr) == ["godaddy-hook: auth failed: www.example.com is in none of the configured zones (example.org)"]
    assert godaddy.calls() == []


def test_unauthorized_is_one_readable_line_without_the_secret(hook, godaddy):
    hook.config["api_secret"] = "wrong-secret-3f9a"
    r = hook.run("auth", "example.org", "token")
    assert r.returncode == 1
    assert len(lines(r.stderr)) == 1, r.stderr
    assert r.stderr.startswith("godaddy-hook: auth failed: GoDaddy API error: HTTP 401 UNABLE_TO_AUTHENTICATE")
    assert "wrong-secret-3f9a" not in r.stderr + r.stdout
    assert godaddy.calls()[0].headers["authorization"] == "sso-key test-key:wrong-secret-3f9a"


def test_propagation_timeout(hook, godaddy):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:  # a nameserver that never answers
        silent.bind(("127.0.0.1", 0))
        where = "127.0.0.1:%d" % silent.getsockname()[1]
        hook.config.update(nameservers=[where], propagation_timeout=3, poll_interval=1)
        started = time.monotonic()
        r = hook.run("auth", "example.org", "token")
        took = time.monotonic() - started
    assert r.returncode == 1
    assert 3 <= took < 15
    err = lines(r.stderr)
    assert any(line.startswith("godaddy-hook: waiting for TXT _acme-challenge.example.org at %s (" % where) and
               line.endswith(" of 3s)") for line in err), r.stderr
    assert err[-1].startswith("godaddy-hook: auth failed: TXT _acme-challenge.example.org with the new value not seen at %s "
                              "within 3s" % where)
    assert txt(godaddy, "_acme-challenge") == ["token"]  # left for certbot's cleanup hook


def test_without_nameservers_the_zone_ns_records_are_asked(hook, godaddy, tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "dig").write_text('#!/bin/sh\necho "$@" >> "%s"\necho \'"token"\'\n' % (tmp_path / "dig.log"))
    (fake / "dig").chmod(0o755)
    hook.config["nameservers"] = []
    r = hook.run("auth", "example.org", "token", env={"PATH": "%s:%s" % (fake, os.environ["PATH"])})
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "dig.log").read_text().splitlines()
    assert sorted(c.split(" +")[0] for c in calls) == ["@ns1.domaincontrol.com -p 53", "@ns2.domaincontrol.com -p 53"]
    assert all(c.endswith("TXT _acme-challenge.example.org") for c in calls)


@pytest.mark.parametrize("config, message", [
    (None, "cannot read the configuration"),
    ("{not json", "is not valid JSON"),
    ({"api_key": "k", "api_secret": "s", "zones": ["example.org"], "zone": "x"}, "unknown key(s)"),
    ({"api_key": "k", "api_secret": "s", "zones": []}, "missing in"),
    ({"api_key": "k", "api_secret": "s", "zones": ["example.org"], "ttl": 60}, "below GoDaddy's minimum of 600"),
    ({"api_key": "k", "api_secret": "s", "zones": ["example.org"], "nameservers": ["host:port"]}, "must be HOST or HOST:PORT"),
])
def test_bad_configuration_is_one_line(tmp_path, config, message):
    path = tmp_path / "config.json"
    if config is not None:
        path.write_text(config if isinstance(config, str) else json.dumps(config))
    env = {"PATH": os.environ["PATH"], "SCIOPS_GODADDY_HOOK_CONFIG": str(path),
           "CERTBOT_DOMAIN": "example.org", "CERTBOT_VALIDATION": "t"}
    r = subprocess.run([sys.executable, "-I", "-S", str(install(tmp_path / "hook")), "cleanup"], env=env,
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1
    assert len(lines(r.stderr)) == 1 and message in r.stderr, r.stderr
    assert r.stderr.startswith("godaddy-hook: cleanup failed: ")


def test_usage_and_missing_certbot_environment(hook):
    r = subprocess.run([sys.executable, "-I", "-S", str(hook.path)], capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 2 and "usage: godaddy-hook auth|cleanup" in r.stderr
    r = hook.run("auth", "", "")
    assert r.returncode == 1 and "CERTBOT_DOMAIN and CERTBOT_VALIDATION must be set" in r.stderr


def test_module_utils_import_without_ansible(tmp_path):
    hook_dir = install(tmp_path / "hook").parent
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from ansible_collections.sciops.platform.plugins.module_utils import http_api, godaddy\n"
            "assert http_api.open_url is None and godaddy.env_fallback is None\n"
            "import importlib.util; assert importlib.util.find_spec('ansible') is None\n" % str(hook_dir))
    r = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
