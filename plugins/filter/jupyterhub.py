"""Filters of the jupyterhub role: one configuration tree per hub deployment, merged from the
layers of the configuration hierarchy (the role's profile, values common to every hub, the
deployment's own, the environment's, the vault's), checked, and rendered two ways: the settings
that the single-host hub's jupyterhub_config.py applies, and a Zero to JupyterHub values.yaml.
Both renderings take the authenticator, limits, culler and storage from the same tree."""
from __future__ import annotations

import copy
import re

from ansible.errors import AnsibleFilterError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
AUTH_TYPES = ("tmp", "github", "generic", "pam", "native")
STORAGE_TYPES = ("none", "persistent")
MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?[KMGT]?$")

# Every key a deployment's tree may have, with its default. The profiles below and the
# inventory's layers override these; a key not listed here is refused (a misspelling fails).
DEFAULTS = {
    "name": "",
    "profile": "",
    "state": "present",
    # Public names at the front door; the proxy's port on the hub node (and its API's), the hub's
    # own port: each deployment has its own.
    "server_name": "",
    "server_aliases": [],
    "port": 8000,
    "proxy_api_port": 8001,
    "hub_port": 8081,
    "bind_ip": "127.0.0.1",
    "base_url": "/",
    "auth": {
        "type": "tmp",
        "admin_users": [],
        "allowed_users": [],
        "allow_all": False,
        # github
        "allowed_organizations": [],
        "github_url": "",
        # github and generic OAuth/OIDC
        "client_id": "",
        "client_secret": "",
        "callback_url": "",
        "scope": [],
        # generic OAuth/OIDC (Cognito, EBRAINS IAM, Keycloak)
        "authorize_url": "",
        "token_url": "",
        "userdata_url": "",
        "username_claim": "preferred_username",
        "allowed_groups": [],
        "claim_groups_key": "groups",
        "login_service": "",
        # pam
        "allowed_unix_groups": [],
    },
    "spawner": {
        "mem_limit": "1G",
        "mem_guarantee": "128M",
        "cpu_limit": 1.0,
        "cpu_guarantee": 0.0,
        "default_url": "/lab",
        "isolate_tmp": True,
        "isolate_devices": True,
        "disable_user_sudo": True,
        "start_timeout": 120,
        "http_timeout": 60,
        # Extra properties of each user's unit. OOMPolicy=continue: a kernel that the kernel's OOM
        # killer ends (past mem_limit) is restarted by the server, which itself keeps running.
        "unit_extra_properties": {"OOMPolicy": "continue"},
    },
    # none: nothing kept (single host: a dynamic user whose state directory is deleted with the
    # user; Kubernetes: no volume). persistent: a home per user (single host: a system user
    # <user_prefix><name> with a home under home_base; Kubernetes: a dynamic PVC of capacity).
    "storage": {
        "type": "none",
        "capacity": "10Gi",
        "home_base": "/home",
        "user_prefix": "jupyter-",
    },
    # A directory the users may read and not write (single host: a path on the node; Kubernetes:
    # the PVC claim, mounted at mount_path).
    "shared_data": {"path": "", "claim": "", "mount_path": "/srv/data"},
    "cull": {
        "enabled": True,
        "timeout": 3600,
        "every": 300,
        "max_age": 0,
        "users": False,
        "concurrency": 10,
    },
    # The users' environment: a virtualenv per name, shared by the deployments that name it,
    # owned by root and read-only for the users.
    "user_env": {"name": "default", "packages": ["jupyterlab>=4.2,<5", "ipykernel"]},
    # Keep user servers across a hub restart (the proxy is its own unit, so routes survive too).
    "keep_servers_on_restart": True,
    # Extra traits, {Class: {trait: value}}, applied by both renderings after the role's own.
    "hub_config": {},
    "kubernetes": {
        "namespace": "",
        "release": "",
        "image": {"name": "quay.io/jupyterhub/k8s-singleuser-sample", "tag": ""},
        "values": {},
    },
}

