# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
name: source_digest
author:
  - sciops.platform maintainers (@sciops)
short_description: SHA-256 digest of a file or of a directory tree on the controller
description:
  - Returns one digest per term. For a file, the SHA-256 of its content. For a directory, the
    SHA-256 over every file's relative path, executable bit and content, in sorted order
    (C(__pycache__), C(.git) and C(*.pyc) are left out), so the same tree always gives the same
    digest and any change to a file, a name or a mode gives another.
  - The webservice role compares it with the digest recorded on the node and copies a source
    only when they differ, instead of comparing every file on every run.
options:
  _terms:
    description: Paths on the controller.
    required: true
    type: list
    elements: path
"""

EXAMPLES = r"""
- name: Digest of an application directory
  ansible.builtin.debug:
    msg: "{{ lookup('sciops.platform.source_digest', playbook_dir ~ '/../tests/fixtures/ws_echo_app') }}"
"""

RETURN = r"""
_raw:
  description: One hex digest per term.
  type: list
  elements: str
"""

import hashlib
import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache"}


def digest(path):
    sha = hashlib.sha256()
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        return sha.hexdigest()
    if not os.path.isdir(path):
        raise AnsibleLookupError(f"source_digest: {path} is neither a file nor a directory on the controller")
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            sha.update(rel.encode() + b"\0" + (b"x" if os.access(full, os.X_OK) else b"-") + b"\0")
            with open(full, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    sha.update(block)
            sha.update(b"\0")
    return sha.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        return [digest(str(term)) for term in terms]
