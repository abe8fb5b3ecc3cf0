# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind playbooks/validate.yml: which of a host's variables are misspelt inputs, and
which values do not fit their spec (type, choices, list elements, suboptions), decided from
argument specs, each problem as one line that names the variable, what it got and the fix.

``specs`` is a list of argument-spec documents: each the parsed YAML of a role's
``meta/argument_specs.yml`` (``{"argument_specs": {<entry point>: {"options": {...}}}}``) with
the role's name added as ``role``. Every entry point counts (``main``, ``export``, ...). A
document without ``role`` is playbook-level (``playbooks/vars/playbook_argument_specs.yml``):
its options are known names, but it brings no prefix of its own; the prefixes it covers are
given as ``extra_prefixes`` (``["dns", "db", "renew"]``).

A variable belongs to the longest prefix it starts with (``<role>_`` for every role with a
spec, and each extra prefix), so ``webservice_x`` is the webservice role's even when a role
``web`` exists. Names starting with ``__`` (internal) and ``vault_<prefix>`` (vault companions,
not role inputs) are never checked. Unknown names are looked for at the top level only.

Types are checked strictly, with no conversion: with ``-e key=value`` (and AWX surveys) every
value is a string, and a role that reads ``postgres_ssl: "false"`` takes it as true, so a string
where a bool, a number, a list or a mapping belongs is refused with the JSON form to pass
instead. The exception is options only playbook-level documents list (no role reads them): the
playbooks convert those themselves (``| bool``, ``| int``), so a string that converts cleanly
passes (``-e renew_force=true``, ``-e lines=200``) and one that does not is refused
(``-e renew_force=ture``). A template string (a value the inventory computes) is left to the
role's own validation, except for bool and number options, whose template inventory_errors
computes (it is cheap, unlike a computed list such as common_firewall_rules)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # used without Ansible (unit tests import the file directly)
    class AnsibleFilterError(Exception):
        pass

try:
    from jinja2 import Undefined
except ImportError:  # used without Jinja
    class Undefined(object):
        pass

BOOL_TYPES = ("bool", "boolean")


def _prefix(value):
    value = str(value)
    return value if value.endswith("_") else value + "_"


def _documents(specs):
    if isinstance(specs, Mapping):
        specs = [specs]
    if not isinstance(specs, (list, tuple)):
        raise AnsibleFilterError("specs must be a list of argument-spec documents, not %s" % type(specs).__name__)
    for doc in specs:
        if not isinstance(doc, Mapping):
            raise AnsibleFilterError("each argument-spec document must be a mapping, not %s" % type(doc).__name__)
        yield doc


def _options(doc):
    """{name: option spec} over every entry point of one document."""
    options = {}
    entry_points = doc.get("argument_specs") or {}
    if not isinstance(entry_points, Mapping):
        raise AnsibleFilterError("argument_specs of %s must be a mapping of entry points" % (doc.get("role") or "a document"))
    for entry_point in entry_points.values():
        for name, option in ((entry_point or {}).get("options") or {}).items():
            options.setdefault(name, {}).update(option or {})
    return options