# The profiles of the seeds' two hubs; a deployment names one with `profile:`.
PROFILES = {
    "public": {
        "auth": {"type": "tmp", "allow_all": True},
        "storage": {"type": "none"},
        "cull": {"enabled": True, "timeout": 600, "every": 60, "max_age": 28800, "users": True},
        "keep_servers_on_restart": True,
    },
    "private": {
        "auth": {"type": "github"},
        "storage": {"type": "persistent"},
        "cull": {"enabled": True, "timeout": 1800, "every": 300, "max_age": 0, "users": False},
        "keep_servers_on_restart": True,
    },
}

# The scopes the idle culler needs (not admin); admin:users only when it deletes users.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
CULLER_USER_SCOPES = ["admin:users"]

AUTHENTICATOR_CLASS = {
    "tmp": "tmp",
    "github": "github",
    "generic": "generic-oauth",
    "pam": "pam",
    "native": "nativeauthenticator.NativeAuthenticator",
}
# The authenticator's trait class for each type (where its own traits go).
AUTH_TRAIT_CLASS = {
    "tmp": "TmpAuthenticator",
    "github": "GitHubOAuthenticator",
    "generic": "GenericOAuthenticator",
    "pam": "PAMAuthenticator",
    "native": "NativeAuthenticator",
}


def _fail(msg):
    raise AnsibleFilterError(msg)


def _plain(value):
    """Ansible's lazy containers and tagged strings as plain dicts, lists, str."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, float)):
        return value
    return str(value)


def deep_merge(base, extra):
    """extra merged into base recursively: dicts merge key by key, anything else (lists too) is
    replaced. Neither argument is changed."""
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _unknown_keys(tree, defaults, path):
    found = []
    for key, value in tree.items():
        if key not in defaults:
            found.append(f"{path}.{key}")
        elif isinstance(defaults[key], dict) and defaults[key] and isinstance(value, dict):
            found.extend(_unknown_keys(value, defaults[key], f"{path}.{key}"))
    return found


def jupyterhub_deployments(deployments, common=None, environment=None, secrets=None, profiles=None):
    """Each deployment's tree, merged in the hierarchy's order: the role's defaults, its profile
    (`profile:`), common (values of every hub), the deployment's own entry, environment[name]
    (the environment's layer) and secrets[name] (the vault's layer). Unknown keys are kept for
    jupyterhub_problems to name. Returns a list in the deployments' order."""
    deployments = _plain(deployments or [])
    common = _plain(common or {})
    environment = _plain(environment or {})
    secrets = _plain(secrets or {})
    all_profiles = deep_merge(PROFILES, _plain(profiles or {}))
    if not isinstance(deployments, list):
        _fail("jupyterhub_deployments must be a list of deployments ({name: ..., ...}), got "
              f"{type(deployments).__name__}.")
    for layer, value in (("jupyterhub_common", common), ("jupyterhub_environment", environment),
                         ("jupyterhub_secrets", secrets)):
        if not isinstance(value, dict):
            _fail(f"{layer} must be a mapping, got {type(value).__name__}.")
    out = []
    for index, own in enumerate(deployments):
        if not isinstance(own, dict):
            _fail(f"jupyterhub_deployments[{index}] must be a mapping, got {type(own).__name__}.")
        name = str(own.get("name", ""))
        profile_name = own.get("profile", common.get("profile", ""))
        tree = copy.deepcopy(DEFAULTS)
        if profile_name:
            tree = deep_merge(tree, all_profiles.get(profile_name, {}))
        for layer in (common, own, environment.get(name) or {}, secrets.get(name) or {}):
            tree = deep_merge(tree, layer)
        tree["name"] = name
        tree["profile"] = profile_name or ""
        out.append(tree)
    return out


def _where(d):
    return f"jupyterhub_deployments[{d.get('name') or '?'}]"


