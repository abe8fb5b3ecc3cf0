# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind playbooks/validate.yml: which of a host's variables are misspelt inputs, and
which booleans are not booleans, decided from argument specs.

``specs`` is a list of argument-spec documents: each the parsed YAML of a role's
``meta/argument_specs.yml`` (``{"argument_specs": {<entry point>: {"options": {...}}}}``) with
the role's name added as ``role``. Every entry point counts (``main``, ``export``, ...). A
document without ``role`` is playbook-level (``playbooks/vars/playbook_argument_specs.yml``):
its options are known names, but it brings no prefix of its own; the prefixes it covers are
given as ``extra_prefixes`` (``["dns"]``).

A variable belongs to the longest prefix it starts with (``<role>_`` for every role with a
spec, and each extra prefix), so ``webservice_x`` is the webservice role's even when a role
``web`` exists. Names starting with ``__`` (internal) and ``vault_<prefix>`` (vault companions,
not role inputs) are never checked. Only top-level options are checked, not suboptions."""

from __future__ import annotations

import difflib
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
        for doc in _documents(specs):
            options = _options(doc)
            for name, option in options.items():
                self.options.setdefault(name, {}).update(option)
            role = doc.get("role")
            if role:
                self.known.setdefault(_prefix(role), set()).update(options)
            else:
                shared.update(options)
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
        value = var_values[name]
        if not isinstance(value, (bool, Undefined)):
            found.append(name)
    return found


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


def not_boolean_message(name, var_values, specs):
    """'postgres_ssl must be a boolean, not the string 'false': ...' (no value for no_log options)."""
    option = _Index(specs).options.get(name, {})
    value = var_values[name]
    kind = _kind(value)
    shown = "" if option.get("no_log") else _show(value)
    what = "null" if value is None else "the %s%s" % (kind, " " + shown if shown else "")
    return ("%s must be a boolean, not %s: write true or false without quotes in YAML, or pass it as JSON"
            " on the command line (-e '{\"%s\": false}'; -e %s=false gives a string)" % (name, what, name, name))


class FilterModule(object):
    def filters(self):
        return {
            "unknown_role_variables": unknown_role_variables,
            "closest_variables": closest_variables,
            "unknown_variable_message": unknown_variable_message,
            "not_booleans": not_booleans,
            "not_boolean_message": not_boolean_message,
        }
