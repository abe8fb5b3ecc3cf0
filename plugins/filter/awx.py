# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters behind playbooks/awx_configure.yml.

``awx_credential_inputs`` builds the ``inputs`` a credential of awx/controller.yml is sent with,
without ever putting a secret in the repository and without reporting a change on every run:

- the entry's ``inputs`` are its non-secret values (a vault id, a user name);
- each input named in ``sciops_secret_inputs_env`` takes the value of that environment variable
  (``secrets`` maps the input to the value read, empty when the variable is unset);
- an input whose variable is unset is sent as AWX's placeholder ``$encrypted$`` when AWX already
  holds a value for it (``existing``: the credentials AWX lists, where a secret reads
  ``$encrypted$``): AWX keeps the stored value, and awx.awx (``update_secrets: false``) sees no
  difference; it is left out when AWX holds none, so a new credential is created without it (to
  be set in AWX, or by a later run with the variable set and ``awx_update_secrets``).
"""

from __future__ import annotations

from collections.abc import Mapping

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # used without Ansible (unit tests import the file directly)
    class AnsibleFilterError(Exception):
        pass

ENCRYPTED = "$encrypted$"


def awx_credential_inputs(entry, secrets=None, existing=None):
    """The inputs to send for ``entry`` (a controller_credentials item)."""
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise AnsibleFilterError("awx_credential_inputs expects a controller_credentials entry with a name")
    inputs = dict(entry.get("inputs") or {})
    wanted = entry.get("sciops_secret_inputs_env") or {}
    secrets = secrets or {}
    stored = {}
    for item in existing or []:
        if isinstance(item, Mapping) and item.get("name") == entry["name"]:
            stored = item.get("inputs") or {}
            break
    for key in wanted:
        if key in inputs:
            raise AnsibleFilterError("credential %s: input %s is both a plain input and a secret one" % (entry["name"], key))
        value = secrets.get(key) or ""
        if value:
            inputs[key] = value
        elif key in stored:
            inputs[key] = ENCRYPTED
    return inputs


class FilterModule(object):
    def filters(self):
        return {"awx_credential_inputs": awx_credential_inputs}