def jupyterhub_problems(merged, mode="systemd", profiles=None):
    """The problems in the merged trees, each one sentence naming the variable and the fix; [] when
    there are none."""
    problems = []
    known_profiles = set(PROFILES) | set(_plain(profiles or {}))
    seen_names, seen_ports, seen_servers = {}, {}, {}
    envs = {}
    for d in merged:
        w = _where(d)
        name = d.get("name", "")
        if not NAME.match(name):
            problems.append(f"{w}.name must be a short lower-case name (a-z, 0-9, -; at most 20 characters, a letter "
                            f"first): it names the units and directories; got {name!r}.")
        if name in seen_names:
            problems.append(f"{w}: two deployments are named {name!r}; give each its own name.")
        seen_names[name] = True
        for key in _unknown_keys(d, DEFAULTS, w):
            problems.append(f"{key} is not a setting of the jupyterhub role (misspelt?); see roles/jupyterhub/defaults/main.yml.")
        if d.get("profile") and d["profile"] not in known_profiles:
            problems.append(f"{w}.profile is {d['profile']!r}; use one of {sorted(known_profiles)} or leave it out.")
        if d.get("state") not in ("present", "absent"):
            problems.append(f"{w}.state must be present or absent, got {d.get('state')!r}.")
        if d.get("state") == "absent":
            continue
        for key in ("port", "proxy_api_port", "hub_port"):
            port = d.get(key)
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                problems.append(f"{w}.{key} must be a port number, got {port!r}.")
            elif port in seen_ports:
                problems.append(f"{w}.{key} {port} is already used by {seen_ports[port]}; give every hub its own ports.")
            else:
                seen_ports[port] = f"{w}.{key}"
        server = d.get("server_name")
        if server and server in seen_servers:
            problems.append(f"{w}.server_name {server} is also {seen_servers[server]}'s; give each hub its own public name.")
        seen_servers[server] = w
        if not str(d.get("base_url", "/")).startswith("/") or not str(d.get("base_url", "/")).endswith("/"):
            problems.append(f"{w}.base_url must start and end with /, got {d.get('base_url')!r}.")
        problems.extend(_auth_problems(d, w, mode))
        problems.extend(_spawner_problems(d, w))
        storage = d.get("storage", {})
        if storage.get("type") not in STORAGE_TYPES:
            problems.append(f"{w}.storage.type must be one of {list(STORAGE_TYPES)}, got {storage.get('type')!r}.")
        cull = d.get("cull", {})
        for key in ("timeout", "every", "max_age", "concurrency"):
            value = cull.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.append(f"{w}.cull.{key} must be a whole number of seconds (0 or more), got {value!r}.")
        if cull.get("enabled") and isinstance(cull.get("timeout"), int) and cull["timeout"] <= 0:
            problems.append(f"{w}.cull.timeout must be above 0 when cull.enabled is true.")
        env = d.get("user_env", {})
        if not NAME.match(str(env.get("name", ""))):
            problems.append(f"{w}.user_env.name must be a short lower-case name, got {env.get('name')!r}.")
        elif env.get("name") in envs and envs[env["name"]][1] != env.get("packages"):
            problems.append(f"{w}.user_env: the environment {env['name']!r} is also {envs[env['name']][0]}'s with other "
                            f"packages; give it the same packages or another name.")
        else:
            envs[env.get("name")] = (w, env.get("packages"))
        if not isinstance(env.get("packages"), list) or not all(isinstance(p, str) and p for p in env.get("packages") or []):
            problems.append(f"{w}.user_env.packages must be a list of pip requirement strings.")
        if not isinstance(d.get("hub_config"), dict) or not all(isinstance(v, dict) for v in d.get("hub_config", {}).values()):
            problems.append(f"{w}.hub_config must map class names to {{trait: value}} mappings.")
        if mode == "kubernetes":
            if d["auth"].get("type") == "pam":
                problems.append(f"{w}.auth.type pam needs the node's accounts: use tmp, github, generic or native with "
                                f"jupyterhub_mode kubernetes.")
            if d.get("shared_data", {}).get("path") and not d.get("shared_data", {}).get("claim"):
                problems.append(f"{w}.shared_data.claim names the PVC of the shared data in Kubernetes; set it "
                                f"(shared_data.path is the single-host directory).")
    return problems