class _Index(object):
    """Prefixes, the known names of each, and every option's spec."""

    def __init__(self, specs, extra_prefixes=()):
        self.known = {}      # prefix -> set of known names
        self.options = {}    # name -> merged option spec
        shared = set()       # names from playbook-level documents: known under every prefix
        of_roles = set()     # names some role reads
        for doc in _documents(specs):
            options = _options(doc)
            for name, option in options.items():
                self.options.setdefault(name, {}).update(option)
            role = doc.get("role")
            if role:
                self.known.setdefault(_prefix(role), set()).update(options)
                of_roles.update(options)
            else:
                shared.update(options)
        # Read by playbooks only, which convert them (| bool, | int): string forms that convert pass.
        self.converted = shared - of_roles
        if isinstance(extra_prefixes, str):
            extra_prefixes = [extra_prefixes]
        for prefix in extra_prefixes or ():
            self.known.setdefault(_prefix(prefix), set())
        for names in self.known.values():
            names.update(shared)
        # Longest first, so the first match is the longest.
        self.prefixes = sorted(self.known, key=lambda p: (-len(p), p))
        self.vault_prefixes = tuple("vault_" + p for p in self.prefixes)

    def owner(self, name):
        """The longest prefix name starts with, or None (also for names never checked)."""
        name = str(name)
        if name.startswith("__") or name.startswith(self.vault_prefixes):
            return None
        for prefix in self.prefixes:
            if name.startswith(prefix):
                return prefix
        return None

    def unknown(self, var_names):
        found = set()
        for name in var_names:
            prefix = self.owner(name)
            if prefix is not None and name not in self.known[prefix]:
                found.add(str(name))
        return sorted(found)

    def closest(self, name, count=3):
        """Known names close to name: first those of its prefix, compared without the prefix (so
        the shared prefix does not make every name look close), then any known name, compared
        whole and more strictly (a misspelt prefix)."""
        name = str(name)
        prefix = self.owner(name)
        if prefix:
            rests = dict((known[len(prefix):], known) for known in self.known[prefix] if known.startswith(prefix))
            matches = difflib.get_close_matches(name[len(prefix):], sorted(rests), n=count, cutoff=0.6)
            if matches:
                return [rests[rest] for rest in matches]
        everything = sorted(set().union(*self.known.values())) if self.known else []
        return difflib.get_close_matches(name, everything, n=count, cutoff=0.8)


def unknown_role_variables(var_names, specs, extra_prefixes=()):
    """Sorted names that carry a known prefix but are an option of no entry point of the
    prefix's role (nor of a playbook-level document). var_names: names, or a mapping."""
    return _Index(specs, extra_prefixes).unknown(var_names)


def closest_variables(name, specs, extra_prefixes=(), count=3):
    """The known names closest to name (same prefix first), best first; [] when none is close."""
    return _Index(specs, extra_prefixes).closest(name, count)


def unknown_variable_message(name, specs, extra_prefixes=()):
    """'unknown variable webservice_prots; did you mean webservice_ports?'"""
    matches = _Index(specs, extra_prefixes).closest(name)
    if not matches:
        return "unknown variable %s; no known variable is close." % name
    return "unknown variable %s; did you mean %s?" % (name, " or ".join(matches))


def _kind(value):
    for cls, kind in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
                      (Mapping, "mapping"), ((list, tuple), "list")):
        if isinstance(value, cls):
            return kind
    return "null" if value is None else type(value).__name__


def _show(value):
    if isinstance(value, str):
        return repr(str(value))  # the plain str's repr, not a subclass's
    if value is None or isinstance(value, (int, float)):
        return repr(value)
    return ""


def _got(value, secret=False):
    """'the string '5433'', 'a list', 'null' (no value when secret)."""
    if value is None:
        return "null"
    shown = "" if secret else _show(value)
    if shown:
        return "the %s %s" % (_kind(value), shown)
    kind = _kind(value)
    return "%s %s" % ("an" if kind[0] in "aeiou" else "a", kind)


# type -> (what it must be, test of a value of that type)
_NUMBER = (int, float)
TYPES = {
    "bool": ("a boolean", lambda v: isinstance(v, bool)),
    "boolean": ("a boolean", lambda v: isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, _NUMBER) and not isinstance(v, bool)),
    "list": ("a list", lambda v: isinstance(v, (list, tuple))),
    "dict": ("a mapping", lambda v: isinstance(v, Mapping)),
    # A number where a string belongs is harmless (Ansible converts it); a boolean, a list or a
    # mapping is a mistake. Anything else (a vaulted string) is a string.
    "str": ("a string", lambda v: not isinstance(v, (bool, Mapping, list, tuple))),
    "path": ("a string (a path)", lambda v: not isinstance(v, (bool, Mapping, list, tuple))),
}

_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f")


