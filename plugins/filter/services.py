# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that turn the environment's list of web services (``webservice_services``) into what
the roles and playbooks act on: one normalised entry per service (defaults, the service's
profile, the entry itself), the hosts each one runs on, the address each colour listens on, the
addresses the front door reaches them at, the front door's certificates and the firewall rules
of the colours' ports.

The list is data: adding a service is one entry (plus its hosts in the inventory)."""

from __future__ import annotations

from collections.abc import Mapping
import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # used without Ansible (unit tests import the file directly)
    class AnsibleFilterError(Exception):
        pass

KINDS = ("asgi", "wsgi", "static")
COLOURS = ("blue", "green")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
LOOPBACK = "127.0.0.1"

# Every field an entry may have, with its default. Dicts are merged one level deep (an entry's
# env adds to its profile's env).
DEFAULTS = {
    "name": "",
    "kind": "asgi",
    "profile": "",
    "hosts": None,            # group or host names (a string or a list); default: the group named like the service
    "server_name": "",
    "server_aliases": [],
    "acme": None,             # None: the front door's frontdoor_acme_certificates
    "tls_certificate": "",
    "tls_certificate_key": "",
    "ports": {},
    "initial_colour": "blue",
    "method": "source",       # source (virtualenv + unit) or container (image + unit)
    "source": {"repo": "", "ref": "main", "archive": "", "dir": "", "subdir": "", "strip_components": 0},
    "requirements_file": "requirements.txt",
    "server": "uvicorn",      # uvicorn (asgi) or gunicorn (wsgi)
    "server_package": "",     # default: the server's name, unpinned, so the application's own lock decides
    "pip_extra_args": "",
    "entry_point": "",
    "workers": 2,
    # Database connections one worker process may hold at most (its pool's size; 0: none). The
    # platform sizes PostgreSQL's max_connections from it (database_connections).
    "db_connections": 0,
    "env": {},
    "secret_env": {},
    "bootstrap": {"command": "", "script": ""},
    "health_path": "/",
    "health_timeout": 60,
    "maintenance": {"env": "", "health_path": "/"},
    "data_dirs": [],          # [{name, env, location}]: writable by the service, served at location
    "build": {"requirements": [], "command": "", "output": ""},
    "index": "index.html",
    "client_max_body_size": "",
    "proxy_read_timeout": "",
    "headers": {},
    "base_url_env": "",       # the variable the service reads its public URL (https://server_name) from
    "container": {"image": "", "base_image": "python:3.11-slim"},
}
FIELDS = tuple(DEFAULTS)


def _fail(msg):
    raise AnsibleFilterError(msg)


def _plain(value):
    """Plain Python data (dict, list, str, numbers) from Ansible's lazy, tagged containers.

    Ansible 2.19 hands filters lazy containers whose deepcopy also copies their templating
    context (about 0.4 s for the services list on every task that evaluates it); reading each
    value once is all the filters need."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _merge(base, extra, where):
    out = _plain(base)
    for key, value in (extra or {}).items():
        if key not in DEFAULTS:
            _fail(f"{where}: unknown field '{key}'. Known fields: {', '.join(FIELDS)}.")
        if isinstance(DEFAULTS[key], dict) and key not in ("env", "secret_env", "headers", "ports"):
            if value is None:
                continue
            if not isinstance(value, dict):
                _fail(f"{where}.{key} must be a mapping, not {type(value).__name__}.")
            unknown = sorted(set(value) - set(DEFAULTS[key]))
            if unknown:
                _fail(f"{where}.{key}: unknown key(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS[key])}.")
            base_value = dict(out.get(key) or {})
            if key == "source" and any(value.get(k) for k in ("repo", "archive", "dir")):
                # an entry's own source replaces the profile's (not both a repo and an archive)
                for k in ("repo", "archive", "dir"):
                    base_value[k] = ""
            out[key] = dict(base_value, **value)
        elif isinstance(DEFAULTS[key], dict) and key != "ports":
            out[key] = dict(out.get(key) or {}, **(value or {}))
        else:
            out[key] = _plain(value)
    return out


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _hosts(entry, groups, where):
    names = _as_list(entry["hosts"]) or ["frontdoor" if entry["kind"] == "static" else entry["name"]]
    known_hosts = set((groups or {}).get("all", []))
    hosts = []
    for name in names:
        if name in (groups or {}):
            members = groups[name]
        elif name in known_hosts:
            members = [name]
        else:
            _fail(f"{where}.hosts: '{name}' is neither a group nor a host of the inventory. Add the group "
                  f"'{name}' with the service's hosts to the inventory's hosts.yml, or set hosts to an existing group.")
        hosts.extend(h for h in members if h not in hosts)
    return hosts


