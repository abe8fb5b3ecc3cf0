"""A stateful local test double of the AWX API v2, for the objects playbooks/awx_configure.yml manages.

AWX itself runs only on Kubernetes from registry images, so it cannot run here. This server follows
the contract of AWX's REST API (24.x, the version of the awx.awx collection in the pinned `ansible`
package) for what the awx.awx modules send:

- authentication: ``Authorization: Bearer <token>``, or HTTP basic on ``POST /api/v2/tokens/`` (the
  modules' username/password login, which gets a token and deletes it at the end); anything else is
  401 ``{"detail": "Authentication credentials were not provided."}``; every reply carries
  ``X-API-Product-Name: AWX`` and ``X-API-Product-Version`` (the modules compare it with theirs);
- lists: ``GET /api/v2/<resource>/`` with exact-match filters on the resource's fields (``name``,
  ``organization``, ``inventory`` ...; ``or__id``/``or__name``; an unknown field is 400), pagination
  with ``page`` and ``page_size`` (default 25, at most 200) and ``{"count", "next", "previous",
  "results"}`` with relative ``next`` links;
- ``POST`` creates (201), ``PATCH`` updates (200), ``DELETE`` (204); fields a serializer does not
  know are ignored, as Django REST framework does, and recorded as a contract violation here (a
  client that sends them believes in a change AWX never makes: the cause of "changed on every run");
  read-only fields are ignored silently; errors are 400 ``{field: [message]}`` or ``{"__all__": [...]}``;
- names are unique per organization (per credential type for credentials);
- credentials: inputs checked against their type's fields; secret inputs are stored and read back as
  ``$encrypted$``, and ``$encrypted$`` sent back keeps the stored value; inputs are replaced as a whole;
- job templates: the playbook must be one of the project's (the files of ``project_dir``), the
  organization is the project's; ``credentials/`` association (``{"id"}``, ``{"id", "disassociate"}``,
  204), at most one credential of each kind but vault (one per vault id);
- survey specs (``/job_templates/<id>/survey_spec/``): GET ``{}`` when none; POST validated like AWX
  (name, description, a non-empty spec list, question types, unique variables, defaults of the
  question's type and among its choices, min/max integers) and stored as sent; password defaults
  read back as ``$encrypted$``; DELETE;
- projects: a create or an SCM change starts a project update (``summary_fields.current_update``,
  ``/project_updates/<id>/``, successful at once);
- schedules: the rrule is checked like AWX does (one DTSTART with a TZID or UTC, one RRULE, INTERVAL,
  COUNT at most 999, no numeric BYDAY prefix) and parsed with python-dateutil; ``next_run`` and
  ``timezone`` are computed; ``unified_job_templates`` lists templates, projects and inventory sources;
- webhooks: a job template's ``webhook_service`` is ``""``, ``github`` or ``gitlab``; setting one gives the
  template a key (``GET /job_templates/<id>/webhook_key/``, ``POST`` makes a new one) and a receiver,
  ``POST /api/v2/job_templates/<id>/github/`` (or ``gitlab/``), which needs no credentials: GitHub's
  ``X-Hub-Signature: sha1=<HMAC-SHA1 of the body with the key>`` (or GitLab's ``X-Gitlab-Token: <key>``),
  else 403; a template without that service is 404; an ``X-GitHub-Delivery`` seen before launches
  nothing (202 "Webhook previously received, aborting."); otherwise the template is launched with the
  ``tower_webhook_*`` extra variables AWX adds (202 "Job queued."; ``jobs`` lists them);
- ``/api/v2/ping/``, ``/api/v2/me/``, ``/api/v2/config/``.

Every request is logged (``calls()``, ``writes()``) and ``violations`` lists what broke the contract.

    python -m tests.servers.awx --listen 127.0.0.1:8043 --project-dir . --token TOKEN
"""
from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import hmac
import itertools
import secrets
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

import yaml
from dateutil import rrule as dateutil_rrule

from tests.servers.base import Reply, TestServer

VERSION = "24.6.1"
ENCRYPTED = "$encrypted$"
PAGE_SIZE, MAX_PAGE_SIZE = 25, 200
SURVEY_TYPES = ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")