def _as_json(value, kind, option):
    """The value a string meant, as JSON, for the message's -e '{...}' example."""
    text = str(value).strip()
    if kind in ("bool", "boolean"):
        return "false" if text.lower() in _FALSE else "true"
    if kind in ("int", "float"):
        for convert in ((int, float) if kind == "int" else (float,)):
            try:
                return json.dumps(convert(text))
            except ValueError:
                pass
        default = option.get("default")
        return json.dumps(default if isinstance(default, _NUMBER) and not isinstance(default, bool) else 1)
    if kind == "list":
        try:
            parsed = json.loads(text)
            if isinstance(parsed, list):
                return json.dumps(parsed)
        except ValueError:
            pass
        return json.dumps([item.strip() for item in text.split(",") if item.strip()])
    return "{}"


def _choices(option):
    return option.get("choices") or []


def _is_template(value):
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _converts(value, kind):
    """Whether a string converts cleanly to kind (bool: true/false/yes/no/on/off/1/0; int; float)."""
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    if kind in BOOL_TYPES:
        return text in _TRUE + _FALSE
    if kind == "int":
        return re.match(r"^[+-]?[0-9]+$", text) is not None
    if kind == "float":
        try:
            float(text)
        except ValueError:
            return False
        return True
    return False


def _error(path, value, option, top_level=True, converted=False):
    """None when value fits option (type, choices, elements, suboptions); else one line.
    converted: the reader converts strings itself (a playbook-level variable), so a string that
    converts cleanly to a bool or a number fits."""
    if isinstance(value, Undefined) or _is_template(value):
        return None  # computed (by a template, from facts not gathered yet): left to the role's own validation
    kind = option.get("type", "raw")
    secret = bool(option.get("no_log"))
    if value is None and kind not in BOOL_TYPES:
        return None  # null is "not set" to Ansible's argument validation
    if converted and _converts(value, kind):
        return None
    if kind in TYPES:
        what, fits = TYPES[kind]
        if not fits(value):
            message = "%s must be %s; got %s" % (path, what, _got(value, secret))
            if isinstance(value, str) and kind not in ("str", "path"):
                if top_level:
                    message += (" (with -e key=value every value is a string: pass JSON, -e '{\"%s\": %s}')"
                                % (path, _as_json(value, kind, option)))
                else:
                    message += " (write it without quotes)"
            elif kind in BOOL_TYPES:
                message += " (write true or false without quotes)"
            return message
    choices = _choices(option)
    if choices:
        items = value if kind == "list" else [value]
        for item in items:
            if isinstance(item, (Mapping, list, tuple)) or item not in choices:
                return "%s must be %s%s; got %s" % (
                    path, "a list of " if kind == "list" else "one of ", ", ".join(str(c) for c in choices),
                    _got(item, secret))
    if kind == "list" and (option.get("elements") or option.get("options")):
        element = dict((k, v) for k, v in option.items() if k not in ("type", "elements", "choices", "default"))
        element["type"] = option.get("elements", "raw")
        for number, item in enumerate(value):
            found = _error("%s[%d]" % (path, number), item, element, False, converted)
            if found:
                return found
    if option.get("options") and isinstance(value, Mapping):
        for name, sub in sorted(option["options"].items()):
            if name in value:
                found = _error("%s.%s" % (path, name), value[name], sub or {}, False, converted)
                if found:
                    return found
    return None


def _value(var_values, name):
    """var_values[name], or Undefined when it cannot be templated without facts."""
    try:
        return var_values[name]
    except Exception:  # pylint: disable=broad-except  # AnsibleUndefinedVariable and kin: left to the role
        return Undefined(name=name)


def type_errors(var_values, specs):
    """One line for each variable in var_values (a mapping name -> value) whose value does not fit
    its spec: the type (bool, int, float, list, dict; str refuses booleans, lists and mappings),
    choices, list elements and suboptions. Strings are never converted: with -e key=value every
    value is a string, and "false" is true. Sorted by name; null and Undefined values pass
    (except null for a bool), as do options of type raw."""
    if not isinstance(var_values, Mapping):
        raise AnsibleFilterError("type_errors expects a mapping of variable names to values, not %s" % type(var_values).__name__)
    index = _Index(specs)
    found = []
    for name, option in sorted(index.options.items()):
        if name in var_values:
            message = _error(name, _value(var_values, name), option, True, name in index.converted)
            if message:
                found.append(message)
    return found