def _auth_problems(d, w, mode):
    problems = []
    auth = d.get("auth", {})
    kind = auth.get("type")
    if kind not in AUTH_TYPES:
        return [f"{w}.auth.type must be one of {list(AUTH_TYPES)}, got {kind!r}."]
    for key in ("admin_users", "allowed_users", "allowed_organizations", "allowed_groups", "allowed_unix_groups", "scope"):
        if not isinstance(auth.get(key), list):
            problems.append(f"{w}.auth.{key} must be a list, got {auth.get(key)!r}.")
    if not isinstance(auth.get("allow_all"), bool):
        problems.append(f"{w}.auth.allow_all must be true or false (a boolean, not a string), got {auth.get('allow_all')!r}.")
    if problems:
        return problems
    if kind != "tmp" and auth["allow_all"]:
        problems.append(f"{w}.auth.allow_all is true with auth.type {kind}: allow_all is only for tmp (temporary "
                        f"accounts); list who may log in in auth.allowed_users"
                        f"{', auth.allowed_organizations' if kind == 'github' else ''}"
                        f"{', auth.allowed_groups' if kind == 'generic' else ''} instead.")
    if kind != "tmp" and d.get("storage", {}).get("type") == "none" and mode == "systemd":
        problems.append(f"{w}.storage.type none runs each user as a systemd dynamic user whose state directory is "
                        f"/var/lib/<user name>: only tmp's generated names are safe there; set storage.type persistent "
                        f"for a {kind} login on a single host.")
    if kind == "tmp" and d.get("storage", {}).get("type") == "persistent":
        problems.append(f"{w}.storage.type persistent with auth.type tmp: temporary accounts have no storage; "
                        f"set storage.type none.")
    allow_keys = {
        "github": ("allowed_users", "allowed_organizations"),
        "generic": ("allowed_users", "allowed_groups"),
        "pam": ("allowed_users", "allowed_unix_groups"),
        "native": ("allowed_users",),
    }.get(kind, ())
    if allow_keys and not any(auth.get(k) for k in allow_keys) and not auth["allow_all"]:
        problems.append(f"{w}.auth: {kind} login with nobody allowed (JupyterHub 5 and oauthenticator fail closed): set "
                        + " or ".join(f"{w}.auth.{k}" for k in allow_keys) + ".")
    if kind in ("github", "generic"):
        for key in ("client_id", "client_secret"):
            if not auth.get(key):
                problems.append(f"{w}.auth.{key} is empty: set it (the secret from the vault, "
                                f"jupyterhub_secrets.{d.get('name')}.auth.{key}).")
        if not auth.get("callback_url") and not d.get("server_name"):
            problems.append(f"{w}.auth.callback_url is empty and there is no server_name to derive it from: set one.")
    if kind == "generic":
        for key in ("authorize_url", "token_url", "userdata_url"):
            if not auth.get(key):
                problems.append(f"{w}.auth.{key} is empty: generic OAuth/OIDC needs the provider's {key.replace('_', ' ')}.")
    for org in auth.get("allowed_organizations") or []:
        if not isinstance(org, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]*(:[A-Za-z0-9_.-]+)?$", org):
            problems.append(f"{w}.auth.allowed_organizations: {org!r} is not 'org' or 'org:team'.")
    return problems


def _spawner_problems(d, w):
    problems = []
    sp = d.get("spawner", {})
    for key in ("mem_limit", "mem_guarantee"):
        value = sp.get(key)
        if value not in (None, "") and not MEMORY.match(str(value)):
            problems.append(f"{w}.spawner.{key} must be a size such as 512M or 1G, got {value!r}.")
    for key in ("cpu_limit", "cpu_guarantee"):
        value = sp.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            problems.append(f"{w}.spawner.{key} must be a number of CPUs (e.g. 1 or 0.5), got {value!r}.")
    for key in ("isolate_tmp", "isolate_devices", "disable_user_sudo"):
        if not isinstance(sp.get(key), bool):
            problems.append(f"{w}.spawner.{key} must be true or false, got {sp.get(key)!r}.")
    if sp.get("disable_user_sudo") is False:
        problems.append(f"{w}.spawner.disable_user_sudo is false: user servers run without root; keep it true.")
    return problems


def _callback_url(d):
    auth = d["auth"]
    return auth.get("callback_url") or f"https://{d['server_name']}{d['base_url']}hub/oauth_callback"