# Writable fields per resource (the serializers' fields less the read-only ones), and the default
# each takes when a create leaves it out. ``None`` stands for "null".
RESOURCES = {
    "organizations": {
        "type": "organization",
        "fields": {"name": "", "description": "", "max_hosts": 0, "custom_virtualenv": None, "default_environment": None},
        "filters": ("name", "id"),
    },
    "credential_types": {
        "type": "credential_type",
        "fields": {"name": "", "description": "", "kind": "cloud", "inputs": {}, "injectors": {}},
        "read_only": ("managed",),
        "filters": ("name", "id", "kind", "managed"),
    },
    "credentials": {
        "type": "credential",
        "fields": {"name": "", "description": "", "organization": None, "credential_type": None, "inputs": {}},
        "write_only": ("user", "team"),
        "filters": ("name", "id", "organization", "credential_type"),
    },
    "execution_environments": {
        "type": "execution_environment",
        "fields": {"name": "", "description": "", "organization": None, "image": "", "credential": None, "pull": ""},
        "filters": ("name", "id", "organization"),
    },
    "projects": {
        "type": "project",
        "fields": {"name": "", "description": "", "local_path": "", "scm_type": "", "scm_url": "", "scm_branch": "", "scm_refspec": "",
                   "scm_clean": False, "scm_track_submodules": False, "scm_delete_on_update": False, "credential": None, "timeout": 0,
                   "organization": None, "scm_update_on_launch": False, "scm_update_cache_timeout": 0, "allow_override": False,
                   "custom_virtualenv": None, "default_environment": None, "signature_validation_credential": None},
        "filters": ("name", "id", "organization"),
    },
    "inventories": {
        "type": "inventory",
        "fields": {"name": "", "description": "", "organization": None, "kind": "", "host_filter": None, "variables": "",
                   "prevent_instance_group_fallback": False},
        "filters": ("name", "id", "organization"),
    },
    "inventory_sources": {
        "type": "inventory_source",
        "fields": {"name": "", "description": "", "source": "", "source_path": "", "source_vars": "", "scm_branch": "", "credential": None,
                   "enabled_var": "", "enabled_value": "", "host_filter": "", "overwrite": False, "overwrite_vars": False,
                   "custom_virtualenv": None, "timeout": 0, "verbosity": 1, "limit": "", "inventory": None, "update_on_launch": False,
                   "update_cache_timeout": 0, "source_project": None, "execution_environment": None},
        "filters": ("name", "id", "inventory", "source"),
    },
    "job_templates": {
        "type": "job_template",
        "fields": dict({"name": "", "description": "", "job_type": "run", "inventory": None, "project": None, "playbook": "",
                        "scm_branch": "", "forks": 0, "limit": "", "verbosity": 0, "extra_vars": "", "job_tags": "", "force_handlers": False,
                        "skip_tags": "", "start_at_task": "", "timeout": 0, "use_fact_cache": False, "execution_environment": None,
                        "host_config_key": "", "survey_enabled": False, "become_enabled": False, "diff_mode": False,
                        "allow_simultaneous": False, "custom_virtualenv": None, "job_slice_count": 1, "webhook_service": "",
                        "webhook_credential": None, "prevent_instance_group_fallback": False},
                       **{"ask_%s_on_launch" % a: False for a in (
                           "scm_branch", "diff_mode", "variables", "limit", "tags", "skip_tags", "job_type", "verbosity", "inventory",
                           "credential", "execution_environment", "labels", "forks", "job_slice_count", "timeout", "instance_groups")}),
        "read_only": ("organization",),  # the project's organization
        "filters": ("name", "id", "organization", "project", "inventory"),
    },
    "schedules": {
        "type": "schedule",
        "fields": {"name": "", "description": "", "rrule": "", "unified_job_template": None, "enabled": True, "extra_data": {},
                   "inventory": None, "scm_branch": None, "job_type": None, "job_tags": None, "skip_tags": None, "limit": None,
                   "diff_mode": None, "verbosity": None, "execution_environment": None, "forks": None, "job_slice_count": None,
                   "timeout": None},
        "filters": ("name", "id", "unified_job_template"),
    },
}
FOREIGN = {  # field -> the resource it names by id
    "organization": "organizations", "default_environment": "execution_environments", "credential_type": "credential_types",
    "credential": "credentials", "inventory": "inventories", "project": "projects", "source_project": "projects",
    "execution_environment": "execution_environments", "webhook_credential": "credentials",
    "signature_validation_credential": "credentials",
}
# Managed credential types AWX ships (the ones awx_configure.yml uses, with their real ids and inputs).
MANAGED_TYPES = [
    {"id": 1, "name": "Machine", "kind": "ssh", "namespace": "ssh", "inputs": {"fields": [
        {"id": "username", "label": "Username", "type": "string"},
        {"id": "password", "label": "Password", "type": "string", "secret": True, "ask_at_runtime": True},
        {"id": "ssh_key_data", "label": "SSH Private Key", "type": "string", "format": "ssh_private_key", "secret": True, "multiline": True},
        {"id": "ssh_public_key_data", "label": "Signed SSH Certificate", "type": "string", "multiline": True, "secret": True},
        {"id": "ssh_key_unlock", "label": "Private Key Passphrase", "type": "string", "secret": True, "ask_at_runtime": True},
        {"id": "become_method", "label": "Privilege Escalation Method", "type": "string"},
        {"id": "become_username", "label": "Privilege Escalation Username", "type": "string"},
        {"id": "become_password", "label": "Privilege Escalation Password", "type": "string", "secret": True, "ask_at_runtime": True}]}},
    {"id": 2, "name": "Source Control", "kind": "scm", "namespace": "scm", "inputs": {"fields": [
        {"id": "username", "label": "Username", "type": "string"},
        {"id": "password", "label": "Password", "type": "string", "secret": True},
        {"id": "ssh_key_data", "label": "SCM Private Key", "type": "string", "secret": True, "multiline": True}]}},
    {"id": 3, "name": "Vault", "kind": "vault", "namespace": "vault", "inputs": {"fields": [
        {"id": "vault_password", "label": "Vault Password", "type": "string", "secret": True, "ask_at_runtime": True},
        {"id": "vault_id", "label": "Vault Identifier", "type": "string", "format": "vault_id"}], "required": ["vault_password"]}},
]
RRULE_CHECKS = (
    (r"DTSTART.*DTSTART", "Multiple DTSTART is not supported."),
    (r"RRULE.*RRULE", "Multiple RRULE is not supported."),
    (r".*?BYDAY[:=][0-9]+[a-zA-Z]{2}", "BYDAY with numeric prefix not supported."),
)