def service_entries(services, profiles=None, groups=None, addresses=None, frontdoor_group="frontdoor", strict=True):
    """Normalise the services list: defaults <- profile <- entry, then derived fields.

    Each entry gains ``host_list`` (the inventory hosts it runs on), ``frontdoor_hosts``,
    ``listen`` ({host: address the colours bind}: loopback when the only front door is that
    host, else the host's private address) and ``upstream`` ([address, ...]: where the front door
    reaches the colours).

    strict=False (inventory-time uses such as firewall rules, where profiles are not loaded):
    profiles are not merged and only names, hosts and ports are checked."""
    profiles = profiles or {}
    groups = groups or {}
    addresses = addresses or {}
    frontdoors = list(groups.get(frontdoor_group, []))
    out, seen = [], set()
    if not isinstance(services, list):
        _fail(f"webservice_services must be a list of services, not {type(services).__name__}.")
    for index, raw in enumerate(services):
        where = f"webservice_services[{index}]"
        if not isinstance(raw, dict):
            _fail(f"{where} must be a mapping with at least name, kind and server_name.")
        name = raw.get("name", "")
        if not isinstance(name, str) or not NAME.match(name):
            _fail(f"{where}.name '{name}' must be lower-case letters, digits and underscores, starting with a letter.")
        where = f"webservice_services[{index}] ({name})"
        if name in seen:
            _fail(f"{where}: the service name '{name}' is listed twice.")
        seen.add(name)
        profile_name = raw.get("profile") or ""
        if not strict:
            profile_name = ""
        if profile_name and profile_name not in profiles:
            _fail(f"{where}.profile: no profile '{profile_name}' was loaded (known: {', '.join(sorted(profiles)) or 'none'}). "
                  f"A profile is a role of sciops.platform with tasks/profile.yml.")
        entry = _merge(DEFAULTS, profiles.get(profile_name, {}), f"profile {profile_name}")
        entry = _merge(entry, raw, where)
        if strict:
            _check(entry, where)
        entry["host_list"] = _hosts(entry, groups, where)
        entry["frontdoor_hosts"] = frontdoors
        entry["listen"] = {
            host: LOOPBACK if frontdoors == [host] else addresses.get(host, host) for host in entry["host_list"]
        }
        entry["upstream"] = [entry["listen"][host] for host in entry["host_list"]]
        entry["frontdoor_addresses"] = [addresses.get(fd, fd) for fd in frontdoors]
        # a static site's folder inside its colour (<base>/<name>/<colour>/<docroot>)
        entry["docroot"] = "/".join(p for p in ("src", entry["source"].get("subdir", ""), entry["build"].get("output", "")) if p)
        if entry["kind"] == "static":
            strays = [h for h in entry["host_list"] if h not in frontdoors]
            if strays:
                _fail(f"{where}: a static site is served by the front door itself, so its hosts must be front door "
                      f"hosts; {', '.join(strays)} is not in group '{frontdoor_group}'. Set hosts: {frontdoor_group}.")
        out.append(entry)
    if strict:
        _check_ports(out)
    return out


def _check(entry, where):
    if entry["kind"] not in KINDS:
        _fail(f"{where}.kind '{entry['kind']}' is not one of {', '.join(KINDS)}.")
    if not entry["server_name"]:
        _fail(f"{where}.server_name is empty: give the public DNS name the front door serves it at.")
    sources = [k for k in ("repo", "archive", "dir") if entry["source"].get(k)]
    if len(sources) != 1:
        _fail(f"{where}.source: set exactly one of repo, archive or dir (set: {', '.join(sources) or 'none'}). "
              f"For an archive that cannot be fetched here, point source.archive at a file on the controller.")
    if entry["initial_colour"] not in COLOURS:
        _fail(f"{where}.initial_colour must be blue or green.")
    if entry["method"] not in ("source", "container"):
        _fail(f"{where}.method must be source or container.")
    if entry["kind"] == "static":
        if entry["method"] != "source":
            _fail(f"{where}: a static site has no container method; remove method.")
        entry["server_packages"] = []
        return
    if entry["kind"] == "wsgi" and entry["server"] == "uvicorn":
        entry["server"] = "gunicorn"
    if entry["server"] not in ("uvicorn", "gunicorn"):
        _fail(f"{where}.server must be uvicorn (ASGI) or gunicorn (WSGI).")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*$", entry["entry_point"] or ""):
        _fail(f"{where}.entry_point '{entry['entry_point']}' must be module:attribute (e.g. simqueue.main:app).")
    ports = entry["ports"] or {}
    if set(ports) != set(COLOURS) or ports["blue"] == ports["green"]:
        _fail(f"{where}.ports must give distinct ports for blue and green, e.g. {{blue: 8101, green: 8102}}.")
    for colour in COLOURS:
        try:
            port = int(ports[colour])
        except (TypeError, ValueError):
            _fail(f"{where}.ports.{colour} must be a port number, not {ports[colour]!r}.")
        if not 1024 <= port <= 65535:
            _fail(f"{where}.ports.{colour} {port} is outside 1024-65535.")
        ports[colour] = port
    for key in ("workers", "db_connections"):
        try:
            entry[key] = int(entry[key])
        except (TypeError, ValueError):
            _fail(f"{where}.{key} must be a number.")
        if entry[key] < 0:
            _fail(f"{where}.{key} must be 0 or more.")
    if not entry["server_package"]:
        entry["server_package"] = entry["server"]
    # What pip installs beside the application. uvicorn runs on uvloop: with several workers,
    # uvicorn's asyncio loop serves a socket it made with proto 0, so asyncio never sets
    # TCP_NODELAY on the accepted connections and every response on a reused (keep-alive)
    # connection waits about 40 ms for the client's delayed ACK (Nagle). uvloop sets it.
    entry["server_packages"] = [entry["server_package"]] + (["uvloop"] if entry["server"] == "uvicorn" else [])
    for item in entry["data_dirs"]:
        if not isinstance(item, dict) or not NAME.match(str(item.get("name", ""))):
            _fail(f"{where}.data_dirs: each item needs a name (letters, digits, underscores), e.g. "
                  f"{{name: tmp_download, env: NMPI_TMP_FILE_ROOT, location: /tmp_download/}}.")