def jupyterhub_auth_traits(d):
    """The authenticator's traits, {Class: {trait: value}}, for both renderings. Secrets are left
    out (the single-host hub reads them from its environment file; see jupyterhub_secret_env)."""
    auth = d["auth"]
    kind = auth["type"]
    base = {"admin_users": sorted(set(auth["admin_users"])), "allow_all": kind == "tmp"}
    if auth["allowed_users"]:
        base["allowed_users"] = sorted(set(auth["allowed_users"]))
    traits = {"JupyterHub": {"authenticator_class": AUTHENTICATOR_CLASS[kind]}, "Authenticator": base}
    own = {}
    if kind == "github":
        own = {"client_id": auth["client_id"], "oauth_callback_url": _callback_url(d),
               "allowed_organizations": sorted(set(auth["allowed_organizations"])),
               "scope": auth["scope"] or (["read:org"] if auth["allowed_organizations"] else [])}
        if auth["github_url"]:
            own["github_url"] = auth["github_url"]
    elif kind == "generic":
        own = {"client_id": auth["client_id"], "oauth_callback_url": _callback_url(d),
               "authorize_url": auth["authorize_url"], "token_url": auth["token_url"],
               "userdata_url": auth["userdata_url"], "username_claim": auth["username_claim"],
               "scope": auth["scope"] or ["openid", "profile", "email"]}
        if auth["allowed_groups"]:
            own["allowed_groups"] = sorted(set(auth["allowed_groups"]))
            own["manage_groups"] = True
            own["auth_state_groups_key"] = f"oauth_user.{auth['claim_groups_key']}"
        if auth["login_service"]:
            own["login_service"] = auth["login_service"]
    elif kind == "pam":
        if auth["allowed_unix_groups"]:
            own = {"allowed_groups": sorted(set(auth["allowed_unix_groups"]))}
    if own:
        traits[AUTH_TRAIT_CLASS[kind]] = own
    return traits


def jupyterhub_secret_env(d):
    """The hub's secret environment variables (name: value) for its 0600 environment file; the
    configuration reads them by name."""
    env = {}
    if d["auth"]["type"] in ("github", "generic"):
        env["JUPYTERHUB_OAUTH_CLIENT_SECRET"] = d["auth"]["client_secret"]
    return env


def jupyterhub_culler_args(d):
    """The idle culler's flags, in --name=value form (jupyterhub-idle-culler 2.0 refuses bare boolean
    flags; the =value form works on 1.x and 2.x)."""
    cull = d["cull"]
    args = [f"--timeout={cull['timeout']}", f"--cull-every={cull['every']}", f"--concurrency={cull['concurrency']}"]
    if cull["max_age"]:
        args.append(f"--max-age={cull['max_age']}")
    args.append(f"--cull-users={'True' if cull['users'] else 'False'}")
    return args


def jupyterhub_culler_scopes(d):
    """The scopes of the culler's role: only what it needs (admin:users only when it culls users)."""
    return CULLER_SCOPES + (CULLER_USER_SCOPES if d["cull"]["users"] else [])


def _bytes_spec(value):
    return str(value) if value not in (None, "") else None