class AwxServer(TestServer):
    """The AWX API v2 for organizations, credential types, credentials, execution environments,
    projects, inventories, inventory sources, job templates (surveys, credentials) and schedules."""

    spec_name = "awx"

    def __init__(self, token="test-token", username="admin", password="test-password", project_dir=None):
        super().__init__()
        self.spec = AwxContract(self)
        self.token, self.username, self.password = token, username, password
        self.tokens = {token: None}
        self.project_dir = Path(project_dir) if project_dir else None
        self.ids = itertools.count(100)
        self.store = {name: {} for name in RESOURCES}
        self.surveys = {}                      # job template id -> spec
        self.jt_credentials = {}               # job template id -> [credential id]
        self.project_updates = {}
        self.secrets = {}                      # credential id -> {input: value} (what AWX encrypts)
        self.webhook_keys = {}                 # job template id -> its webhook key
        self.jobs = []                         # jobs launched by a webhook
        for managed in MANAGED_TYPES:
            item = dict(copy.deepcopy(managed), description="", injectors={}, managed=True)
            self.store["credential_types"][item["id"]] = self._decorate("credential_types", item)
        org = {"id": 1, "name": "Default", "description": "", "max_hosts": 0, "custom_virtualenv": None, "default_environment": None}
        self.store["organizations"][1] = self._decorate("organizations", org)

    # --- helpers -------------------------------------------------------------------------
    def objects(self, resource):
        return list(self.store[resource].values())

    def find(self, resource, name):
        return next((o for o in self.store[resource].values() if o["name"] == name), None)

    def _decorate(self, resource, item):
        kind = RESOURCES[resource]["type"]
        base = "/api/v2/%s/%d/" % (resource, item["id"])
        item.update(type=kind, url=base, created=item.get("created") or _now(), modified=_now())
        related = {"named_url": base}
        if resource == "job_templates":
            related.update(survey_spec=base + "survey_spec/", credentials=base + "credentials/", launch=base + "launch/",
                           webhook_key=base + "webhook_key/")
            if item.get("webhook_service"):
                related["webhook_receiver"] = base + item["webhook_service"] + "/"
        if resource == "projects":
            related.update(update=base + "update/")
        item["related"] = related
        item.setdefault("summary_fields", {})
        return item

    def error(self, status, code, message, fields=None):
        if status == 400:
            return Reply(400, fields if isinstance(fields, dict) else {"__all__": [message]})
        return Reply(status, {"detail": message})

    def server_error(self):
        return Reply(500, {"detail": "A server error has occurred."})

    def rate_limited(self, wait):
        return Reply(429, {"detail": "Request was throttled. Expected available in %d seconds." % int(wait)}, headers={"Retry-After": int(wait)})

    def decorate(self, reply):
        reply.headers.setdefault("X-API-Product-Name", "AWX")
        reply.headers.setdefault("X-API-Product-Version", VERSION)
        reply.headers.setdefault("X-API-Node", "awx-test-double")
        return reply

    def authorized(self, headers):
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return None
        if auth.startswith("Basic "):
            user, _sep, password = base64.b64decode(auth[6:]).decode().partition(":")
            if (user, password) == (self.username, self.password):
                return None
        return Reply(401, {"detail": "Authentication credentials were not provided."}, headers={"WWW-Authenticate": 'Bearer realm="api"'})

    def public(self, method, path):
        return method == "POST" and re.fullmatch(r"/api/v2/job_templates/\d+/(github|gitlab)/", path) is not None

    # --- routes --------------------------------------------------------------------------
    def dispatch(self, call, template, params):
        method = call.method
        if template == "webhook_key":
            if params["id"] not in self.store["job_templates"]:
                return self.error(404, "not_found", "Not found.")
            if method == "POST":
                self.webhook_keys[params["id"]] = secrets.token_urlsafe(30)
                return Reply(201, {"webhook_key": self.webhook_keys[params["id"]]})
            return Reply(200, {"webhook_key": self.webhook_keys.get(params["id"], "")})
        if template == "webhook_receiver":
            return self._webhook(call, params["id"], params["service"])
        if template == "ping":
            return Reply(200, {"ha": False, "version": VERSION, "active_node": "awx-test-double", "install_uuid": "00000000",
                               "instances": [], "instance_groups": []})
        if template == "me":
            return Reply(200, _page([{"id": 1, "type": "user", "username": self.username, "is_superuser": True}]))
        if template == "config":
            return Reply(200, {"version": VERSION, "ansible_version": "2.15", "project_base_dir": "/var/lib/awx/projects",
                               "license_info": {"license_type": "open"}})
        if template == "tokens":
            token = "tok-%d" % next(self.ids)
            self.tokens[token] = len(self.tokens)
            return Reply(201, {"id": self.tokens[token], "type": "o_auth2_access_token", "token": token, "scope": "write",
                               "description": (call.body or {}).get("description", "")})
        if template == "token":
            for token, ident in list(self.tokens.items()):
                if ident == params["id"]:
                    del self.tokens[token]
                    return Reply(204)
            return self.error(404, "not_found", "Not found.")
        if template == "project_update":
            update = self.project_updates.get(params["id"])
            return Reply(200, update) if update else self.error(404, "not_found", "Not found.")
        if template == "unified_job_templates":
            items = [o for r in ("job_templates", "projects", "inventory_sources") for o in self.store[r].values()]
            return self._list(items, call.query, "/api/v2/unified_job_templates/", ("name", "id", "type", "organization"))
        if template == "survey_spec":
            return self._survey(call, params["id"])
        if template == "jt_credentials":
            return self._jt_credentials(call, params["id"])
        resource = params.get("resource")
        if template == "list":
            if method == "GET":
                return self._list(self.objects(resource), call.query, "/api/v2/%s/" % resource, RESOURCES[resource]["filters"])
            return self._create(resource, call.body or {})
        item = self.store[resource].get(params["id"])
        if item is None:
            return self.error(404, "not_found", "Not found.")
        if method == "GET":
            return Reply(200, self._render(resource, item))
        if method == "DELETE":
            del self.store[resource][item["id"]]
            return Reply(204)
        return self._update(resource, item, call.body or {})

    def _list(self, items, query, path, filters):
        query = dict(query)
        try:
            size = min(int(query.pop("page_size", PAGE_SIZE)), MAX_PAGE_SIZE)
            page = int(query.pop("page", 1))
        except ValueError:
            return Reply(400, {"detail": "Invalid page."})
        query.pop("order_by", None)
        ors = {k[4:]: v for k, v in query.items() if k.startswith("or__")}
        ands = {k: v for k, v in query.items() if not k.startswith("or__")}
        for key in list(ors) + list(ands):
            if key not in filters and key not in ("name", "id"):
                return Reply(400, {"detail": "Invalid field name: %s" % key})
        chosen = [o for o in sorted(items, key=lambda o: o["id"])
                  if all(_text(o.get(k)) == v for k, v in ands.items())
                  and (not ors or any(_text(o.get(k)) == v for k, v in ors.items()))]
        total = len(chosen)
        start = (page - 1) * size
        if page < 1 or (start >= total and page != 1):
            return Reply(404, {"detail": "Invalid page."})
        results = [self._render_any(o) for o in chosen[start:start + size]]
        rest = dict(query, page_size=size)

        def link(number):
            return "%s?%s" % (path, urlencode(dict(rest, page=number)))

        return Reply(200, {"count": total, "next": link(page + 1) if start + size < total else None,
                           "previous": link(page - 1) if page > 1 else None, "results": results})

    def _render_any(self, item):
        resource = next(r for r, spec in RESOURCES.items() if spec["type"] == item["type"])
        return self._render(resource, item)

    def _render(self, resource, item):
        out = copy.deepcopy(item)
        if resource == "credentials":
            ctype = self.store["credential_types"].get(item["credential_type"])
            secret = {f["id"] for f in (ctype or {}).get("inputs", {}).get("fields", []) if f.get("secret")}
            out["inputs"] = {k: (ENCRYPTED if k in secret and v != "" else v) for k, v in item["inputs"].items()}
            out["kind"] = (ctype or {}).get("namespace") or (ctype or {}).get("kind")
        return out

    # --- create and update ---------------------------------------------------------------
    def _fields(self, resource, body, partial):
        spec = RESOURCES[resource]
        values, errors = {}, {}
        for key, value in body.items():
            if key in spec["fields"] or key in spec.get("write_only", ()):
                values[key] = value
            elif key in spec.get("read_only", ()) or key in ("id", "type", "url", "related", "summary_fields", "created", "modified"):
                continue
            else:
                self.violations.append("request %s: %s is not a field of %s (AWX ignores it)" % (resource, key, spec["type"]))
        for key, value in values.items():
            target = FOREIGN.get(key)
            if target and value is not None and value != "":
                if not isinstance(value, int) or value not in self.store[target]:
                    errors[key] = ['Invalid pk "%s" - object does not exist.' % value]
        if not partial and not values.get("name"):
            errors["name"] = ["This field is required."]
        return values, errors

    def _create(self, resource, body):
        values, errors = self._fields(resource, body, partial=False)
        item = {k: copy.deepcopy(v) for k, v in RESOURCES[resource]["fields"].items()}
        item.update({k: v for k, v in values.items() if k in item})
        errors.update(self._validate(resource, item, None, values))
        if errors:
            return Reply(400, errors)
        item["id"] = next(self.ids)
        if resource == "credential_types":
            item["managed"] = False
        self._derive(resource, item)
        self.store[resource][item["id"]] = self._decorate(resource, item)
        if resource == "projects" and item["scm_type"]:
            self._start_update(item)
        return Reply(201, self._render(resource, item))

    def _update(self, resource, item, body):
        values, errors = self._fields(resource, body, partial=True)
        new = copy.deepcopy(item)
        for key, value in values.items():
            if key == "inputs" and resource == "credentials" and isinstance(value, dict):
                value = {k: (item["inputs"].get(k, "") if v == ENCRYPTED else v) for k, v in value.items()}
            if key in new or key in RESOURCES[resource]["fields"]:
                new[key] = value
        errors.update(self._validate(resource, new, item, values))
        if errors:
            return Reply(400, errors)
        self._derive(resource, new)
        new["modified"] = _now()
        self.store[resource][item["id"]] = new
        if resource == "projects" and any(new.get(k) != item.get(k) for k in ("scm_url", "scm_branch", "scm_type", "scm_refspec")):
            self._start_update(new)
        return Reply(200, self._render(resource, new))

    def _derive(self, resource, item):
        if resource == "job_templates":
            project = self.store["projects"].get(item["project"])
            item["organization"] = project["organization"] if project else None
            if item["webhook_service"] and not self.webhook_keys.get(item["id"]):
                self.webhook_keys[item["id"]] = secrets.token_urlsafe(30)
            if not item["webhook_service"]:
                self.webhook_keys.pop(item["id"], None)
            receiver = "/api/v2/job_templates/%d/%s/" % (item["id"], item["webhook_service"]) if item["webhook_service"] else None
            if "related" in item:
                item["related"].pop("webhook_receiver", None)
                if receiver:
                    item["related"]["webhook_receiver"] = receiver
        if resource == "schedules":
            item.update(_schedule_times(item["rrule"]))
            ujt = self._ujt(item["unified_job_template"])
            item["summary_fields"] = {"unified_job_template": {"id": ujt["id"], "name": ujt["name"], "unified_job_type": ujt["type"]}}

    def _ujt(self, ident):
        for resource in ("job_templates", "projects", "inventory_sources"):
            if ident in self.store[resource]:
                return self.store[resource][ident]
        return None

    def _start_update(self, project):
        ident = next(self.ids)
        revision = "0123456789abcdef0123456789abcdef01234567"
        self.project_updates[ident] = {"id": ident, "type": "project_update", "url": "/api/v2/project_updates/%d/" % ident,
                                       "status": "successful", "failed": False, "finished": _now(), "scm_revision": revision,
                                       "project": project["id"], "name": project["name"]}
        project["scm_revision"] = revision
        project["status"] = "successful"
        project["summary_fields"] = dict(project.get("summary_fields") or {},
                                         current_update={"id": ident, "status": "successful", "failed": False})

    def _validate(self, resource, item, old, sent):
        errors = {}

        def unique(*keys):
            for other in self.store[resource].values():
                if (old is None or other["id"] != old["id"]) and all(other.get(k) == item.get(k) for k in ("name",) + keys):
                    label = RESOURCES[resource]["type"].replace("_", " ").title()
                    errors["__all__"] = ["%s with this Name and %s already exists." % (label, ", ".join(keys) or "Name")]

        if resource == "organizations":
            unique()
        elif resource == "credential_types":
            unique()
            if item["kind"] not in ("cloud", "net"):
                errors["kind"] = ["Must be 'cloud' or 'net', not %s" % item["kind"]]
            fields = (item.get("inputs") or {}).get("fields", [])
            for field in fields:
                if not {"id", "label"} <= set(field) or field.get("type", "string") not in ("string", "boolean"):
                    errors["inputs"] = ["%s is not a valid input field (id, label, type string or boolean)" % field]
            known = {f.get("id") for f in fields}
            for missing in set((item.get("inputs") or {}).get("required", [])) - known:
                errors["inputs"] = ["required field %s is not defined" % missing]
            for value in ((item.get("injectors") or {}).get("env") or {}).values():
                for name in re.findall(r"{{\s*(\w+)\s*}}", str(value)):
                    if name not in known and name != "tower":
                        errors["injectors"] = ["%s uses an undefined field (%s)" % (value, name)]
        elif resource == "credentials":
            unique("organization", "credential_type")
            ctype = self.store["credential_types"].get(item["credential_type"])
            if ctype is None:
                errors["credential_type"] = ["This field is required."]
            else:
                known = {f["id"] for f in ctype["inputs"].get("fields", [])}
                bad = sorted(set(item["inputs"]) - known)
                if bad:
                    errors["inputs"] = {k: ["Additional properties are not allowed (%r was unexpected)" % k] for k in bad}
                if any(v == ENCRYPTED for v in item["inputs"].values()):
                    errors["inputs"] = ["$encrypted$ is a reserved keyword and may not be used for a value that is not stored."]
        elif resource == "execution_environments":
            unique()
            if not item["image"]:
                errors["image"] = ["This field may not be blank."]
            if item["pull"] not in ("", "always", "missing", "never"):
                errors["pull"] = ['"%s" is not a valid choice.' % item["pull"]]
        elif resource == "projects":
            unique("organization")
            if item["scm_type"] not in ("", "git", "svn", "insights", "archive"):
                errors["scm_type"] = ['"%s" is not a valid choice.' % item["scm_type"]]
            if item["scm_type"] and not item["scm_url"]:
                errors["scm_url"] = ["SCM URL is required."]
        elif resource == "inventories":
            unique("organization")
            if item["organization"] is None:
                errors["organization"] = ["This field is required."]
        elif resource == "inventory_sources":
            unique("inventory")
            if item["inventory"] is None:
                errors["inventory"] = ["This field is required."]
            if item["source"] == "scm":
                if item["source_project"] is None:
                    errors["source_project"] = ["Project required for scm type sources."]
                elif self.project_dir and not (self.project_dir / item["source_path"]).exists():
                    errors["source_path"] = ["Invalid inventory file: %s is not in the project." % item["source_path"]]
        elif resource == "job_templates":
            unique("organization")
            errors.update(self._check_job_template(item))
        elif resource == "schedules":
            unique("unified_job_template")
            if self._ujt(item["unified_job_template"]) is None:
                errors["unified_job_template"] = ["This field is required."]
            message = rrule_error(item["rrule"])
            if message:
                errors["rrule"] = [message]
            if not isinstance(item["extra_data"], dict):
                errors["extra_data"] = ["Must be a mapping."]
        return errors

    def _check_job_template(self, item):
        errors = {}
        if item["job_type"] not in ("run", "check"):
            errors["job_type"] = ['"%s" is not a valid choice.' % item["job_type"]]
        if item["verbosity"] not in range(6):
            errors["verbosity"] = ['"%s" is not a valid choice.' % item["verbosity"]]
        if item["webhook_service"] not in ("", "github", "gitlab"):
            errors["webhook_service"] = ['"%s" is not a valid choice.' % item["webhook_service"]]
        project = self.store["projects"].get(item["project"])
        if project is None:
            errors["project"] = ["This field is required."]
        elif self.project_dir and item["playbook"] not in playbooks_of(self.project_dir):
            errors["playbook"] = ["Playbook not found for project."]
        if item["inventory"] is None and not item["ask_inventory_on_launch"]:
            errors["inventory"] = ["Job Templates must have an inventory or allow prompting for it."]
        try:
            loaded = yaml.safe_load(item["extra_vars"] or "{}")
            if not isinstance(loaded, dict):
                raise ValueError
        except (ValueError, yaml.YAMLError):
            errors["extra_vars"] = ["Must be a valid JSON or YAML dictionary."]
        return errors

    # --- job template sub-resources ------------------------------------------------------
    def _survey(self, call, ident):
        if ident not in self.store["job_templates"]:
            return self.error(404, "not_found", "Not found.")
        if call.method == "GET":
            spec = copy.deepcopy(self.surveys.get(ident, {}))
            for question in spec.get("spec", []):
                if question.get("type") == "password" and question.get("default"):
                    question["default"] = ENCRYPTED
            return Reply(200, spec)
        if call.method == "DELETE":
            self.surveys.pop(ident, None)
            return Reply(200)
        message = survey_error(call.body)
        if message:
            return Reply(400, {"error": message})
        self.surveys[ident] = copy.deepcopy(call.body)
        return Reply(200)

    def _webhook(self, call, ident, service):
        """AWX's webhook receivers (awx/api/views/webhooks.py): the signature, then one job per delivery."""
        template = self.store["job_templates"].get(ident)
        if template is None or template["webhook_service"] != service:
            return self.error(404, "not_found", "Not found.")
        key = self.webhook_keys.get(ident, "").encode()
        if service == "github":
            algorithm, _sep, signature = call.headers.get("x-hub-signature", "").partition("=")
            expected = hmac.new(key, call.raw, hashlib.sha1).hexdigest()
            valid = bool(key) and algorithm == "sha1" and hmac.compare_digest(signature, expected)
            event, guid = call.headers.get("x-github-event"), call.headers.get("x-github-delivery")
            ref = (call.body or {}).get("after") if event == "push" else None
        else:
            valid = bool(key) and hmac.compare_digest(call.headers.get("x-gitlab-token", "").encode(), key)
            event, guid = call.headers.get("x-gitlab-event"), hashlib.sha1(call.raw).hexdigest()
            ref = (call.body or {}).get("checkout_sha") if event in ("Push Hook", "Tag Push Hook") else None
        if not valid:
            return self.error(403, "permission_denied", "You do not have permission to perform this action.")
        if any(job["job_template"] == ident and job["webhook_guid"] == guid for job in self.jobs):
            return Reply(202, {"message": "Webhook previously received, aborting."})
        self.jobs.append({"id": next(self.ids), "type": "job", "job_template": ident, "name": template["name"], "launch_type": "webhook",
                          "webhook_service": service, "webhook_guid": guid, "status": "pending",
                          "extra_vars": {"tower_webhook_event_type": event, "tower_webhook_event_guid": guid,
                                         "tower_webhook_event_ref": ref, "tower_webhook_status_api": None,
                                         "tower_webhook_payload": call.body}})
        return Reply(202, {"message": "Job queued."})

    def _jt_credentials(self, call, ident):
        if ident not in self.store["job_templates"]:
            return self.error(404, "not_found", "Not found.")
        linked = self.jt_credentials.setdefault(ident, [])
        if call.method == "GET":
            items = [self.store["credentials"][c] for c in linked if c in self.store["credentials"]]
            return self._list(items, call.query, "/api/v2/job_templates/%d/credentials/" % ident, RESOURCES["credentials"]["filters"])
        body = call.body or {}
        cred = self.store["credentials"].get(body.get("id"))
        if cred is None:
            return Reply(400, {"msg": "Object with id %s not found." % body.get("id")})
        if body.get("disassociate"):
            if cred["id"] in linked:
                linked.remove(cred["id"])
            return Reply(204)
        if cred["id"] in linked:
            return Reply(204)
        ctype = self.store["credential_types"][cred["credential_type"]]
        for other in (self.store["credentials"][c] for c in linked):
            if other["credential_type"] != cred["credential_type"]:
                continue
            if ctype["kind"] != "vault" or other["inputs"].get("vault_id") == cred["inputs"].get("vault_id"):
                return Reply(400, {"error": "Cannot assign multiple %s credentials." % ctype["name"]})
        linked.append(cred["id"])
        return Reply(204)