def _check_ports(entries):
    used = {}
    for entry in entries:
        if entry["kind"] == "static":
            continue
        for host in entry["host_list"]:
            for colour in COLOURS:
                key = (host, entry["ports"][colour])
                if key in used:
                    _fail(f"webservice_services: {entry['name']} {colour} and {used[key]} both use port {key[1]} on {host}.")
                used[key] = f"{entry['name']} {colour}"


def service_names(services, profiles=None, groups=None, addresses=None, frontdoor_group="frontdoor"):
    """The names of the services, after every check of service_entries: a task that shows its
    result (unlike the catalogue's, which holds secrets) and fails with the check's message."""
    return [e["name"] for e in service_entries(services, profiles, groups, addresses, frontdoor_group)]


def service_named(entries, name):
    """The entry called name; an error listing the known services otherwise."""
    known = [e["name"] for e in entries]
    if not name:
        _fail(f"Set -e service=NAME; known services: {', '.join(known) or 'none (webservice_services is empty)'}.")
    for entry in entries:
        if entry["name"] == name:
            return entry
    _fail(f"Unknown service '{name}'; known services: {', '.join(known) or 'none'} (webservice_services in the inventory).")


def services_on_host(entries, host):
    """The entries that run on host."""
    return [e for e in entries if host in e["host_list"]]


def frontdoor_defaults(entries, acme_default=False):
    """The entries with acme resolved (the entry's own, else the front door's default)."""
    out = []
    for entry in entries:
        entry = dict(entry)
        entry["acme"] = bool(acme_default if entry.get("acme") is None else entry["acme"])
        entry.setdefault("tls_certificate", "")
        out.append(entry)
    return out