def jupyterhub_settings(d, paths):
    """What the single-host hub's jupyterhub_config.py applies: traits by class, the culler service
    and its role, the spawner's state-directory clean-up. paths: the role's directories for this
    deployment (state_dir, venv, user_venv, config_dir, proxy_api_url)."""
    sp, storage, cull = d["spawner"], d["storage"], d["cull"]
    dynamic = storage["type"] == "none"
    traits = deep_merge(jupyterhub_auth_traits(d), {
        "JupyterHub": {
            "bind_url": f"http://{d['bind_ip']}:{d['port']}{d['base_url']}",
            "hub_bind_url": f"http://127.0.0.1:{d['hub_port']}",
            "cleanup_servers": not d["keep_servers_on_restart"],
            "cleanup_proxy": not d["keep_servers_on_restart"],
            "db_url": f"sqlite:///{paths['state_dir']}/jupyterhub.sqlite",
            "cookie_secret_file": f"{paths['state_dir']}/jupyterhub_cookie_secret",
            # The spawn progress page is an event stream: nginx at the front door must not hold it.
            "tornado_settings": {"headers": {"X-Accel-Buffering": "no"}},
        },
        "ConfigurableHTTPProxy": {"should_start": False, "api_url": paths["proxy_api_url"]},
        "Spawner": {
            "default_url": sp["default_url"],
            "start_timeout": sp["start_timeout"],
            "http_timeout": sp["http_timeout"],
            "cmd": [f"{paths['user_venv']}/bin/jupyterhub-singleuser"],
        },
        "SystemdSpawner": {
            "mem_limit": _bytes_spec(sp["mem_limit"]),
            "cpu_limit": float(sp["cpu_limit"]) if sp["cpu_limit"] else None,
            "isolate_tmp": sp["isolate_tmp"],
            "isolate_devices": sp["isolate_devices"],
            "disable_user_sudo": sp["disable_user_sudo"],
            "dynamic_users": dynamic,
            "unit_name_template": f"jupyter-{d['name']}-{{USERNAME}}",
            "extra_paths": [f"{paths['user_venv']}/bin"],
            "unit_extra_properties": dict(sp["unit_extra_properties"]),
        },
    })
    if d["shared_data"]["path"]:
        traits["SystemdSpawner"]["readonly_paths"] = [d["shared_data"]["path"]]
    if not dynamic:
        prefix = "" if d["auth"]["type"] == "pam" else storage["user_prefix"]
        traits["SystemdSpawner"]["username_template"] = f"{prefix}{{USERNAME}}"
        if d["auth"]["type"] != "pam":
            traits["SystemdSpawner"]["user_workingdir"] = f"{storage['home_base']}/{prefix}{{USERNAME}}"
    for cls, values in d["hub_config"].items():
        traits = deep_merge(traits, {cls: values})
    settings = {
        "traits": traits,
        # Accounts the hub creates for users of an external login (persistent storage, not pam).
        "system_users": None if dynamic or d["auth"]["type"] == "pam" else {
            "prefix": storage["user_prefix"], "home_base": storage["home_base"]},
        # The state directories (DynamicUser's StateDirectory) a removed user leaves behind.
        "delete_state_dirs": dynamic,
        "secret_env": {"JUPYTERHUB_OAUTH_CLIENT_SECRET": f"{AUTH_TRAIT_CLASS[d['auth']['type']]}.client_secret"}
        if d["auth"]["type"] in ("github", "generic") else {},
        "services": [],
        "roles": [],
    }
    if cull["enabled"]:
        settings["services"].append({
            "name": "idle-culler",
            "command": [f"{paths['venv']}/bin/python3", "-m", "jupyterhub_idle_culler"] + jupyterhub_culler_args(d),
        })
        settings["roles"].append({"name": "idle-culler", "scopes": jupyterhub_culler_scopes(d),
                                  "services": ["idle-culler"]})
    return settings


def jupyterhub_z2jh_values(d):
    """The deployment as Zero to JupyterHub chart values (the chart's values schema checks them)."""
    sp, storage, cull, auth = d["spawner"], d["storage"], d["cull"], d["auth"]
    hub_config = jupyterhub_auth_traits(d)
    if auth["type"] in ("github", "generic"):
        hub_config[AUTH_TRAIT_CLASS[auth["type"]]]["client_secret"] = auth["client_secret"]
    for cls, values in d["hub_config"].items():
        hub_config = deep_merge(hub_config, {cls: values})
    singleuser = {
        "defaultUrl": sp["default_url"],
        "startTimeout": sp["start_timeout"],
        "allowPrivilegeEscalation": not sp["disable_user_sudo"],
        "memory": {"limit": _bytes_spec(sp["mem_limit"]), "guarantee": _bytes_spec(sp["mem_guarantee"])},
        "cpu": {"limit": float(sp["cpu_limit"]) if sp["cpu_limit"] else None,
                "guarantee": float(sp["cpu_guarantee"]) if sp["cpu_guarantee"] else None},
        "storage": {"type": "none"} if storage["type"] == "none" else {"type": "dynamic", "capacity": storage["capacity"]},
    }
    image = d["kubernetes"]["image"]
    if image.get("name"):
        singleuser["image"] = {"name": image["name"]}
        if image.get("tag"):
            singleuser["image"]["tag"] = str(image["tag"])
    shared = d["shared_data"]
    if shared.get("claim"):
        singleuser["storage"]["extraVolumes"] = [
            {"name": "shared-data", "persistentVolumeClaim": {"claimName": shared["claim"], "readOnly": True}}]
        singleuser["storage"]["extraVolumeMounts"] = [
            {"name": "shared-data", "mountPath": shared["mount_path"], "readOnly": True}]
    values = {
        "hub": {"config": hub_config, "baseUrl": d["base_url"]},
        "singleuser": singleuser,
        "cull": {
            "enabled": bool(cull["enabled"]),
            "users": bool(cull["users"]),
            "timeout": cull["timeout"],
            "every": cull["every"],
            "maxAge": cull["max_age"],
            "concurrency": cull["concurrency"],
        },
    }
    if d["server_name"]:
        values["ingress"] = {"enabled": True, "hosts": [d["server_name"]] + list(d["server_aliases"])}
    return deep_merge(values, d["kubernetes"]["values"])