class AwxContract:
    """The routes of the API (what spec.Spec gives the other servers): ``match`` and request/response checks."""

    ROUTES = (
        ("ping", r"/api/v2/ping/", ("GET",)),
        ("me", r"/api/v2/me/", ("GET",)),
        ("config", r"/api/v2/config/", ("GET",)),
        ("tokens", r"/api/v2/tokens/", ("POST",)),
        ("token", r"/api/v2/tokens/(?P<id>\d+)/", ("DELETE",)),
        ("project_update", r"/api/v2/project_updates/(?P<id>\d+)/", ("GET",)),
        ("unified_job_templates", r"/api/v2/unified_job_templates/", ("GET",)),
        ("survey_spec", r"/api/v2/job_templates/(?P<id>\d+)/survey_spec/", ("GET", "POST", "DELETE")),
        ("jt_credentials", r"/api/v2/job_templates/(?P<id>\d+)/credentials/", ("GET", "POST")),
        ("webhook_key", r"/api/v2/job_templates/(?P<id>\d+)/webhook_key/", ("GET", "POST")),
        ("webhook_receiver", r"/api/v2/job_templates/(?P<id>\d+)/(?P<service>github|gitlab)/", ("POST",)),
        ("list", r"/api/v2/(?P<resource>%s)/" % "|".join(RESOURCES), ("GET", "POST")),
        ("detail", r"/api/v2/(?P<resource>%s)/(?P<id>\d+)/" % "|".join(RESOURCES), ("GET", "PATCH", "PUT", "DELETE")),
    )

    def __init__(self, server):
        self.server = server

    def match(self, method, path):
        for name, pattern, methods in self.ROUTES:
            found = re.fullmatch(pattern, path)
            if found:
                if method not in methods:
                    raise LookupError(405, 'Method "%s" not allowed.' % method)
                params = {k: (int(v) if k == "id" else v) for k, v in found.groupdict().items()}
                return name, params
        raise LookupError(404, "Not found: %s %s" % (method, path))

    def validate_request(self, method, path, query, body):
        template, params = self.match(method, path)
        errors = []
        if method in ("POST", "PATCH", "PUT") and body is not None and not isinstance(body, dict):
            errors.append("the body must be a JSON object")
        if method == "PUT":
            errors.append("awx.awx updates with PATCH; this double does not implement PUT")
        return template, params, errors

    def validate_response(self, method, template, status, body):
        errors = []
        if status >= 400 and not isinstance(body, dict):
            errors.append("an error reply is a JSON object")
        if template == "list" and method == "GET" and status == 200 and not {"count", "next", "previous", "results"} <= set(body):
            errors.append("a list reply has count, next, previous and results")
        return errors