def wrong_types(var_values, specs):
    """Sorted names whose value does not fit their spec (see type_errors)."""
    if not isinstance(var_values, Mapping):
        raise AnsibleFilterError("wrong_types expects a mapping of variable names to values, not %s" % type(var_values).__name__)
    index = _Index(specs)
    return [name for name, option in sorted(index.options.items())
            if name in var_values and _error(name, _value(var_values, name), option, True, name in index.converted)]


def wrong_type_message(name, var_values, specs):
    """The one line type_errors gives for name ('' when its value fits)."""
    index = _Index(specs)
    return _error(name, _value(var_values, name), index.options.get(name, {}), True, name in index.converted) or ""


def not_booleans(var_values, specs):
    """Sorted names in var_values (a mapping name -> value) whose spec type is bool but whose
    value is not a real boolean: the strings "true", "false", "yes", 0 and 1 all count as wrong.
    A value that cannot be templated yet (it depends on facts not gathered, an Undefined) is left
    to the role's own argument validation."""
    if not isinstance(var_values, Mapping):
        raise AnsibleFilterError("not_booleans expects a mapping of variable names to values, not %s" % type(var_values).__name__)
    index = _Index(specs)
    found = []
    for name, option in sorted(index.options.items()):
        if option.get("type") not in BOOL_TYPES or name not in var_values:
            continue
        value = _value(var_values, name)
        if not isinstance(value, (bool, Undefined)):
            found.append(name)
    return found


def not_boolean_message(name, var_values, specs):
    """'postgres_ssl must be a boolean; got the string 'false' (with -e key=value ...)' (no value
    shown for no_log options)."""
    option = dict(_Index(specs).options.get(name, {}), type="bool")
    return _error(name, _value(var_values, name), option) or ""


# Types whose templated value inventory_errors computes: cheap scalars (a port from the vault).
# A template of a list or a mapping (common_firewall_rules, computed from every host's
# variables) costs up to a second a host and is left to the role's own validation.
_TEMPLATED_TYPES = BOOL_TYPES + ("int", "float")


def inventory_errors(hostvars, hosts, specs, extra_prefixes=()):
    """Every problem of the hosts' variables, one line each: unknown (misspelt) names, then
    values that do not fit their spec (see type_errors). hostvars: Ansible's hostvars (host ->
    variables; read raw, through HostVars.raw_get, so that no template is computed but those of
    bool and number options) or a plain mapping; hosts: the hosts to check. A line true of only
    some of the hosts starts with their names ("db1: ..."); one true of every host (an -e, a
    group_vars/all value) is given once without names."""
    if isinstance(hosts, str):
        hosts = [hosts]
    hosts = list(hosts)
    index = _Index(specs, extra_prefixes)
    raw_get = getattr(hostvars, "raw_get", None)
    lines = {}  # line -> hosts, in the order found
    for host in hosts:
        raw = raw_get(host) if raw_get else hostvars[host]
        for name in index.unknown(raw):
            line = unknown_variable_message(name, specs, extra_prefixes) + (
                " (a new input belongs in its role's meta/argument_specs.yml, or in playbooks/vars/playbook_argument_specs.yml)")
            lines.setdefault(line, []).append(host)
        for name, option in sorted(index.options.items()):
            if name not in raw:
                continue
            value = raw[name]
            if _is_template(value) and option.get("type") in _TEMPLATED_TYPES:
                value = _value(hostvars[host], name)
            line = _error(name, value, option, True, name in index.converted)
            if line:
                lines.setdefault(line, []).append(host)
    return [line if len(on) == len(hosts) else "%s: %s" % (", ".join(on), line) for line, on in lines.items()]


class FilterModule(object):
    def filters(self):
        return {
            "unknown_role_variables": unknown_role_variables,
            "closest_variables": closest_variables,
            "unknown_variable_message": unknown_variable_message,
            "not_booleans": not_booleans,
            "not_boolean_message": not_boolean_message,
            "type_errors": type_errors,
            "wrong_types": wrong_types,
            "wrong_type_message": wrong_type_message,
            "inventory_errors": inventory_errors,
        }