SECRET_KEYS = (("auth", "client_secret"),)


def jupyterhub_redacted(merged):
    """The merged trees without their secrets (each secret that is set becomes "<hidden>"), for the
    tasks that loop over the deployments: a failed task prints its item whole."""
    out = []
    for d in merged:
        d = copy.deepcopy(d)
        for section, key in SECRET_KEYS:
            if d.get(section, {}).get(key):
                d[section][key] = "<hidden>"
        out.append(d)
    return out


def jupyterhub_frontdoor_services(merged, host, upstream="127.0.0.1", proxy_read_timeout="3600s"):
    """The hubs on host as entries of the front door (the frontdoor role's frontdoor_services):
    proxied with WebSockets to the hub's proxy. Hubs have no colours: both colours of the entry
    point at the one proxy port, so the front door's live link never changes what is served."""
    out = []
    for d in merged:
        if d.get("state") != "present" or not d.get("server_name"):
            continue
        out.append({
            "name": f"jupyterhub_{d['name'].replace('-', '_')}",
            "kind": "asgi",
            "server_name": d["server_name"],
            "server_aliases": list(d["server_aliases"]),
            "ports": {"blue": d["port"], "green": d["port"]},
            "initial_colour": "blue",
            "upstream": [upstream],
            "host_list": [host],
            "hosts": [host],
            "health_path": f"{d['base_url']}hub/health",
            "headers": {},
            "data_dirs": [],
            "client_max_body_size": "1g",
            "proxy_read_timeout": proxy_read_timeout,
            "tls_certificate": "",
            "tls_certificate_key": "",
        })
    return out


LOOPBACK_PREFIX = "127."


def _host_deployments(hv):
    """A hub node's deployments merged from its own variables (hostvars), without the vault's
    layer: the front door and the firewall need names, addresses and ports, never a secret."""
    if str(hv.get("jupyterhub_mode", "systemd")) != "systemd":
        return []
    merged = jupyterhub_deployments(hv.get("jupyterhub_deployments") or [], hv.get("jupyterhub_common") or {},
                                    hv.get("jupyterhub_environment") or {}, {}, hv.get("jupyterhub_profiles") or {})
    return [d for d in merged if d.get("state") == "present" and d.get("server_name")]


def jupyterhub_frontdoor_catalogue(hub_hosts, hostvars, frontdoor_hosts):
    """The hubs of every hub node (hub_hosts: the jupyterhub group) as front door entries, built from
    the inventory alone, so every playbook that configures the front door (services.yml,
    jupyterhub.yml) serves the same hubs and a front door may sit on another node than its hubs.
    A hub whose proxy listens on loopback can only be served by a front door on its own node: any
    other layout is refused with the variable to set."""
    entries, seen = [], {}
    frontdoor_hosts = [str(h) for h in frontdoor_hosts or []]
    for host in [str(h) for h in hub_hosts or []]:
        for d in _host_deployments(hostvars[host]):
            where = f"{host}: jupyterhub_deployments[{d['name']}]"
            others = [h for h in frontdoor_hosts if h != host]
            if d["bind_ip"].startswith(LOOPBACK_PREFIX) and others:
                _fail(f"{where}.bind_ip is {d['bind_ip']} (loopback), but the front door {', '.join(others)} is another "
                      f"node: set bind_ip to {host}'s private address (the firewall then opens port {d['port']} to the "
                      f"front doors only), or put the hub on the front door's node.")
            upstream = d["bind_ip"]
            if upstream == "0.0.0.0":
                _fail(f"{where}.bind_ip 0.0.0.0 would expose the hub's proxy on every address: set {host}'s "
                      f"private address (or 127.0.0.1 when the front door is on the same node).")
            for entry in jupyterhub_frontdoor_services([d], host, upstream=upstream):
                for name in [entry["server_name"]] + entry["server_aliases"]:
                    if name in seen:
                        _fail(f"{where}.server_name {name} is also served for {seen[name]}: give each hub its own name.")
                    seen[name] = where
                if any(e["name"] == entry["name"] for e in entries):
                    entry["name"] = f"{entry['name']}_{re.sub('[^a-z0-9_]', '_', host.lower())}"
                entries.append(entry)
    return entries