# --- rules shared with the offline tests ----------------------------------------------------
def playbooks_of(project_dir):
    """The playbooks AWX offers for a project: YAML files with a play (hosts or import_playbook) at the top level."""
    root = Path(project_dir)
    found = []
    for path in sorted(root.glob("playbooks/*.yml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if isinstance(data, list) and any(isinstance(p, dict) and ("hosts" in p or "ansible.builtin.import_playbook" in p or "import_playbook" in p)
                                          for p in data):
            found.append(str(path.relative_to(root)))
    return found


def rrule_error(text):
    """AWX's refusal of a schedule's rrule, or None (awx/api/serializers.py, SchedulePreviewSerializer)."""
    if not isinstance(text, str) or not text.strip():
        return "rrule is required."
    if "DTSTART" not in text:
        return "DTSTART required in rrule. Value should start with: DTSTART:YYYYMMDDTHHMMSSZ"
    if not re.search(r"DTSTART(;TZID=[^:]+)?:\d{8}T\d{6}(Z)?", text) or re.search(r"DTSTART:\d{8}T\d{6}(?!Z)", text):
        return "A valid TZID must be provided (e.g., America/New_York)"
    if "RRULE:" not in text:
        return "RRULE required in rrule."
    for pattern, message in RRULE_CHECKS:
        if re.match(pattern, text):
            return message
    if not re.search(r"INTERVAL=\d+", text):
        return "INTERVAL required in rrule."
    count = re.search(r"COUNT=(\d+)", text)
    if count and int(count.group(1)) > 999:
        return "COUNT > 999 is unsupported."
    try:
        dateutil_rrule.rrulestr(text.replace(" ", "\n"), forceset=True)
    except (ValueError, TypeError) as exc:
        return "rrule parsing failed validation: %s" % exc
    return None


def next_runs(text, after, count=3):
    """The next ``count`` runs of an AWX rrule after ``after`` (an aware datetime)."""
    rule = dateutil_rrule.rrulestr(text.replace(" ", "\n"), forceset=True)
    out, moment = [], after
    for _index in range(count):
        moment = rule.after(moment)
        if moment is None:
            break
        out.append(moment)
    return out


def survey_error(spec):
    """AWX's refusal of a survey spec, or None (awx/api/views, JobTemplateSurveySpec._validate_spec_data)."""
    if not isinstance(spec, dict):
        return "Survey spec must be an object."
    for key in ("name", "description"):
        if key not in spec:
            return "'%s' missing from survey spec." % key
    questions = spec.get("spec")
    if not isinstance(questions, list):
        return "'spec' must be a list of items."
    if not questions:
        return "'spec' doesn't contain any items."
    seen = set()
    for index, question in enumerate(questions):
        where = "survey question %d" % index
        if not isinstance(question, dict):
            return "Survey question %d is not a json object." % index
        for key in ("type", "question_name", "variable"):
            if key not in question:
                return "'%s' missing from %s." % (key, where)
        if question["type"] not in SURVEY_TYPES:
            return "'%s' in %s is not one of %s." % (question["type"], where, ", ".join(SURVEY_TYPES))
        if question["variable"] in seen:
            return "'variable' '%s' duplicated in %s." % (question["variable"], where)
        seen.add(question["variable"])
        if "required" in question and not isinstance(question["required"], bool):
            return "'required' in %s must be a boolean." % where
        for key in ("min", "max"):
            if key in question and question[key] not in ("", None) and (not isinstance(question[key], int) or isinstance(question[key], bool)):
                return "'%s' in %s expected to be int." % (key, where)
        default = question.get("default")
        kind = question["type"]
        if default not in (None, ""):
            if kind in ("text", "textarea", "password", "multiplechoice") and not isinstance(default, str):
                return "Default value %r in %s expected to be string." % (default, where)
            if kind == "integer" and (not isinstance(default, int) or isinstance(default, bool)):
                return "Default value %r in %s expected to be int." % (default, where)
            if kind == "float" and not isinstance(default, (int, float)):
                return "Default value %r in %s expected to be float." % (default, where)
        if kind in ("multiplechoice", "multiselect"):
            choices = question.get("choices")
            if isinstance(choices, str):
                choices = choices.split("\n")
            if not isinstance(choices, list) or not choices:
                return "'choices' in %s must be a list or a newline separated string." % where
            if kind == "multiplechoice" and default not in (None, "") and default not in choices:
                return "Default choice must be answered from the choices listed in %s." % where
    return None


def _schedule_times(text):
    now = datetime.now(timezone.utc)
    runs = next_runs(text, now, 1)
    tz = re.search(r"TZID=([^:;]+)", text)
    return {"next_run": runs[0].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if runs else None,
            "timezone": tz.group(1) if tz else "UTC"}


def _page(results):
    return {"count": len(results), "next": None, "previous": None, "results": results}


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def main(argv=None):
    parser = argparse.ArgumentParser(description="A test double of the AWX API v2 (loopback)")
    parser.add_argument("--listen", default="127.0.0.1:8043")
    parser.add_argument("--project-dir", default=".")
    parser.add_argument("--token", default="test-token")
    args = parser.parse_args(argv)
    host, _sep, port = args.listen.rpartition(":")
    server = AwxServer(token=args.token, project_dir=args.project_dir)
    server.echo = print
    server.start(host, int(port))
    print("AWX API test double on %s (token %s)" % (server.url, args.token), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