def frontdoor_headers(entry, defaults):
    """The response headers of a service: the front door's, replaced or removed (null) by its own."""
    headers = dict(defaults or {})
    for name, value in (entry.get("headers") or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = str(value)
    return headers


def frontdoor_certificates(entries, acme_default=False):
    """The certificates the front door wants from ACME: one per service (that has no certificate
    of its own), named after its server_name, covering its aliases too."""
    certs = []
    for entry in entries:
        acme = acme_default if entry.get("acme") is None else entry["acme"]
        if acme and not entry.get("tls_certificate"):
            certs.append({"name": entry["server_name"], "domains": [entry["server_name"]] + list(entry.get("server_aliases") or [])})
    return certs


def colour_firewall_rules(services, host, groups, addresses, frontdoor_group="frontdoor"):
    """Inbound rules for the colours' ports on host, open only to the front doors, for services
    whose colours listen on a private address (front door on another node)."""
    entries = service_entries(services, None, groups, addresses, frontdoor_group, strict=False)
    frontdoor_addresses = sorted({addresses.get(h, h) for h in groups.get(frontdoor_group, [])})
    rules = []
    for entry in entries:
        if entry.get("kind") == "static" or host not in entry.get("host_list", []):
            continue
        if entry["listen"].get(host) == LOOPBACK or set(entry.get("ports") or {}) != set(COLOURS):
            continue
        for colour in COLOURS:
            rules.append({"port": entry["ports"][colour], "sources": list(frontdoor_addresses),
                          "comment": f"{entry['name']} {colour} from the front door"})
    return rules


def app_hosts(services, groups):
    """The hosts that run a Python service (the database's clients)."""
    hosts = []
    for entry in service_entries(services, None, groups, {}, strict=False):
        if entry["kind"] != "static":
            hosts.extend(h for h in entry["host_list"] if h not in hosts)
    return hosts


def database_connections(catalogue):
    """The database connections the services of a catalogue (webservice_catalogue) may hold at
    once: for each service, its hosts x workers x db_connections x 2 (both colours run during a
    deploy or a switch)."""
    total = 0
    for entry in _plain(catalogue or []):
        if entry.get("kind") != "static":
            total += len(entry.get("host_list", [])) * int(entry.get("workers", 0)) * int(entry.get("db_connections", 0)) * 2
    return total


def service_summary(services, frontdoor_host, address):
    """The summary's lines for the services a front door serves."""
    lines = []
    for entry in services:
        names = [entry["server_name"]] + list(entry.get("server_aliases") or [])
        for name in names:
            lines.append(f"Service  {entry['name']:<12} https://{name}/  (curl -k --resolve {name}:443:{address} https://{name}/)")
    lines.append(f"    front door:   {frontdoor_host} at {address}")
    lines.append("    colours:      ansible-playbook playbooks/service_status.yml -e service=NAME"
                 "   (deploy_service.yml, switch_colour.yml, rollback.yml)")
    return lines


def service_env(entry, colour, version, maintenance_status="", data_base="/var/lib/sciops"):
    """The environment of one colour (public part and secrets in one mapping): the service's
    env, its data directories' variables, the maintenance status, then its secrets."""
    env = {"SCIOPS_SERVICE": entry["name"], "SCIOPS_COLOUR": colour, "SCIOPS_RELEASE": version}
    env.update({k: "" if v is None else str(v) for k, v in (entry.get("env") or {}).items()})
    if entry.get("base_url_env"):
        env[entry["base_url_env"]] = f"https://{entry['server_name']}"
    for item in entry.get("data_dirs") or []:
        if item.get("env"):
            env[item["env"]] = f"{data_base}/{entry['name']}/{item['name']}"
    if maintenance_status and entry["maintenance"].get("env"):
        env[entry["maintenance"]["env"]] = maintenance_status
    env.update({k: "" if v is None else str(v) for k, v in (entry.get("secret_env") or {}).items()})
    return env


def node_addresses(hostvars, hosts):
    """{host: the address other nodes reach it at}: its private address where it has one, else
    sciops_node_ipv4, else ansible_host, else its name."""
    out = {}
    for host in hosts:
        hv = hostvars[host]
        out[host] = next((str(hv[key]) for key in ("sciops_node_private_ipv4", "sciops_node_ipv4", "ansible_host")
                          if key in hv and hv[key]), host)
    return out


def venv_share_plan(hostvars, batch, host, fact="__webservice_venv_plan"):
    """Who provides a virtualenv that several hosts of a run need (webservice_venv_share).

    Each host of the play's batch that runs the role for a service publishes a plan (fact):
    {service, venv (its path), key (what it is built from), build (whether this host needs it)}.
    The hosts with the same service, path and key form a group, in batch order. Its provider is
    the first host that already has the virtualenv, else the first that needs it (it builds it);
    the receivers are the others that need it (they get a copy of the provider's). Returns
    {provider, receivers} for host's group; no receivers means nothing is shared."""
    def plan_of(name):
        plan = hostvars[name].get(fact) if name in hostvars else None
        return plan if isinstance(plan, Mapping) and plan.get("service") else None

    mine = plan_of(host)
    if not mine:
        return {"provider": "", "receivers": []}
    identity = (mine["service"], mine["venv"], mine["key"])
    group = [(name, plan_of(name)) for name in batch]
    group = [(name, plan) for name, plan in group if plan and (plan["service"], plan["venv"], plan["key"]) == identity]
    if not any(bool(plan["build"]) for _name, plan in group):
        return {"provider": "", "receivers": []}
    holders = [name for name, plan in group if not plan["build"]]
    provider = holders[0] if holders else group[0][0]
    receivers = [name for name, plan in group if plan["build"] and name != provider]
    return {"provider": provider if receivers else "", "receivers": receivers}


class FilterModule(object):
    def filters(self):
        return {
            "service_entries": service_entries,
            "service_named": service_named,
            "service_names": service_names,
            "services_on_host": services_on_host,
            "frontdoor_certificates": frontdoor_certificates,
            "frontdoor_defaults": frontdoor_defaults,
            "frontdoor_headers": frontdoor_headers,
            "colour_firewall_rules": colour_firewall_rules,
            "service_env": service_env,
            "node_addresses": node_addresses,
            "app_hosts": app_hosts,
            "database_connections": database_connections,
            "service_summary": service_summary,
            "venv_share_plan": venv_share_plan,
        }