def jupyterhub_firewall_rules(merged, frontdoor_addresses):
    """Inbound rules (the common role's common_firewall_rules) for the hubs of this node whose proxy
    listens on a non-loopback address: its port, from the front doors only."""
    rules = []
    for d in merged or []:
        if d.get("state") != "present" or str(d.get("bind_ip", "")).startswith(LOOPBACK_PREFIX):
            continue
        rules.append({"port": d["port"], "sources": sorted({str(a) for a in frontdoor_addresses or []}),
                      "comment": f"jupyterhub {d['name']} proxy from the front door"})
    return rules


def jupyterhub_user_envs(merged):
    """The users' environments to build: [{name, packages}], one per name."""
    seen = {}
    for d in merged:
        if d.get("state") == "present":
            seen.setdefault(d["user_env"]["name"], {"name": d["user_env"]["name"], "packages": list(d["user_env"]["packages"])})
    return list(seen.values())


def jupyterhub_env_pip_job(env, envs_dir, singleuser_requirement):
    """install.yml's job for one users' environment ({name, packages}): its virtualenv with
    jupyterhub-singleuser and the packages named, installed without pip's cache."""
    return {"label": f"env {env['name']}", "venv": f"{envs_dir}/{env['name']}",
            "packages": [singleuser_requirement] + list(env["packages"]), "env": {"PIP_NO_CACHE_DIR": "1"}}


def jupyterhub_summary(merged):
    """One line per hub: name, URL, login, storage, culling."""
    lines = []
    for d in merged:
        if d.get("state") != "present":
            continue
        url = f"https://{d['server_name']}{d['base_url']}" if d["server_name"] else f"http://{d['bind_ip']}:{d['port']}{d['base_url']}"
        cull = d["cull"]
        culling = (f"idle {cull['timeout']} s" + (f", max age {cull['max_age']} s" if cull["max_age"] else "")
                   + (", users removed" if cull["users"] else "")) if cull["enabled"] else "off"
        lines.append(f"{d['name']}: {url} (login {d['auth']['type']}, storage {d['storage']['type']}, culling {culling})")
    return lines


class FilterModule(object):
    def filters(self):
        return {
            "jupyterhub_deployments": jupyterhub_deployments,
            "jupyterhub_problems": jupyterhub_problems,
            "jupyterhub_auth_traits": jupyterhub_auth_traits,
            "jupyterhub_secret_env": jupyterhub_secret_env,
            "jupyterhub_culler_args": jupyterhub_culler_args,
            "jupyterhub_culler_scopes": jupyterhub_culler_scopes,
            "jupyterhub_settings": jupyterhub_settings,
            "jupyterhub_z2jh_values": jupyterhub_z2jh_values,
            "jupyterhub_frontdoor_services": jupyterhub_frontdoor_services,
            "jupyterhub_frontdoor_catalogue": jupyterhub_frontdoor_catalogue,
            "jupyterhub_firewall_rules": jupyterhub_firewall_rules,
            "jupyterhub_redacted": jupyterhub_redacted,
            "jupyterhub_user_envs": jupyterhub_user_envs,
            "jupyterhub_env_pip_job": jupyterhub_env_pip_job,
            "jupyterhub_summary": jupyterhub_summary,
            "jupyterhub_deep_merge": deep_merge,
        }
